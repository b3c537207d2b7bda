"""Fixtures: the tiny model is overfitted once per session and saved as a model directory;
its training samples are written as PNGs, records, a NIfTI volume and a DICOM series."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from mimo.core import rle

from .tiny_model import training_samples


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread: the 2 cores are shared, and two threads spin-wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    """``{"dir": model directory, "samples": training samples}`` (the suite's shared model)."""
    return {"dir": tiny_model_dir, "samples": training_samples()}


@pytest.fixture(scope="session")
def predictor(tiny):
    from mimo.infer.predictor import Predictor

    return Predictor.from_pretrained(tiny["dir"], max_new_tokens=40)


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
