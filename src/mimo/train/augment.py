"""Training-time augmentation that keeps every answer true: centred zoom-out and intensity.

A record's text says things about its image: which half of the body a structure is in (by the
image's vertical midline), how two structures lie to each other, which occupies more of the
image. A flip or a shift could make such an answer false, so the geometric transform here is a
zoom-out about the image centre only (the image shrinks within its own frame, zeros around):
sides of the midline, relations and relative sizes all stay. Its masks and visual prompts move
with it. Intensity changes (contrast, brightness, gamma) change no answer.

What it is for: small real datasets. On HC18 (325 training images) the tiny model reached Dice
0.93 on training heads and 0.80 on held-out ones, and small heads failed most; zooming out
shows every head at smaller sizes.

Each draw is a pure function of ``(seed, epoch, rank, position)``, so a resumed run sees the
same augmented samples as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from mimo.core.schema import BoxRegion, PointRegion, ScribbleRegion

AUGMENT_STREAM = 0x617567  # "aug": the random stream of augmentation, apart from others


class Augmentation(BaseModel):
    """``data.augment`` of the training config; absent (null): no augmentation."""

    model_config = ConfigDict(extra="forbid")

    p: float = Field(0.5, ge=0.0, le=1.0, description="probability that a sample is augmented")
    zoom_out: float = Field(
        0.4, ge=0.0, lt=1.0, description="largest shrink: the image is scaled by 1 - U(0, zoom_out), centred"
    )
    intensity: float = Field(
        0.2, ge=0.0, lt=1.0, description="contrast and brightness jitter (+-), gamma in [1-x, 1+x]"
    )
    sources: list[str] | None = Field(
        None, description="augment only the records of these sources (their `source`); null: every record"
    )

    def applies_to(self, source: str | None) -> bool:
        return self.sources is None or source in self.sources


def augment_sample(sample: dict, settings: Augmentation, rng: np.random.Generator) -> dict:
    """``sample`` (image, conversations, regions, masks as ``RecordDataset.load`` returns it),
    zoomed out and intensity-jittered with probability ``settings.p``; a new dict."""
    if rng.random() >= settings.p:
        return sample
    out = dict(sample)
    if settings.zoom_out > 0:
        scale = 1.0 - rng.uniform(0.0, settings.zoom_out)
        out = zoom_out(out, scale)
    if settings.intensity > 0:
        out["image"] = jitter_intensity(out["image"], settings.intensity, rng)
    return out


def zoom_out(sample: dict, scale: float) -> dict:
    """The image scaled by ``scale`` (<= 1) about its centre within its own ``H x W`` frame."""
    image = sample["image"]
    height, width = image.shape[:2]
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    top, left = (height - new_h) // 2, (width - new_w) // 2
    sy, sx = new_h / height, new_w / width

    def place(array: np.ndarray, resample: Image.Resampling) -> np.ndarray:
        small = np.asarray(Image.fromarray(array).resize((new_w, new_h), resample))
        canvas = np.zeros_like(array)
        canvas[top : top + new_h, left : left + new_w] = small
        return canvas

    def move(points) -> list[list[float]]:
        return [[x * sx + left, y * sy + top] for x, y in points]

    masks = {
        key: place(np.asarray(m, dtype=np.uint8), Image.Resampling.NEAREST).astype(bool)
        for key, m in sample["masks"].items()
    }
    if any(np.any(m) and not masks[k].any() for k, m in sample["masks"].items()):
        return sample  # a structure too small to survive the shrink: keep the sample as it is
    regions = []
    for region in sample["regions"]:
        if isinstance(region, PointRegion):
            region = region.model_copy(update={"points": move(region.points)})
        elif isinstance(region, BoxRegion):
            (x0, y0), (x1, y1) = move([region.box[:2], region.box[2:]])
            region = region.model_copy(update={"box": [x0, y0, x1, y1]})
        elif isinstance(region, ScribbleRegion):
            region = region.model_copy(update={"strokes": [move(s) for s in region.strokes]})
        regions.append(region)  # a mask region names a mask, moved above
    return {**sample, "image": place(image, Image.Resampling.BILINEAR), "masks": masks, "regions": regions}


def jitter_intensity(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``uint8`` pixels with random contrast, brightness and gamma, clipped to 0..255."""
    pixels = image.astype(np.float32) / 255.0
    gamma = rng.uniform(1.0 - amount, 1.0 + amount)
    contrast = rng.uniform(1.0 - amount, 1.0 + amount)
    brightness = rng.uniform(-amount, amount) / 2
    pixels = np.clip(pixels, 0.0, 1.0) ** gamma
    pixels = (pixels - 0.5) * contrast + 0.5 + brightness
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
