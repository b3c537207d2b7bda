"""A small stand-in for ``mimo.data.perspectives.generate_records`` used to test the pipeline
independently of the content generator (module-level so process pools can pickle it)."""

from __future__ import annotations

import numpy as np

from mimo.core import rle
from mimo.core.schema import Record
from mimo.data.case import SliceSample

CALLS: list[str] = []  # slices seen in this process (serial builds only)


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def generate(sample: SliceSample, rng: np.random.Generator, config) -> list[Record]:
    CALLS.append(sample.image_path)
    base = sample.image_path.rsplit("/", 1)[-1].removesuffix(".png")
    out = []
    names = sorted(sample.labels)
    for name in names:
        m = sample.labels[name]
        enc = rle.encode(m).model_dump()
        jitter = int(rng.integers(0, 1000))
        common = {
            "image": sample.image_path,
            "case": sample.case_id,
            "modality": sample.modality,
            "source": sample.source,
        }
        if sample.slice is not None:
            common["slice"] = {"axis": sample.slice[0], "index": sample.slice[1]}
        common["meta"] = {"label": name, "jitter": jitter}
        out.append(
            Record(
                id=f"{base}_{name}_I",
                perspective="I",
                masks={"m0": enc},
                conversations=[
                    {"from": "human", "value": f"<image>\nSegment the {name}."},
                    {"from": "gpt", "value": f"<p>{name}</p> <SEG>", "masks": ["m0"]},
                ],
                **common,
            )
        )
        ys, xs = np.nonzero(m)
        out.append(
            Record(
                id=f"{base}_{name}_II",
                perspective="II",
                masks={"m0": enc},
                regions=[{"type": "point", "points": [[float(xs[0]), float(ys[0])]], "labels": [1]}],
                conversations=[
                    {"from": "human", "value": "<image>\nWhat is at <region>?"},
                    {"from": "gpt", "value": f"It is the <p>{name}</p> <SEG>.", "masks": ["m0"]},
                ],
                **common,
            )
        )
        out.append(
            Record(
                id=f"{base}_{name}_III",
                perspective="III",
                masks={"m0": enc},
                conversations=[
                    {"from": "human", "value": "<image>\nWhich structure is largest?"},
                    {"from": "gpt", "value": f"The <p>{name}</p> <SEG>.", "masks": ["m0"]},
                ],
                **common,
            )
        )
        out.append(
            Record(
                id=f"{base}_{name}_IV",
                perspective="IV",
                masks={"m0": enc},
                regions=[{"type": "box", "box": _box(m)}],
                conversations=[
                    {"from": "human", "value": "<image>\nIs <region> an organ?"},
                    {"from": "gpt", "value": f"Yes, the <p>{name}</p> <SEG>.", "masks": ["m0"]},
                ],
                **common,
            )
        )
    for name in sample.absent:
        out.append(
            Record(
                id=f"{base}_{name}_neg",
                perspective="negative",
                image=sample.image_path,
                case=sample.case_id,
                conversations=[
                    {"from": "human", "value": f"<image>\nSegment the {name}."},
                    {"from": "gpt", "value": f"There is no {name} in this image."},
                ],
            )
        )
    return out


def failing_on(case_substring: str):
    """A generator that raises for cases whose id contains ``case_substring``."""
    return _Failing(case_substring)


class _Failing:
    def __init__(self, needle: str) -> None:
        self.needle = needle

    def __call__(self, sample, rng, config):
        if self.needle in sample.case_id:
            raise RuntimeError(f"simulated crash in {sample.case_id}")
        return generate(sample, rng, config)
