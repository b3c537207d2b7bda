"""Segmentation metrics on boolean masks (numpy), per sample and accumulated over a dataset.

Conventions for empty masks, used by every function here (they agree with MONAI's
``compute_iou`` / ``DiceMetric`` with ``ignore_empty=False``):

- prediction and target both empty: IoU = Dice = 1.0 (the model correctly found nothing);
- exactly one of them empty: IoU = Dice = 0.0.

Dataset-level metrics, all computed from per-pair counts, a *pair* being one predicted
mask scored against one reference mask (one ``<SEG>``):

- ``miou``: mean over pairs of the pair's IoU. This is the "mIoU" the MIMO paper
  (Chen et al., CVPR 2025) reports as its headline segmentation number.
- ``giou``: mean over *images* of the image's IoU, an image's IoU being the mean IoU of
  the pairs on it. This is the definition written in LISA (Lai et al., CVPR 2024, sec. 5.1:
  "the average of all per-image Intersection-over-Unions"). LISA's released code weights
  each image by its number of masks, which makes it equal to ``miou``; we follow the text.
  When every image holds one pair, ``giou == miou``.
- ``ciou``: cumulative intersection over cumulative union over all pairs (LISA's cIoU,
  after the referring-segmentation "overall IoU" of Liu et al., 2017). NaN-free: 1.0 when
  every mask of the dataset is empty.
- ``dice``: mean over pairs of the pair's Dice coefficient, 2|P∩T| / (|P| + |T|).
- ``ap50``: fraction of pairs with IoU strictly greater than 0.5 (the "Pr@0.5"/AP50 used
  for referring segmentation, e.g. by Liu et al., 2017 and the referring-expression
  segmentation literature after it).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SEGMENTATION_METRICS = ("miou", "giou", "ciou", "dice", "ap50")


def _as_bool(mask: np.ndarray) -> np.ndarray:
    array = np.asarray(mask)
    if array.dtype != bool:
        array = array != 0
    return array


def _check_shapes(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction mask has shape {pred.shape} but target mask has shape {target.shape}; "
            "expected equal shapes (resize the prediction to the image's own size first)"
        )


@dataclass(frozen=True)
class MaskCounts:
    """Pixel counts of one prediction/target pair; everything else derives from them."""

    intersection: int
    union: int
    pred_area: int
    target_area: int

    @property
    def iou(self) -> float:
        """|P∩T| / |P∪T|; 1.0 when both masks are empty."""
        return iou_from_counts(self.intersection, self.union)

    @property
    def dice(self) -> float:
        """2|P∩T| / (|P| + |T|); 1.0 when both masks are empty."""
        return dice_from_counts(self.intersection, self.pred_area, self.target_area)


def mask_counts(pred: np.ndarray, target: np.ndarray) -> MaskCounts:
    """Intersection, union and areas of two masks of equal shape (non-zero means foreground)."""
    p = _as_bool(pred)
    t = _as_bool(target)
    _check_shapes(p, t)
    inter = int(np.count_nonzero(p & t))
    pred_area = int(np.count_nonzero(p))
    target_area = int(np.count_nonzero(t))
    return MaskCounts(inter, pred_area + target_area - inter, pred_area, target_area)


def instance_counts(pred: np.ndarray, target: np.ndarray) -> tuple[MaskCounts, ...]:
    """Counts per instance of ``target``, for a structure mask that merges several instances.

    An instance is a connected component of ``target`` (8-connectivity); the prediction is
    shared out by giving each predicted pixel to the nearest instance (Euclidean distance),
    so every predicted pixel is counted once. Returns ``()`` when ``target`` has fewer than
    two components (the structure's own counts then are its only instance's).
    """
    p = _as_bool(pred)
    t = _as_bool(target)
    _check_shapes(p, t)
    rows, cols = np.nonzero(p | t)
    if rows.size == 0:
        return ()
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))  # holds every instance
    p, t = p[box], t[box]
    components, n = ndimage.label(t, structure=np.ones((3, 3), bool))
    if n < 2:
        return ()
    owner = components
    if (p & ~t).any():  # predicted pixels outside every instance go to the nearest one
        _, (near_r, near_c) = ndimage.distance_transform_edt(components == 0, return_indices=True)
        owner = components[near_r, near_c]
    target_area = np.bincount(components.ravel(), minlength=n + 1)[1:]
    pred_area = np.bincount(owner[p], minlength=n + 1)[1:]
    inter = np.bincount(components[p & t], minlength=n + 1)[1:]
    return tuple(
        MaskCounts(int(i), int(a + b - i), int(a), int(b))
        for i, a, b in zip(inter, pred_area, target_area, strict=True)
    )


def iou_from_counts(intersection: int, union: int) -> float:
    if union == 0:
        return 1.0
    return intersection / union


def dice_from_counts(intersection: int, pred_area: int, target_area: int) -> float:
    denominator = pred_area + target_area
    if denominator == 0:
        return 1.0
    return 2.0 * intersection / denominator


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union (Jaccard index) of two boolean masks.

    Both empty: 1.0; exactly one empty: 0.0 (see the module docstring).
    """
    return mask_counts(pred, target).iou


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice coefficient (Sørensen–Dice), 2|P∩T| / (|P| + |T|), of two boolean masks.

    Both empty: 1.0; exactly one empty: 0.0 (see the module docstring).
    """
    return mask_counts(pred, target).dice


class SegmentationMeter:
    """Accumulates prediction/target pairs and computes the dataset-level metrics.

    Each ``update`` is one pair (one ``<SEG>`` against its reference mask). Pairs that share
    an ``image_id`` are one image for ``giou``; without an ``image_id`` each pair is its own
    image. Only counts are kept, never the masks.

    >>> meter = SegmentationMeter()
    >>> meter.update(np.ones((2, 2), bool), np.ones((2, 2), bool))
    >>> meter.compute()["miou"]
    1.0
    """

    def __init__(self) -> None:
        self._counts: list[MaskCounts] = []
        self._images: list[Hashable] = []

    def __len__(self) -> int:
        return len(self._counts)

    def update(self, pred: np.ndarray, target: np.ndarray, image_id: Hashable | None = None) -> MaskCounts:
        """Add one pair; returns its counts (``.iou``, ``.dice``)."""
        counts = mask_counts(pred, target)
        self.add_counts(counts, image_id)
        return counts

    def add_counts(self, counts: MaskCounts, image_id: Hashable | None = None) -> None:
        """Add a pair whose counts were computed earlier (e.g. stored in a ``SampleResult``)."""
        self._counts.append(counts)
        self._images.append(("pair", len(self._counts)) if image_id is None else ("image", image_id))

    def compute(self) -> dict[str, float]:
        """``{"n_masks", "miou", "giou", "ciou", "dice", "ap50"}``; metrics NaN when empty."""
        n = len(self._counts)
        if n == 0:
            return {"n_masks": 0, **{name: math.nan for name in SEGMENTATION_METRICS}}
        ious = np.array([c.iou for c in self._counts], dtype=np.float64)
        dices = np.array([c.dice for c in self._counts], dtype=np.float64)
        per_image: dict[Hashable, list[float]] = {}
        for image, value in zip(self._images, ious, strict=True):
            per_image.setdefault(image, []).append(float(value))
        total_inter = sum(c.intersection for c in self._counts)
        total_union = sum(c.union for c in self._counts)
        return {
            "n_masks": n,
            "miou": float(ious.mean()),
            "giou": float(np.mean([np.mean(v) for v in per_image.values()])),
            "ciou": iou_from_counts(total_inter, total_union),
            "dice": float(dices.mean()),
            "ap50": float(np.mean(ious > 0.5)),
        }
