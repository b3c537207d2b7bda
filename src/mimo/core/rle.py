"""COCO run-length encoding of binary masks (pycocotools), as used in every record's ``masks``.

Masks are ``(H, W)`` boolean arrays in image (row, column) order. pycocotools wants
Fortran-ordered ``uint8``; ``counts`` is stored as a ``str`` so records stay JSON.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pycocotools import mask as mask_utils

from mimo.core.schema import RLE

MAX_GROUPS = 7  # 35 bits: no mask has more pixels than a run of that length


def encode(mask: np.ndarray) -> RLE:
    """Encode a ``(H, W)`` boolean (or 0/1) mask as a COCO RLE.

    Raises:
        ValueError: if ``mask`` is not two-dimensional.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle.encode: expected a 2D (H, W) mask, got shape {mask.shape}")
    fortran = np.asfortranarray(mask.astype(bool).astype(np.uint8))
    rle = mask_utils.encode(fortran)
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return RLE(size=(int(rle["size"][0]), int(rle["size"][1])), counts=counts)


def decode(rle: RLE | Mapping) -> np.ndarray:
    """Decode a COCO RLE (``schema.RLE`` or a ``{"size", "counts"}`` dict) to a bool ``(H, W)`` mask.

    Uncompressed RLE (``counts`` as a list of run lengths, as in COCO ``iscrowd`` annotations)
    is accepted as well.
    """
    if isinstance(rle, RLE):
        size, counts = list(rle.size), rle.counts
    else:
        try:
            size, counts = list(rle["size"]), rle["counts"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"rle.decode: expected a mapping with 'size' and 'counts', got {rle!r}") from exc
    h, w = int(size[0]), int(size[1])
    if h < 0 or w < 0:
        raise ValueError(f"rle.decode: size {[h, w]} must not be negative")
    runs = np.asarray([int(c) for c in counts] if isinstance(counts, list) else run_lengths(counts), np.int64)
    if (runs < 0).any() or int(runs.sum()) != h * w:
        # pycocotools would leave the rest of the mask unset (too short) or write past it (too long)
        raise ValueError(f"rle.decode: the runs cover {int(runs.sum())} pixels but size {h}x{w} has {h * w}")
    if isinstance(counts, list):
        compressed = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    else:
        compressed = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(compressed).astype(bool)


def run_lengths(counts: str | bytes) -> np.ndarray:
    """The run lengths of COCO's compressed ``counts`` string (alternating 0s and 1s, 0s first).

    The format: each number is written in 5-bit groups, least significant first, each group as
    the character ``48 + bits`` with 0x20 set while more groups follow and 0x10 of the last group
    the sign; from the third run on, a number is the difference to the run two before.
    """
    text = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    groups = np.frombuffer(text, np.uint8).astype(np.int64) - 48
    if not groups.size:
        return groups
    if groups.min() < 0 or groups.max() > 63:
        raise ValueError("rle.decode: counts hold characters outside COCO's compressed RLE")
    last = (groups & 0x20) == 0
    if not last[-1]:
        raise ValueError("rle.decode: the compressed counts end in the middle of a number")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    lengths = ends - starts + 1
    if lengths.max() > MAX_GROUPS:
        raise ValueError("rle.decode: a run length in the counts is implausibly large")
    shifts = 5 * (np.arange(groups.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((groups & 0x1F) << shifts, starts)
    values = values - ((groups[ends] & 0x10) != 0) * (np.int64(1) << (5 * lengths))
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # from the third run on: a difference to two before
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def area(rle: RLE | Mapping) -> int:
    """Number of foreground pixels of an RLE mask, without decoding it."""
    if isinstance(rle, RLE):
        d = {"size": list(rle.size), "counts": rle.counts.encode("ascii")}
    else:
        counts = rle["counts"]
        if isinstance(counts, list):
            return int(decode(rle).sum())
        d = {
            "size": list(rle["size"]),
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
    return int(mask_utils.area(d))
