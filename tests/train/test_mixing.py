"""The per-epoch mix: a pure function of (seed, epoch), in the configured proportions."""

from __future__ import annotations

from collections import Counter

from mimo.train.dataset import EpochBatches, epoch_order

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
