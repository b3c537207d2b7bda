"""The per-epoch mix: a pure function of (seed, epoch), in the configured proportions."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mimo.core.errors import MimoDataError
from mimo.train.dataset import EpochBatches, epoch_order, group_by_length, source_pool

RATIOS = {"I": 1, "II": 2, "III": 2, "IV": 1, "vqa": 1}


def test_order_is_a_function_of_seed_and_epoch():
    persp = ["I"] * 30 + ["II"] * 5 + ["III"] * 50 + ["IV"] * 10 + ["vqa"] * 5 + ["negative"] * 7
    a = epoch_order(persp, RATIOS, seed=3, epoch=1)
    assert a == epoch_order(persp, RATIOS, seed=3, epoch=1)
    assert a != epoch_order(persp, RATIOS, seed=3, epoch=2)
    assert a != epoch_order(persp, RATIOS, seed=4, epoch=1)
    counts = Counter(persp[i] for i in a)
    n_mixed = 100
    for key, weight in RATIOS.items():
        assert counts[key] == round(n_mixed * weight / 7), (key, counts)
    assert counts["negative"] == 7
    only = Counter(persp[i] for i in epoch_order(persp, {"I": 1, "II": 0}, seed=0, epoch=0))
    assert "II" not in only and only["I"] == 30 and only["III"] == 50 and only["negative"] == 7


def test_no_ratios_is_a_permutation_and_ranks_get_equal_shares():
    order = epoch_order([None] * 11, None, seed=0, epoch=0)
    assert sorted(order) == list(range(11))
    shares = [EpochBatches(order, 2, rank, 2) for rank in range(2)]
    assert len(shares[0]) == len(shares[1]) == 3
    flat = [i for s in shares for b in s.batches for i in b]
    assert set(flat) == set(range(11))


def padding(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_length_grouping_cuts_padding_and_keeps_the_epoch():
    rng = np.random.default_rng(0)
    lengths = [int(v) for v in rng.choice([20, 60, 400, 1500], size=403)]  # short VQA to long reports
    order = epoch_order([None] * len(lengths), None, seed=0, epoch=0)
    batch, world = 4, 2
    grouped = group_by_length(order, lengths, batch * world, seed=0, epoch=0)
    assert sorted(grouped) == sorted(order)  # the same records, each as often
    assert grouped == group_by_length(order, lengths, batch * world, seed=0, epoch=0)
    assert grouped != group_by_length(order, lengths, batch * world, seed=0, epoch=1)
    plain = [b for r in range(world) for b in EpochBatches(order, batch, r, world).batches]
    shares = [EpochBatches(grouped, batch, r, world).batches for r in range(world)]
    assert len(shares[0]) == len(shares[1]) == len(EpochBatches(order, batch, 0, world))
    assert padding([b for s in shares for b in s], lengths) < 0.1 * padding(plain, lengths)
    # the first step holds the longest record (a batch too big for memory fails at once)
    assert max(lengths[i] for i in shares[0][0] + shares[1][0]) == max(lengths)
    # step j of every rank draws from one chunk: the ranks' batches are alike in length
    for a, b in zip(*shares, strict=True):
        assert max(lengths[i] for i in a) == max(lengths[i] for i in b) or len(a) < batch


def test_source_pool_repeats_a_source_and_keeps_epochs_the_same_length():
    sources = ["a"] * 10 + ["b"] * 4 + [None] * 2
    pool = source_pool(sources, {"b": 2.5}, seed=0)
    counts = Counter(sources[i] for i in pool)
    assert counts == {"a": 10, "b": 10, None: 2}  # 4 x 2 + half of 4 once more
    assert pool == source_pool(sources, {"b": 2.5}, seed=0)
    assert source_pool(sources, None, seed=0) == list(range(16))
    assert Counter(sources[i] for i in source_pool(sources, {"a": 0}, seed=1)) == {"b": 4, None: 2}
    lengths = {len(epoch_order([None] * len(pool), None, seed=0, epoch=e)) for e in range(3)}
    assert lengths == {len(pool)}


def test_source_pool_refuses_a_source_the_records_do_not_have():
    with pytest.raises(MimoDataError, match="hc18"):
        source_pool(["msd:x"] * 3, {"folder2d:hc18": 2}, seed=0)
