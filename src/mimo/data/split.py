"""Train/val/test splits by patient, never by slice or case."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from mimo.core.errors import MimoDataError

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}


def split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """How many of ``n`` patients each split gets (largest remainder, ties in the given order)."""
    if not fractions or any(f < 0 for f in fractions.values()) or sum(fractions.values()) <= 0:
        raise MimoDataError(f"split fractions must be non-negative and not all zero, got {dict(fractions)}")
    total = float(sum(fractions.values()))
    exact = {k: n * f / total for k, f in fractions.items()}
    counts = {k: int(np.floor(v)) for k, v in exact.items()}
    left = n - sum(counts.values())
    order = sorted(fractions, key=lambda k: (-(exact[k] - counts[k]), list(fractions).index(k)))
    for k in order[:left]:
        counts[k] += 1
    return counts


def split_patients(
    patient_ids: Iterable[str], fractions: Mapping[str, float] | None = None, seed: int = 0
) -> dict[str, str]:
    """Assign every patient to one split.

    The unique ids are sorted, permuted with ``numpy.random.default_rng(seed)`` and cut in
    the proportions of ``fractions`` (default 0.8/0.1/0.1), so the result depends only on
    the set of ids and the seed. A patient is never in two splits.

    Returns:
        ``{patient_id: split_name}``.
    """
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    ids = sorted(set(patient_ids))
    counts = split_counts(len(ids), fractions)
    perm = np.random.default_rng(seed).permutation(len(ids))
    out: dict[str, str] = {}
    start = 0
    for name, c in counts.items():
        for p in perm[start : start + c]:
            out[ids[int(p)]] = name
        start += c
    return out
