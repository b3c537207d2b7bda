"""Turning volumes and images into display-ready slices for the data builder: choosing
slices, square pixels, PNG output. Reading, intensities and orientation are
``mimo.core.images`` (re-exported here).

Conventions:

* Volumes are held in **RAS+ canonical** voxel order (``nibabel.as_closest_canonical``):
  voxel index ``i`` increases toward patient **R**ight, ``j`` toward **A**nterior,
  ``k`` toward **S**uperior.
* Displayed slices follow the **radiological convention**: an axial slice is shown as if
  looking up from the feet, patient left on the image right, anterior up; so the image's
  +x (columns) points to patient ``L`` and +y (rows) to ``P``. Coronal: +x ``L``, +y ``I``.
  Sagittal: +x ``P``, +y ``I`` (anterior on the image left).
* CT intensities are Hounsfield units, mapped to 8 bits through a window per body region
  (``CT_WINDOWS``); MR and other modalities through percentiles 0.5-99.5 of the volume.
"""

from __future__ import annotations

import io as _io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mimo.core.errors import MimoDataError
from mimo.core.images import (  # the reading rules live in mimo.core.images; kept here for importers
    CT_WINDOWS,
    DEFAULT_CT_WINDOW,
    DISPLAY_DIRECTIONS,
    canonicalize,
    check_window,
    ct_window,
    display_spacing,
    load_nifti,
    percentile_range,
    rescale_to_uint8,
    slice_to_display,
    to_uint8,
    window_ct,
)

__all__ = [
    "CT_WINDOWS",
    "DEFAULT_CT_WINDOW",
    "DISPLAY_DIRECTIONS",
    "canonicalize",
    "check_window",
    "ct_window",
    "display_spacing",
    "encode_png",
    "load_nifti",
    "percentile_range",
    "rescale_to_uint8",
    "select_slices",
    "slice_to_display",
    "square_pixels",
    "to_uint8",
    "window_ct",
    "write_png",
]

# ---------------------------------------------------------------- slices


def select_slices(
    labels: Mapping[str, np.ndarray],
    axis: int = 2,
    *,
    stride: int = 3,
    max_slices: int = 24,
    min_pixels: int = 16,
) -> list[int]:
    """Slice indices along ``axis`` where at least one structure is present.

    A structure counts as present in a slice when it covers at least ``min_pixels`` pixels
    (or, for structures smaller than that in every slice, at its largest slice). Every
    structure gets its largest slice first (so small structures are not lost); the rest are
    filled from the candidate slices spaced at least ``stride`` apart, evenly, up to
    ``max_slices``. Deterministic; returns sorted indices.
    """
    if not labels:
        return []
    other = tuple(a for a in range(3) if a != axis)
    areas = {name: np.asarray(m, dtype=bool).sum(axis=other) for name, m in labels.items()}
    n = next(iter(areas.values())).shape[0]
    candidate = np.zeros(n, dtype=bool)
    must: list[int] = []
    for area in areas.values():
        if area.max() == 0:
            continue
        candidate |= area >= min_pixels
        must.append(int(np.argmax(area)))
    chosen: list[int] = []
    for idx in sorted(set(must), key=lambda i: must.index(i)):
        if len(chosen) >= max_slices:
            break
        chosen.append(idx)
    cand = np.flatnonzero(candidate)
    spaced: list[int] = []
    for idx in cand:
        if not spaced or idx - spaced[-1] >= stride:
            spaced.append(int(idx))
    room = max_slices - len(chosen)
    extra = [i for i in spaced if all(abs(i - c) >= stride for c in chosen)]
    if room > 0 and extra:
        if len(extra) > room:
            pick = np.linspace(0, len(extra) - 1, room).round().astype(int)
            extra = [extra[p] for p in sorted(set(pick.tolist()))]
        chosen.extend(extra)
    return sorted(set(chosen))


# ---------------------------------------------------------------- resampling


def square_pixels(
    image: np.ndarray, masks: Mapping[str, np.ndarray], spacing: tuple[float, float]
) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[float, float]]:
    """Resample a 2D image and its masks in-plane to square pixels.

    The finer of the two pixel sizes is kept; the coarser axis is upsampled (image:
    linear, masks: nearest neighbour). Images of any dtype and ``(H, W)`` or ``(H, W, C)``.

    Returns:
        ``(image, masks, (s, s))``.
    """
    row_mm, col_mm = float(spacing[0]), float(spacing[1])
    if row_mm <= 0 or col_mm <= 0:
        raise MimoDataError(f"pixel spacing must be positive, got {spacing}")
    if abs(row_mm - col_mm) <= 1e-3 * max(row_mm, col_mm):
        return image, dict(masks), (row_mm, col_mm)
    from scipy import ndimage

    target = min(row_mm, col_mm)
    h, w = image.shape[:2]
    new_h = max(1, int(round(h * row_mm / target)))
    new_w = max(1, int(round(w * col_mm / target)))
    zoom = (new_h / h, new_w / w)
    img_zoom = zoom + (1.0,) * (image.ndim - 2)
    out = ndimage.zoom(image.astype(np.float32), img_zoom, order=1, grid_mode=True, mode="nearest")
    if out.shape[:2] != (new_h, new_w):  # guard against rounding in ndimage
        out = out[:new_h, :new_w]
    if image.dtype == np.uint8:
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    else:
        out = out.astype(image.dtype, copy=False)
    new_masks = {}
    for name, m in masks.items():
        rows = np.minimum((np.arange(new_h) + 0.5) * h / new_h, h - 1).astype(int)
        cols = np.minimum((np.arange(new_w) + 0.5) * w / new_w, w - 1).astype(int)
        new_masks[name] = np.asarray(m, dtype=bool)[np.ix_(rows, cols)]
    return out, new_masks, (target, target)


# ---------------------------------------------------------------- PNG


def limit_side(
    image: np.ndarray, masks: Mapping[str, np.ndarray], spacing: tuple[float, float], max_side: int
) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[float, float]]:
    """Downsample a 2D uint8 image and its masks so that the longer side is at most ``max_side``.

    The image is box-filtered (area average); a mask pixel is set where at least half of the
    area it covers was set; the pixel size grows by the same factor per axis. Images already
    small enough come back unchanged.
    """
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, dict(masks), spacing
    scale = max_side / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BOX))
    shrunk = {
        n: np.asarray(Image.fromarray(m.astype(np.float32)).resize((new_w, new_h), Image.BOX)) >= 0.5
        for n, m in masks.items()
    }
    return out, shrunk, (spacing[0] * h / new_h, spacing[1] * w / new_w)


def encode_png(image: np.ndarray) -> bytes:
    """Encode an ``(H, W)`` or ``(H, W, 3|4)`` ``uint8`` array as PNG bytes."""
    from PIL import Image

    if image.dtype != np.uint8:
        raise ValueError(f"encode_png: expected uint8, got {image.dtype}")
    buf = _io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write an 8-bit PNG atomically (no half-written image is ever visible)."""
    from mimo.core.files import atomic_write_bytes

    atomic_write_bytes(path, encode_png(image))
