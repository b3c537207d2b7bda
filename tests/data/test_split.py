import pytest

from mimo.core.errors import MimoDataError
from mimo.data.split import split_counts, split_patients


def test_split_by_patient_is_deterministic_and_disjoint():
    ids = [f"p{i:03d}" for i in range(50)]
    a = split_patients(ids + ids[:10], seed=3)  # repeated ids (several cases per patient)
    assert set(a) == set(ids)
    assert split_patients(list(reversed(ids)), seed=3) == a  # order of arrival does not matter
    assert split_patients(ids, seed=4) != a
    counts = {s: sum(1 for v in a.values() if v == s) for s in ("train", "val", "test")}
    assert counts == {"train": 40, "val": 5, "test": 5}


def test_split_counts_rounding_and_errors():
    assert split_counts(2, {"train": 0.8, "val": 0.1, "test": 0.1}) == {"train": 2, "val": 0, "test": 0}
    assert sum(split_counts(7, {"train": 0.7, "val": 0.15, "test": 0.15}).values()) == 7
    with pytest.raises(MimoDataError, match="non-negative"):
        split_counts(3, {"train": -1})
