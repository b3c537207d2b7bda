"""Bundled offline sources: MNI152 (nilearn) and procedural phantoms."""

import numpy as np
import pytest

from mimo.data.knowledge import normalize_label
from mimo.data.sources.mni152 import read_mni152
from mimo.data.sources.phantom import read_phantom


@pytest.fixture(scope="module")
def mni():
    return list(read_mni152(lesions=2, seed=3, resolution=1))[0]


def test_mni152_offline_masks_hemispheres_lesions(mni):
    assert mni.patient_id == "MNI152" and mni.modality == "MR" and mni.body_region == "head"
    assert np.all(np.diag(mni.affine)[:3] > 0)  # RAS+
    for name, mask in mni.labels.items():
        assert mask.shape == mni.image.shape and mask.any(), name
        assert normalize_label(name, "MR") is not None, name
    lab = mni.labels
    assert not (lab["grey_matter"] & lab["white_matter"]).any()
    assert not (lab["left_hemisphere"] & lab["right_hemisphere"]).any()
    # RAS+: voxel x grows to the patient's right, so the left hemisphere has the lower indices
    xs_left = np.nonzero(lab["left_hemisphere"])[0].mean()
    xs_right = np.nonzero(lab["right_hemisphere"])[0].mean()
    assert xs_left < xs_right
    for i in (1, 2):
        les = lab[f"lesion_{i}"]
        assert (les & ~lab["brain"]).sum() == 0 and not (les & lab["white_matter"]).any()
        assert mni.image[les].mean() < mni.image[lab["white_matter"]].mean()


def test_mni152_deterministic_and_slabs(mni):
    again = list(read_mni152(lesions=2, seed=3, resolution=1))[0]
    assert np.array_equal(again.labels["lesion_1"], mni.labels["lesion_1"])
    slab = list(read_mni152(slices=(60, 80)))[0]
    assert slab.image.shape[2] == 20 and slab.meta["axial_range"] == (60, 80)
    assert slab.affine[2, 3] == pytest.approx(mni.affine[2, 3] + 60 * mni.affine[2, 2])
    np.testing.assert_array_equal(slab.labels["brain"], mni.labels["brain"][:, :, 60:80])
    with pytest.raises(ValueError, match="slices"):
        list(read_mni152(slices=(80, 60)))


def test_phantoms_deterministic_distinct_and_named():
    cases = list(read_phantom(n=6, seed=1, size=64))
    assert [c.meta["kind"] for c in cases] == ["abdomen_ct", "chest_xray", "brain_mri"] * 2
    assert len({c.patient_id for c in cases}) == 6 and cases[3].patient_id == "phantom_abdomen_ct_s1_0003"
    again = list(read_phantom(n=6, seed=1, size=64))
    other = list(read_phantom(n=6, seed=2, size=64))
    for a, b, c in zip(cases, again, other, strict=True):
        assert np.array_equal(a.image, b.image)
        assert not np.array_equal(a.image, c.image)
        for name, mask in a.labels.items():
            assert mask.any() and mask.shape == (a.image.shape if a.is_volume else a.image.shape[:2])
            assert normalize_label(name, a.modality) is not None, name


def test_phantom_anatomy_sides():
    ct, xr, mr = list(read_phantom(n=3, seed=0, size=64))
    # RAS+ volume: the liver (patient right) has larger x indices than the spleen (patient left)
    assert np.nonzero(ct.labels["liver"])[0].mean() > np.nonzero(ct.labels["spleen"])[0].mean()
    assert ct.image[ct.labels["vertebra"]].mean() > 300  # bone in HU
    # PA chest as displayed: patient left on image right
    assert xr.meta["image_right"] == "L" and xr.image.ndim == 2
    assert np.nonzero(xr.labels["lung_left"])[1].mean() > np.nonzero(xr.labels["lung_right"])[1].mean()
    assert (
        np.nonzero(mr.labels["Left-Lateral-Ventricle"])[0].mean()
        < np.nonzero(mr.labels["Right-Lateral-Ventricle"])[0].mean()
    )


def test_phantom_rejects_bad_options():
    with pytest.raises(ValueError, match="kinds"):
        list(read_phantom(n=1, kinds=("knee_mri",)))
    with pytest.raises(ValueError, match="unknown option"):
        list(read_phantom(n=1, colour="red"))
