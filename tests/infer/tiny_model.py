"""Helpers for the infer tests. The model is the suite's shared ``tiny_model_dir``
(``tests/conftest.py``), overfitted on ``mimo.model.synthetic.overfit_samples()``; its three
"Segment the square." volume samples are the slices of the test volumes, so
``mimo segment-volume`` is checked on images the model has learned."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimo.model.synthetic import overfit_samples, volume_samples

VOLUME_QUESTION = "Segment the square."
__all__ = ["VOLUME_QUESTION", "dice", "sample_png", "training_samples", "volume_samples"]


def training_samples() -> list[dict]:
    return overfit_samples()


def sample_png(records_file: Path, index: int) -> Path:
    """The PNG of training sample ``index`` written by the ``records_file`` fixture."""
    return records_file.parent / f"images/sample_{index:02d}.png"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)
