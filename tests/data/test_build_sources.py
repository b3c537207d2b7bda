import json

import numpy as np
import pytest
import standin_generator as sg
from dataset_fixtures import make_coco, make_dicom_ct_with_seg, make_folder2d, make_per_structure
from PIL import Image

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.core.records import read_records
from mimo.data.build import BuildConfig, build
from mimo.data.slices import SliceConfig
from mimo.data.validate import validate_records

ALL_TRAIN = BuildConfig(ratios=None, splits={"train": 1.0})


def test_every_source_kind_in_one_build(tmp_path):
    f2d = make_folder2d(tmp_path / "endo")
    coco = make_coco(tmp_path / "coco")
    dcm, _ = make_dicom_ct_with_seg(tmp_path / "dcm")
    ts = make_per_structure(tmp_path / "ts")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    vqa = tmp_path / "vqa.json"
    conversation = [{"from": "human", "value": "Is this a CT?"}, {"from": "gpt", "value": "Yes."}]
    vqa.write_text(json.dumps([{"id": 1, "image": "x.png", "conversations": conversation}]))
    out = tmp_path / "out"
    report = build(
        [
            f"folder2d:{f2d},modality=endoscopy",
            f"coco:{coco},modality=endoscopy",
            f"dicom:{dcm}",
            f"per-structure:{ts}",
            f"vqa:{vqa}",
        ],
        out,
        ALL_TRAIN,
        generator=sg.generate,
        progress=False,
    )
    recs = read_records(out / "train.jsonl")
    by_source = {}
    for r in recs:
        by_source.setdefault(r.source, set()).update([r.meta["label"]] if "label" in (r.meta or {}) else [])
    assert by_source["folder2d:endo"] == {"polyp", "optic_disc"}
    assert by_source["coco:ann"] == {"polyp", "instrument"}
    assert by_source["dicom:dcm"] == {"Liver", "Spleen"}
    assert by_source["per-structure:ts"] == {"liver", "kidney_left", "spleen"}
    assert report["splits"]["train"]["by_perspective"]["vqa"] == 1
    # 2D images are written as they came (size kept); records point at them
    r2d = next(r for r in recs if r.source == "folder2d:endo" and r.masks)
    assert Image.open(out / r2d.image).size == (20, 24)
    assert rle.decode(r2d.masks["m0"]).shape == (24, 20)
    # DICOM: axial slice, liver on the patient's right = image left (radiological display)
    rd = next(
        r for r in recs if r.source == "dicom:dcm" and r.meta and r.meta["label"] == "Liver" and r.masks
    )
    xs = np.nonzero(rle.decode(rd.masks["m0"]))[1]
    assert xs.mean() < 8
    assert by_source["llava-med:vqa"] == set()
    rep = validate_records(out / "train.jsonl")
    assert rep.ok, rep.summary()


def test_lone_seg_without_its_ct_is_skipped_with_reason(tmp_path):
    from pydicom.data import get_testdata_file

    src = f"dicom:{get_testdata_file('liver.dcm')}"
    with pytest.raises(MimoDataError, match=r"liver\.dcm: no image: the series this segmentation references"):
        build([src], tmp_path / "o", ALL_TRAIN, generator=sg.generate, progress=False)
    report = build([src], tmp_path / "o", ALL_TRAIN, generator=sg.generate, on_error="skip", progress=False)
    assert report["cases"]["skipped"] == 1 and "no image" in report["skipped"][0]["error"]


def test_real_vqa_passthrough_and_bundled_mni152(tmp_path):
    (tmp_path / "vqa" / "imgs").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "vqa" / "imgs" / "q1.png")
    vqa = tmp_path / "vqa" / "slake.json"
    vqa.write_text(
        json.dumps(
            [
                {
                    "id": "q1",
                    "image": "imgs/q1.png",
                    "conversations": [
                        {"from": "human", "value": "Is this an MRI?"},
                        {"from": "gpt", "value": "Yes."},
                    ],
                }
            ]
        )
    )
    out = tmp_path / "out"
    report = build(
        [f"vqa:{vqa}", "mni152:,resolution=2,lesions=1"],
        out,
        BuildConfig(ratios=None, splits={"train": 1.0}, slices=SliceConfig(max_slices=3)),
        progress=False,
    )
    assert report["by_perspective"]["vqa"] == 1
    assert {"I", "II", "III", "IV"} <= set(report["by_perspective"])
    assert report["unmapped_labels"] == []
    assert "white matter" in report["slices_by_term"]
    rep = validate_records(out / "train.jsonl")
    assert rep.ok, rep.summary()
    with pytest.raises(MimoDataError, match="split='dev' is not one of the splits"):
        build([f"vqa:{vqa},split=dev"], tmp_path / "o2", ALL_TRAIN, progress=False)


def test_phantom_source_in_workers_matches_serial(tmp_path):
    cfg = BuildConfig(ratios=None, splits={"train": 1.0}, slices=SliceConfig(max_slices=2))
    a = build(["phantom:,n=3,size=64"], tmp_path / "a", cfg, workers=1, seed=3, progress=False)
    build(["phantom:,n=3,size=64"], tmp_path / "b", cfg, workers=2, seed=3, progress=False)
    assert a["cases"]["done"] == 3 and a["unmapped_labels"] == []
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()
    assert validate_records(tmp_path / "a" / "train.jsonl").ok
