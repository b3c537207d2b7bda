"""Fixtures of the evaluation tests."""

import pytest
from eval_helpers import box_mask


@pytest.fixture
def liver():
    return box_mask(0, 4, 0, 4)


@pytest.fixture
def spleen():
    return box_mask(4, 8, 4, 8)
