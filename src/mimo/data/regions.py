"""Visual prompts sampled from a structure's mask: points, jittered boxes, scribbles, whole or partial masks.

Coordinates are pixels of the displayed image: ``x`` is the column, ``y`` the row. Points and
scribble vertices are pixel indices (``0 <= x <= W-1``), as SAM's prompt encoder expects;
positive points and scribbles lie on mask pixels. Boxes are ``[x0, y0, x1, y1]`` with the
far edges exclusive (``x1 = last column + 1``), clipped to ``[0, W] x [0, H]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from mimo.core.schema import BoxRegion, MaskRegion, PointRegion, Region, ScribbleRegion

REGION_TYPES = ("point", "box", "scribble", "mask")


def _mask(mask: np.ndarray, where: str) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"{where}: expected a 2D (H, W) mask, got shape {mask.shape}")
    if not mask.any():
        raise ValueError(f"{where}: mask is empty")
    return mask


def _interior(mask: np.ndarray) -> np.ndarray:
    """Mask pixels away from the boundary when there are any (else the mask itself)."""
    eroded = ndimage.binary_erosion(mask, iterations=2)
    return eroded if eroded.any() else mask


def sample_points(
    mask: np.ndarray, rng: np.random.Generator, n_positive: int = 1, n_negative: int = 0
) -> PointRegion:
    """``n_positive`` points on the mask (label 1), preferring its interior, and ``n_negative``
    points off the mask (label 0), preferring a ring around it."""
    mask = _mask(mask, "sample_points")
    if n_positive < 1:
        raise ValueError(f"sample_points: n_positive must be >= 1, got {n_positive}")
    ys, xs = np.nonzero(_interior(mask))
    idx = rng.choice(len(xs), size=n_positive, replace=len(xs) < n_positive)
    points = [(float(xs[i]), float(ys[i])) for i in idx]
    labels = [1] * n_positive
    if n_negative > 0:
        ring = ndimage.binary_dilation(mask, iterations=max(3, int(0.1 * max(mask.shape)))) & ~mask
        outside = ring if ring.any() else ~mask
        ys, xs = np.nonzero(outside)
        if len(xs):
            idx = rng.choice(len(xs), size=n_negative, replace=len(xs) < n_negative)
            points += [(float(xs[i]), float(ys[i])) for i in idx]
            labels += [0] * n_negative
    return PointRegion(points=points, labels=labels)


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` bounding box with exclusive far edges."""
    mask = _mask(mask, "tight_box")
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def jittered_box(mask: np.ndarray, rng: np.random.Generator, jitter: float = 0.1) -> BoxRegion:
    """The bounding box with each edge moved by up to ``jitter`` times the box size, clipped to the
    image; it always keeps at least one column and row and still overlaps the mask's centre."""
    mask = _mask(mask, "jittered_box")
    h, w = mask.shape
    x0, y0, x1, y1 = tight_box(mask)
    bw, bh = x1 - x0, y1 - y0
    dx = rng.uniform(-jitter, jitter, size=2) * bw
    dy = rng.uniform(-jitter, jitter, size=2) * bh
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    nx0 = float(np.clip(min(x0 + dx[0], cx - 0.5), 0, w))
    nx1 = float(np.clip(max(x1 + dx[1], cx + 0.5), 0, w))
    ny0 = float(np.clip(min(y0 + dy[0], cy - 0.5), 0, h))
    ny1 = float(np.clip(max(y1 + dy[1], cy + 0.5), 0, h))
    return BoxRegion(box=(round(nx0, 1), round(ny0, 1), round(nx1, 1), round(ny1, 1)))


def scribble(mask: np.ndarray, rng: np.random.Generator, max_points: int = 16) -> ScribbleRegion:
    """One stroke along the structure: skeleton pixels ordered along the mask's principal axis,
    subsampled to at most ``max_points`` vertices; every vertex is a mask pixel."""
    mask = _mask(mask, "scribble")
    largest = _largest_component(mask)
    skel = skeletonize(largest)
    ys, xs = np.nonzero(skel if skel.sum() >= 2 else largest)
    coords = np.stack([xs, ys], axis=1).astype(float)
    if len(coords) >= 2:
        centred = coords - coords.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        order = np.argsort(centred @ vt[0], kind="stable")
        coords = coords[order]
    n = len(coords)
    if n > max_points:
        # a random sub-stroke covering at least half of the structure's length
        span = int(rng.integers(max(2, n // 2), n + 1))
        start = int(rng.integers(0, n - span + 1))
        coords = coords[start : start + span]
        keep = np.unique(
            np.linspace(0, len(coords) - 1, num=min(max_points, len(coords))).round().astype(int)
        )
        coords = coords[keep]
    return ScribbleRegion(strokes=[[(float(x), float(y)) for x, y in coords]])


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def partial_mask(mask: np.ndarray, rng: np.random.Generator, min_fraction: float = 0.2) -> np.ndarray:
    """A part of the mask: the mask within a disc around one of its pixels (at least
    ``min_fraction`` of the area when the structure is big enough), never empty."""
    mask = _mask(mask, "partial_mask")
    ys, xs = np.nonzero(mask)
    i = int(rng.integers(len(xs)))
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    dist2 = (yy - ys[i]) ** 2 + (xx - xs[i]) ** 2
    d2 = np.sort(dist2[mask])
    frac = rng.uniform(min_fraction, 0.7)
    radius2 = d2[min(len(d2) - 1, int(frac * len(d2)))]
    part = mask & (dist2 <= radius2)
    return part if part.any() else mask


def sample_region(
    mask: np.ndarray,
    rng: np.random.Generator,
    probs: Mapping[str, float] | None = None,
    mask_key: str = "r0",
    negative_point_prob: float = 0.3,
    partial_mask_prob: float = 0.3,
) -> tuple[Region, np.ndarray | None]:
    """Draw a region type by ``probs`` (``point``/``box``/``scribble``/``mask``) and sample it.

    Returns:
        ``(region, region_mask)``: for a mask region, ``region_mask`` is the (whole or partial)
        mask that the caller must store under ``mask_key`` in the record's ``masks``; else None.
    """
    probs = dict(probs or {t: 1.0 for t in REGION_TYPES})
    unknown = set(probs) - set(REGION_TYPES)
    if unknown:
        raise ValueError(f"sample_region: unknown region type(s) {sorted(unknown)}, expected {REGION_TYPES}")
    types = [t for t in REGION_TYPES if probs.get(t, 0) > 0]
    if not types:
        raise ValueError(f"sample_region: no region type has a positive probability in {probs}")
    p = np.array([probs[t] for t in types], float)
    kind = types[int(rng.choice(len(types), p=p / p.sum()))]
    if kind == "point":
        n_neg = int(rng.integers(1, 3)) if rng.random() < negative_point_prob else 0
        return sample_points(mask, rng, n_positive=int(rng.integers(1, 4)), n_negative=n_neg), None
    if kind == "box":
        return jittered_box(mask, rng), None
    if kind == "scribble":
        return scribble(mask, rng), None
    region_mask = partial_mask(mask, rng) if rng.random() < partial_mask_prob else np.asarray(mask, bool)
    return MaskRegion(mask=mask_key), region_mask
