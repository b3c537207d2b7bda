"""Builders shared by the evaluation tests: small masks and records with COCO RLE."""

import numpy as np

from mimo.core import rle as rle_codec
from mimo.core.schema import Record


def box_mask(y0: int, y1: int, x0: int, x1: int, shape: tuple[int, int] = (8, 8)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rle(mask: np.ndarray) -> dict:
    return rle_codec.encode(mask).model_dump()


def make_record(
    record_id: str,
    perspective: str,
    answer: str,
    masks: dict[str, np.ndarray] | None = None,
    *,
    question: str = "<image>\nWhat is shown?",
    modality: str = "CT",
    image: str | None = None,
    meta: dict | None = None,
) -> Record:
    masks = masks or {}
    data = {
        "id": record_id,
        "image": image or f"images/{record_id}.png",
        "modality": modality,
        "perspective": perspective,
        "masks": {k: rle(m) for k, m in masks.items()},
        "conversations": [
            {"from": "human", "value": question},
            {"from": "gpt", "value": answer, "masks": list(masks) or None},
        ],
    }
    if meta:
        data["meta"] = meta
    return Record.model_validate(data)
