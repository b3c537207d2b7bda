"""The page tests use the suite's shared overfitted tiny model (``tests/conftest.py``): among
its training samples are "What is in <region>?" questions with a box on each shape of the
bundled ``shapes.png`` example (``mimo.model.synthetic.same_image_region_samples``)."""

from __future__ import annotations

from mimo.model.synthetic import same_image_region_samples


def shape_boxes() -> dict[str, list[int]]:
    """The box around each shape of ``shapes.png`` (x0, y0, x1, y1, image pixels)."""
    return {
        s["conversations"][1]["value"].split("<p>")[1].split("</p>")[0]: s["regions"][0]["box"]
        for s in same_image_region_samples()
    }
