import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from mimo.core.errors import MimoDataError
from mimo.data import imaging


def test_lps_nifti_displays_patient_left_on_image_right_anterior_up(tmp_path):
    # LPS storage: i increases toward patient Left, j toward Posterior.
    data = np.zeros((8, 6, 4), np.int16)
    data[7, 3, 2] = 100  # most-left voxel
    data[4, 0, 2] = 200  # most-anterior voxel
    affine = np.diag([-1.0, -2.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "v.nii.gz")
    vol, aff, zooms = imaging.load_nifti(tmp_path / "v.nii.gz")
    assert np.all(np.diag(aff)[:3] > 0)
    assert zooms == (1.0, 2.0, 3.0)
    sl = imaging.slice_to_display(vol, 2, 2)
    assert sl.shape == (6, 8)  # rows = A-P axis, cols = R-L axis
    r, c = np.argwhere(sl == 100)[0]
    assert c == 7  # patient left -> image right
    r, c = np.argwhere(sl == 200)[0]
    assert r == 0  # anterior -> top
    assert imaging.DISPLAY_DIRECTIONS[2] == ("L", "P")
    assert imaging.display_spacing(zooms, 2) == (2.0, 1.0)


def test_corrupt_nifti_error_names_file(tmp_path):
    p = tmp_path / "case_0000.nii.gz"
    p.write_bytes(b"this is not a nifti file")
    with pytest.raises(MimoDataError, match=r"case_0000\.nii\.gz: not a valid NIfTI file"):
        imaging.load_nifti(p)


def test_ct_windows_and_mr_normalisation():
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 1000.0])
    out = imaging.to_uint8(hu, "CT", "abdomen")
    assert out.tolist() == [0, 0, 128, 255, 255]
    assert imaging.ct_window("lung") == (-600.0, 1500.0)
    with pytest.raises(MimoDataError, match="unknown CT body region"):
        imaging.ct_window("elbow")
    rng = np.random.default_rng(0)
    mr = rng.normal(500, 100, size=(20, 20, 5)).astype(np.float32)
    mr[0, 0, 0] = 1e6  # outlier must not squash the range
    u8 = imaging.to_uint8(mr, "MR")
    assert u8.dtype == np.uint8
    assert 100 < np.median(u8) < 160
    assert u8.max() == 255 and u8.min() == 0


def test_square_pixels_keeps_physical_extent_and_mask_values():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    m = np.zeros((3, 4), bool)
    m[1, 2] = True
    out, masks, sp = imaging.square_pixels(img, {"a": m}, (2.0, 1.0))
    assert out.shape == (6, 4) and masks["a"].shape == (6, 4)
    assert sp == (1.0, 1.0)
    assert masks["a"].sum() == 2 and masks["a"][2:4, 2].all()


def test_select_slices_covers_every_structure_with_stride_and_cap():
    big = np.zeros((10, 10, 40), bool)
    big[2:8, 2:8, 5:35] = True
    tiny = np.zeros((10, 10, 40), bool)
    tiny[4, 4, 38] = True  # a single voxel, below min_pixels
    idx = imaging.select_slices({"big": big, "tiny": tiny}, 2, stride=3, max_slices=6, min_pixels=4)
    assert 38 in idx
    assert len(idx) <= 6
    assert all(5 <= i < 35 for i in idx if i != 38)
    assert all(b - a >= 3 for a, b in zip(idx, idx[1:], strict=False))
    assert imaging.select_slices({"none": np.zeros((3, 3, 3), bool)}) == []


def test_write_png_roundtrip(tmp_path):
    a = (np.arange(30).reshape(5, 6) * 8).astype(np.uint8)
    imaging.write_png(tmp_path / "x" / "a.png", a)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x" / "a.png")), a)
