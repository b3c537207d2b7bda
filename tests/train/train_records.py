"""Write small synthetic record files (shape images from ``mimo.model.synthetic``) for the tests."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from mimo.core import rle
from mimo.core.records import write_records
from mimo.model.synthetic import grounding_samples


def write_synthetic(folder: Path, n: int, seed: int = 0, name: str = "train", size: int = 64) -> Path:
    """``folder/<name>.jsonl`` with ``n`` records and their PNGs under ``folder/images``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    records = []
    for i, sample in enumerate(grounding_samples(n, seed=seed, size=size)):
        image = f"images/{name}_{i:03d}.png"
        Image.fromarray(sample["image"]).save(folder / image)
        records.append(
            {
                "id": f"{name}_{i:03d}",
                "image": image,
                "modality": "synthetic",
                "perspective": "II" if sample["regions"] else "I",
                "masks": {k: rle.encode(m).model_dump() for k, m in sample["masks"].items()},
                "regions": sample["regions"],
                "conversations": sample["conversations"],
            }
        )
    path = folder / f"{name}.jsonl"
    write_records(path, records)
    return path


def read_log(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """A run's ``log.jsonl`` as (training windows, eval passes)."""
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r for r in lines if "ce_loss" in r], [r for r in lines if "eval/dice" in r]
