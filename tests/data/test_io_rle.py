import numpy as np
import pytest

from mimo.core import rle
from mimo.core.schema import RLE


def test_roundtrip_non_square_asymmetric():
    rng = np.random.default_rng(0)
    mask = rng.random((7, 13)) > 0.6
    mask[0, 12] = True  # top-right corner: catches transposition / order bugs
    mask[6, 0] = False
    enc = rle.encode(mask)
    assert isinstance(enc, RLE)
    assert enc.size == (7, 13)
    assert isinstance(enc.counts, str)
    dec = rle.decode(enc)
    assert dec.dtype == bool and dec.shape == (7, 13)
    np.testing.assert_array_equal(dec, mask)
    np.testing.assert_array_equal(rle.decode(enc.model_dump()), mask)
    assert rle.area(enc) == int(mask.sum())


def test_uncompressed_counts_list():
    # column-major runs: 2 zeros, 3 ones, rest zeros in a 3x2 mask
    dec = rle.decode({"size": [3, 2], "counts": [2, 3, 1]})
    expected = np.array([[0, 1], [0, 1], [1, 0]], dtype=bool)
    np.testing.assert_array_equal(dec, expected)


def test_encode_rejects_3d():
    with pytest.raises(ValueError, match="2D"):
        rle.encode(np.zeros((2, 2, 2), bool))
