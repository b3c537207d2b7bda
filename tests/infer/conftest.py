"""Fixtures: the tiny model is overfitted once per session and saved as a model directory;
its training samples are written as PNGs, records, a NIfTI volume and a DICOM series."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mimo.data import rle

from .tiny_model import train_tiny_model


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """``{"dir": model directory, "samples": training samples}``."""
    return train_tiny_model(tmp_path_factory.mktemp("tiny-mimo"))


@pytest.fixture(scope="session")
def predictor(tiny):
    from mimo.infer.predictor import Predictor

    return Predictor.from_pretrained(tiny["dir"], max_new_tokens=24)


def perspective_of(sample: dict) -> str:
    gpt = sample["conversations"][1]
    if not gpt.get("masks"):
        return "negative"
    if sample["regions"]:
        return "II"
    return "I" if len(gpt["masks"]) == 1 else "III"


@pytest.fixture(scope="session")
def records_file(tiny, tmp_path_factory) -> Path:
    """The training samples as records (PNG images, RLE masks) in ``records.jsonl``."""
    root = tmp_path_factory.mktemp("records")
    (root / "images").mkdir()
    lines = []
    for i, sample in enumerate(tiny["samples"]):
        name = f"images/sample_{i:02d}.png"
        Image.fromarray(sample["image"]).save(root / name)
        masks = {}
        for key, mask in sample["masks"].items():
            encoded = rle.encode(mask)
            masks[key] = {"size": list(encoded.size), "counts": encoded.counts}
        record = {
            "id": f"sample_{i:02d}",
            "image": name,
            "modality": "CT",
            "perspective": perspective_of(sample),
            "masks": masks,
            "regions": sample["regions"],
            "conversations": sample["conversations"],
        }
        if record["perspective"] == "negative":
            record["meta"] = {"structure": "triangle"}
        lines.append(json.dumps(record))
    path = root / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
