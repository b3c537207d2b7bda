"""Geometry of masks in a 2D slice, in the patient's frame: sides, relative directions,
adjacency, containment, size ranking, component counts and areas.

Orientation comes from ``SliceSample.image_right`` / ``image_down``: the patient direction
(``L R A P S I``) toward which the image's +x (columns) and +y (rows) point. In the usual
radiological axial display ``image_right == "L"`` and ``image_down == "P"``, so a structure
drawn lower in the image is *posterior*; in a coronal display ``image_down == "I"`` and lower
means *inferior*. Where an orientation is None no claim about that axis is made.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

DIRECTIONS = ("L", "R", "A", "P", "S", "I")
OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
WORDS = {"L": "left", "R": "right", "A": "anterior", "P": "posterior", "S": "superior", "I": "inferior"}


def _check_direction(name: str, value: str | None) -> None:
    if value is not None and value not in DIRECTIONS:
        raise ValueError(f"{name}: expected one of {DIRECTIONS} or None, got {value!r}")


def _check_mask(name: str, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"{name}: expected a 2D (H, W) mask, got shape {mask.shape}")
    if not mask.any():
        raise ValueError(f"{name}: mask is empty")
    return mask


def centroid(mask: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` = (mean column, mean row) of a non-empty mask."""
    mask = _check_mask("centroid", mask)
    rows, cols = np.nonzero(mask)
    return float(cols.mean()), float(rows.mean())


def _axes(image_right: str | None, image_down: str | None) -> list[tuple[int, str]]:
    """(axis index in (x, y), patient letter its positive direction points to) for known axes."""
    _check_direction("image_right", image_right)
    _check_direction("image_down", image_down)
    if image_right and image_down and image_down in (image_right, OPPOSITE[image_right]):
        raise ValueError(
            f"image_right={image_right!r} and image_down={image_down!r} lie on the same patient axis"
        )
    out = []
    if image_right:
        out.append((0, image_right))
    if image_down:
        out.append((1, image_down))
    return out


def _lr_axis(image_right: str | None, image_down: str | None) -> tuple[int, int] | None:
    """(axis 0=x/1=y, sign) such that sign * coordinate increases toward the patient's left."""
    for axis, letter in _axes(image_right, image_down):
        if letter == "L":
            return axis, 1
        if letter == "R":
            return axis, -1
    return None


def body_side(
    mask: np.ndarray,
    image_right: str | None,
    image_down: str | None,
    midline: float | None = None,
    margin: float = 0.05,
) -> str | None:
    """Which side of the body a structure lies on: ``left``, ``right`` or ``midline``.

    The midline is the pixel coordinate of the body's midline along the left-right image axis
    (default: the image centre). A centroid within ``margin`` times that axis's length of the
    midline is ``midline``. Returns None when no image axis points left or right.
    """
    mask = _check_mask("body_side", mask)
    lr = _lr_axis(image_right, image_down)
    if lr is None:
        return None
    axis, sign = lr
    length = mask.shape[1 - axis]
    mid = (length - 1) / 2.0 if midline is None else float(midline)
    offset = (centroid(mask)[axis] - mid) * sign
    if abs(offset) <= margin * length:
        return "midline"
    return "left" if offset > 0 else "right"


def relative_directions(
    mask_a: np.ndarray,
    mask_b: np.ndarray,
    image_right: str | None,
    image_down: str | None,
    spacing: tuple[float, float] = (1.0, 1.0),
    min_gap_mm: float = 3.0,
    min_fraction: float = 0.25,
) -> list[str]:
    """Patient directions (letters of ``DIRECTIONS``) in which A lies relative to B.

    Along each image axis with a known direction, A is beyond B when their centroids differ by
    more than ``min_gap_mm`` and by more than ``min_fraction`` of the structures' mean extent
    along that axis (so that two overlapping masks of similar position give no answer).
    ``spacing`` is ``(row_mm, col_mm)``.

    Example: A drawn right of B in a radiological axial image (``image_right='L'``) -> ``['L']``.
    """
    a = _check_mask("relative_directions: mask_a", mask_a)
    b = _check_mask("relative_directions: mask_b", mask_b)
    if a.shape != b.shape:
        raise ValueError(f"relative_directions: masks differ in shape {a.shape} vs {b.shape}")
    ca, cb = centroid(a), centroid(b)
    out = []
    for axis, letter in _axes(image_right, image_down):
        mm = spacing[1] if axis == 0 else spacing[0]
        proj = 0 if axis == 1 else 1  # numpy axis to collapse to get the extent along x (cols) or y (rows)
        ext_a = np.flatnonzero(a.any(axis=proj))
        ext_b = np.flatnonzero(b.any(axis=proj))
        extent = ((ext_a[-1] - ext_a[0] + 1) + (ext_b[-1] - ext_b[0] + 1)) / 2.0
        delta = ca[axis] - cb[axis]
        if abs(delta) * mm <= min_gap_mm or abs(delta) <= min_fraction * extent:
            continue
        out.append(letter if delta > 0 else OPPOSITE[letter])
    return out


def more_left(
    mask_a: np.ndarray,
    mask_b: np.ndarray,
    image_right: str | None,
    image_down: str | None,
    spacing: tuple[float, float] = (1.0, 1.0),
) -> bool | None:
    """True when A lies to the patient's left of B, False when to the right, None when unclear/unknown."""
    dirs = relative_directions(mask_a, mask_b, image_right, image_down, spacing)
    if "L" in dirs:
        return True
    if "R" in dirs:
        return False
    return None


def adjacent(mask_a: np.ndarray, mask_b: np.ndarray, k: int = 2) -> bool:
    """True when the masks touch or overlap after dilating A by ``k`` pixels (8-connected)."""
    a = _check_mask("adjacent: mask_a", mask_a)
    b = _check_mask("adjacent: mask_b", mask_b)
    if k > 0:
        a = ndimage.binary_dilation(a, structure=np.ones((3, 3), bool), iterations=k)
    return bool((a & b).any())


def contains(outer: np.ndarray, inner: np.ndarray, fraction: float = 0.9) -> bool:
    """True when at least ``fraction`` of ``inner`` lies within ``outer`` with its holes filled.

    Filling holes makes a lesion cut out of an organ's mask (as in LiTS, where tumour pixels are
    not liver pixels) count as inside the organ. A structure never contains itself.
    """
    outer = _check_mask("contains: outer", outer)
    inner = _check_mask("contains: inner", inner)
    if np.array_equal(outer, inner):
        return False
    filled = ndimage.binary_fill_holes(outer)
    return bool((filled & inner).sum() >= fraction * inner.sum()) and inner.sum() < filled.sum()


def area_px(mask: np.ndarray) -> int:
    """Number of foreground pixels."""
    return int(np.asarray(mask, dtype=bool).sum())


def area_mm2(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """Area in mm^2 from the pixel count and ``spacing = (row_mm, col_mm)``."""
    from mimo.core.measure import area

    return area(mask, spacing)


def size_ranking(masks: Mapping[str, np.ndarray]) -> list[str]:
    """Names sorted from largest to smallest area (ties by name, for determinism)."""
    return sorted(masks, key=lambda n: (-area_px(masks[n]), n))


def count_components(mask: np.ndarray, min_size: int = 1) -> int:
    """Number of 8-connected components with at least ``min_size`` pixels."""
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3), bool))
    if n == 0:
        return 0
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= min_size).sum())
