"""Mixing records of the perspectives by ratio (the paper: I:II:III:IV:VQA = 1:2:2:1:1)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mimo.core.schema import Record

DEFAULT_RATIOS: dict[str, float] = {"I": 1.0, "II": 2.0, "III": 2.0, "IV": 1.0, "vqa": 1.0}
# The build's mixing draws from its own random stream, ``SeedSequence([seed, MIX_STREAM])``, so it
# draws the same records whatever else the seed drives; the tag is "mix" in ASCII.
MIX_STREAM = 0x6D6978


def mix_targets(
    available: Mapping[str, int], ratios: Mapping[str, float], negative_fraction: float = 0.1
) -> dict[str, int]:
    """How many records of each perspective to keep.

    The largest mix in which every perspective with a positive ratio and at least one record
    keeps its share (perspectives without records are left out and the others renormalised);
    ``negative`` records are added on top so that they make up ``negative_fraction`` of the
    result where enough exist. Perspectives absent from ``ratios`` get 0.
    """
    if not 0 <= negative_fraction < 1:
        raise ValueError(f"mix: negative_fraction must be in [0, 1), got {negative_fraction}")
    bad = {p: r for p, r in ratios.items() if r < 0}
    if bad:
        raise ValueError(f"mix: ratios must be non-negative, got {bad}")
    used = {p: float(r) for p, r in ratios.items() if r > 0 and available.get(p, 0) > 0 and p != "negative"}
    targets = {p: 0 for p in available}
    if used:
        total_ratio = sum(used.values())
        n = min(available[p] * total_ratio / r for p, r in used.items())
        for p, r in used.items():
            targets[p] = min(available[p], int(np.floor(n * r / total_ratio + 1e-9)))
    positives = sum(targets.values())
    if available.get("negative", 0) and negative_fraction > 0:
        want = int(round(negative_fraction / (1 - negative_fraction) * positives)) if positives else 0
        targets["negative"] = min(available["negative"], want)
    return targets


def mix_records(
    records: list[Record],
    ratios: Mapping[str, float] | None = None,
    rng: np.random.Generator | None = None,
    negative_fraction: float = 0.1,
) -> list[Record]:
    """Downsample ``records`` so perspectives follow ``ratios`` (default ``DEFAULT_RATIOS``) and
    negatives make up ``negative_fraction``; the result is shuffled. Deterministic for a seed."""
    ratios = DEFAULT_RATIOS if ratios is None else ratios
    rng = rng if rng is not None else np.random.default_rng(0)
    groups: dict[str, list[Record]] = {}
    for r in records:
        groups.setdefault(r.perspective or "", []).append(r)
    targets = mix_targets({p: len(v) for p, v in groups.items()}, ratios, negative_fraction)
    chosen: list[Record] = []
    for p in sorted(groups):
        k = targets.get(p, 0)
        if k:
            idx = np.sort(rng.choice(len(groups[p]), size=k, replace=False))
            chosen.extend(groups[p][int(i)] for i in idx)
    return [chosen[int(i)] for i in rng.permutation(len(chosen))]
