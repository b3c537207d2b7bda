import json

import numpy as np
import pytest
from dataset_fixtures import (
    label_volume,
    make_coco,
    make_dicom_ct_with_seg,
    make_folder2d,
    make_nnunet,
    make_per_structure,
    save_nii,
)

from mimo.core.errors import MimoDataError
from mimo.data.readers import (
    CASE,
    READERS,
    RECORD,
    kinds_help,
    list_source,
    parse_source,
    read_source,
    reader_options,
)


def _canon_labels(seed=0):
    """Expected RAS+ masks of the fixture: LPS storage flipped on the first two axes."""
    lab = label_volume(seed=seed)[::-1, ::-1, :]
    return {"liver": lab == 1, "kidney_left": lab == 2, "spleen": lab == 3}


@pytest.mark.parametrize("msd", [False, True])
def test_nnunet_and_msd_yield_the_written_structures(tmp_path, msd):
    root = make_nnunet(tmp_path / "Dataset001_Toy", msd=msd)
    cases = list(read_source(f"{'msd' if msd else 'nnunet'}:{root},patient_regex=^(pat\\d+)"))
    assert [c.case_id for c in cases] == ["pat01_a", "pat02_a"]
    assert [c.patient_id for c in cases] == ["pat01", "pat02"]
    for i, c in enumerate(cases):
        assert c.modality == "CT" and c.is_volume
        assert c.spacing == pytest.approx((0.8, 0.8, 2.5))
        assert np.all(np.diag(c.affine)[:3] > 0)  # RAS+ canonical
        exp = _canon_labels(seed=i)
        assert set(c.labels) == set(exp)
        for name, m in exp.items():
            np.testing.assert_array_equal(c.labels[name], m)
        # liver sits on the patient's right: high i in RAS+
        assert np.argwhere(c.labels["liver"])[:, 0].mean() > np.argwhere(c.labels["kidney_left"])[:, 0].mean()


def test_nnunet_region_labels(tmp_path):
    labels = {"background": 0, "liver": 1, "abdominal organs": [1, 2, 3], "kidney_left": 2, "spleen": 3}
    root = make_nnunet(tmp_path / "Dataset002", labels=labels)
    case = next(iter(read_source(f"nnunet:{root}")))
    lab = label_volume(seed=0)[::-1, ::-1, :]
    np.testing.assert_array_equal(case.labels["abdominal organs"], lab > 0)


def test_nnunet_errors_name_the_file(tmp_path):
    with pytest.raises(MimoDataError, match=r"dataset\.json: dataset\.json .*not found"):
        list_source(parse_source(f"nnunet:{tmp_path}"))
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0,')
    with pytest.raises(MimoDataError, match=r"dataset\.json: malformed JSON .*line 1"):
        list_source(parse_source(f"nnunet:{tmp_path}"))
    (tmp_path / "dataset.json").write_text('{"channel_names": {"0": "CT"}}')
    with pytest.raises(MimoDataError, match=r"dataset\.json: missing field 'labels'"):
        list_source(parse_source(f"nnunet:{tmp_path}"))
    (tmp_path / "dataset.json").write_text(
        '{"labels": {"background": 0, "liver": 1}, "file_ending": ".nii.gz"}'
    )
    (tmp_path / "labelsTr").mkdir()
    with pytest.raises(MimoDataError, match="empty dataset"):
        list_source(parse_source(f"nnunet:{tmp_path}"))


def test_nnunet_shape_mismatch_and_unknown_label_value(tmp_path):
    root = make_nnunet(tmp_path / "D", case_ids=("a", "b"))
    save_nii(root / "labelsTr" / "a.nii.gz", np.zeros((32, 32, 10), np.uint8))
    lab = label_volume(seed=1)
    lab[0, 0, 0] = 9
    save_nii(root / "labelsTr" / "b.nii.gz", lab)
    refs = list_source(parse_source(f"nnunet:{root}")).refs
    with pytest.raises(
        MimoDataError,
        match=r"labelsTr/a\.nii\.gz: label shape \(32, 32, 10\) does not match image imagesTr/a_0000",
    ):
        refs[0].load()
    with pytest.raises(
        MimoDataError,
        match=r"labelsTr/b\.nii\.gz: contains label value\(s\) \[9\] that dataset\.json does not name",
    ):
        refs[1].load()


def test_per_structure(tmp_path):
    root = make_per_structure(tmp_path / "totalseg")
    cases = list(read_source(f"per-structure:{root}"))
    assert [c.patient_id for c in cases] == ["s0001", "s0002"]
    for i, c in enumerate(cases):
        for name, m in _canon_labels(seed=i).items():
            np.testing.assert_array_equal(c.labels[name], m)


@pytest.mark.parametrize("label_map", [True, False])
def test_folder2d(tmp_path, label_map):
    root = make_folder2d(tmp_path / "f", label_map=label_map)
    cases = list(read_source(f"folder2d:{root},modality=endoscopy,patient_regex=^(p\\d)"))
    assert [c.patient_id for c in cases] == ["p0", "p1"]
    c = cases[0]
    assert c.image.shape == (24, 20) and c.modality == "endoscopy"
    assert set(c.labels) == {"polyp", "optic_disc"}
    assert c.labels["polyp"].sum() == 7 * 6 and c.labels["polyp"][3:10, 2:8].all()
    assert c.labels["optic_disc"].sum() == 8 * 8


def test_folder2d_label_file_mismatch(tmp_path):
    root = make_folder2d(tmp_path / "f")
    (root / "labels.txt").write_text("1 polyp\n")  # value 2 in the masks is not named
    with pytest.raises(
        MimoDataError, match=r"p0_img\.png: contains label value\(s\) \[2\] that labels\.txt does not name"
    ):
        list(read_source(f"folder2d:{root}"))


def test_coco_polygons_and_rle(tmp_path):
    jp = make_coco(tmp_path / "coco")
    cases = list(read_source(f"coco:{jp},modality=endoscopy"))
    assert [c.case_id for c in cases] == ["a", "b"]
    assert cases[0].patient_id == "P1" and cases[1].patient_id == "b"
    a = cases[0]
    assert set(a.labels) == {"polyp", "instrument"}
    assert a.labels["polyp"][3:8, 3:10].all() and not a.labels["polyp"][12:, :].any()
    inst = np.zeros((16, 20), bool)
    inst[:, 5:8] = True
    np.testing.assert_array_equal(a.labels["instrument"], inst)


def test_dicom_series_with_seg(tmp_path):
    folder, liver = make_dicom_ct_with_seg(tmp_path / "dcm")
    (case,) = list(read_source(f"dicom:{folder}"))
    assert case.patient_id == "PAT7" and case.modality == "CT"
    assert set(case.labels) == {"Liver", "Spleen"}
    assert case.image.shape == (16, 16, 5) and case.is_volume
    assert case.spacing == pytest.approx((0.7, 0.7, 2.0))
    # LPS (slice, row=y, col=x) -> RAS+ (i=R, j=A, k=S): flip x and y, transpose
    expected = liver.transpose(2, 1, 0)[::-1, ::-1, :]
    np.testing.assert_array_equal(case.labels["Liver"], expected)
    assert case.image[case.labels["Liver"]].mean() == pytest.approx(60.0)  # HU inside the liver
    inner = case.image[:, :, 1:4][~case.labels["Liver"][:, :, 1:4]]  # CT liver drawn on every slice
    assert inner.max() == pytest.approx(-50.0)


def test_lone_dicom_seg_liver_dcm():
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    path = get_testdata_file("liver.dcm")
    (case,) = list(read_source(f"dicom:{path}"))
    assert list(case.labels) == ["Liver"]
    assert case.meta["image_missing"] is True
    assert case.meta["n_frames"] == 3
    m = case.labels["Liver"]
    assert m.shape == (512, 512, 3) and case.is_volume
    frames = dcmread(path).pixel_array.astype(bool)
    assert sorted(int(f.sum()) for f in frames) == sorted(int(m[:, :, k].sum()) for k in range(3))


def test_parse_source_and_registry():
    s = parse_source("nnunet:/data/Dataset218_AMOS,body_region=abdomen,channel=0")
    assert (s.kind, s.path, s.options) == (
        "nnunet",
        "/data/Dataset218_AMOS",
        {"body_region": "abdomen", "channel": 0},
    )
    assert s.name == "nnunet-Dataset218_AMOS"
    assert parse_source("phantom:,n=3").options == {"n": 3}
    assert parse_source("mni152:,lesions=2").path is None
    assert parse_source("mni152").options == {}
    assert {"nnunet", "msd", "per-structure", "dicom", "folder2d", "coco", "mni152", "phantom"} <= set(
        READERS
    )
    with pytest.raises(MimoDataError, match="unknown kind 'nifti'"):
        parse_source("nifti:/x")
    with pytest.raises(MimoDataError, match="needs a path"):
        parse_source("nnunet")


def test_registry_has_two_kinds_and_checks_options_in_one_place():
    record_kinds = {name for name, entry in READERS.items() if entry.kind == RECORD}
    assert record_kinds == {"mecovqa", "llava-med", "vqa-rad", "slake", "pathvqa", "caption"}
    assert all(entry.kind in (CASE, RECORD) for entry in READERS.values())
    assert [name for name, entry in READERS.items() if not entry.mixed] == ["caption"]
    assert reader_options(parse_source("slake:/d,lang=zh,name=2021")) == {"lang": "zh", "name": "2021"}
    with pytest.raises(
        MimoDataError, match=r"slake:/d: unknown option\(s\) \['colour'\]; slake accepts \[.*'lang'"
    ):
        reader_options(parse_source("slake:/d,colour=red"))
    with pytest.raises(MimoDataError, match=r"unknown option\(s\) \['kind'\]"):
        reader_options(parse_source("nnunet:/d,kind=msd"))
    with pytest.raises(MimoDataError, match="expected one of nnunet, .*caption, .*vqa"):
        parse_source("llava:/d")
    assert "vqa" in kinds_help().splitlines()[-1].split()[0]


def test_unknown_reader_option_is_a_clear_error(tmp_path):
    root = make_nnunet(tmp_path / "D")
    with pytest.raises(MimoDataError, match=r"unknown option\(s\) \['colour'\]"):
        list_source(parse_source(f"nnunet:{root},colour=red"))
    assert json.loads((root / "dataset.json").read_text())["labels"]["liver"] == 1


def test_label_names_option_renames_numeric_labels(tmp_path):
    labels = {"background": 0, "3": 1, "7": 2, "GTVp": 3}
    root = make_nnunet(tmp_path / "D", labels=labels)
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"3": "liver", "7": "kidney_left"}))
    listing = list_source(parse_source(f"nnunet:{root},label_names={names}"))
    case = listing.refs[0].load()
    assert set(case.labels) == {"liver", "kidney_left", "GTVp"}
    assert set(listing.declared_labels[str(root / "dataset.json")]) == {"liver", "kidney_left", "GTVp"}
    (case2,) = list(read_source(f"nnunet:{root},label_names={names}"))[:1]
    assert "liver" in case2.labels
    names.write_text("[1, 2]")
    with pytest.raises(MimoDataError, match=r"names\.json: expected a JSON object"):
        list_source(parse_source(f"nnunet:{root},label_names={names}"))
