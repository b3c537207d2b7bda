"""Image and volume loading: DICOM rescale + window, NIfTI slices in display orientation, and
the display/canonical transforms undone exactly (no model needed)."""

from __future__ import annotations

import nibabel as nib
import nibabel.orientations as no
import numpy as np
import pytest

from mimo.data import imaging
from mimo.infer.images import ImageInputError, load_image, load_volume, parse_window

from .test_volume import canonical_from_display, write_ct_series
from .tiny_model import volume_samples


def test_dicom_rescale_and_window_reproduce_the_image(tmp_path):
    images = [s["image"] for s in volume_samples()]
    write_ct_series(tmp_path / "series", images)
    # the file's own window (127.5/255) on HU = pixel - 1024 gives back the 8-bit image
    assert np.array_equal(load_image(tmp_path / "series" / "slice01.dcm"), images[1])
    # an explicit window wins: abdomen 40/400 maps HU v to (v + 160) / 400 * 255
    windowed = load_image(tmp_path / "series" / "slice01.dcm", window=(40, 400))
    assert np.array_equal(windowed, imaging.window_ct(images[1].astype(np.float32), 40, 400))
    volume = load_volume(tmp_path / "series")
    assert volume.modality == "CT" and volume.n_slices == 3
    assert all(np.array_equal(volume.slice(k), images[k]) for k in range(3))


def test_nifti_slices_and_exact_inverse_in_any_orientation(tmp_path):
    images = [s["image"] for s in volume_samples()]
    canonical = canonical_from_display(images)
    for axcodes in ("RAS", "LPS", "PIR"):
        ornt = no.axcodes2ornt(axcodes)
        transform = no.ornt_transform(no.axcodes2ornt("RAS"), ornt)
        stored = no.apply_orientation(canonical, transform)
        affine = np.diag([0.7, 0.7, 2.5, 1]) @ no.inv_ornt_aff(transform, canonical.shape)
        assert "".join(nib.aff2axcodes(affine)) == axcodes
        path = tmp_path / f"{axcodes}.nii.gz"
        nib.save(nib.Nifti1Image(stored.astype(np.uint8), affine), path)
        volume = load_volume(path)
        assert [np.array_equal(volume.slice(k), images[k]) for k in range(3)] == [True] * 3
        assert np.array_equal(load_image(path, 2), images[2])
        back = volume.to_original(volume.from_display(np.stack(images)))
        assert np.array_equal(back, stored)


def test_volume_errors_name_the_file(tmp_path):
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.uint8), np.eye(4)), path)
    with pytest.raises(ImageInputError, match=r"v.nii.gz: a volume; give the axial slice"):
        load_image(path)
    with pytest.raises(ImageInputError, match="slice 5 out of range; the volume has 3"):
        load_image(path, 5)
    with pytest.raises(ImageInputError, match="no DICOM image"):
        load_volume(tmp_path)
    with pytest.raises(ImageInputError, match="LEVEL,WIDTH"):
        parse_window("40")
