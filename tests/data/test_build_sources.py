import json

import numpy as np
import pytest
import standin_generator as sg
from dataset_fixtures import make_coco, make_dicom_ct_with_seg, make_folder2d, make_per_structure
from PIL import Image

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.core.records import read_records
from mimo.core.schema import Record
from mimo.data.build import BuildConfig, build
from mimo.data.slices import SliceConfig
from mimo.data.validate import validate_records

ALL_TRAIN = BuildConfig(ratios=None, splits={"train": 1.0})


def fake_vqa(json_path, image_root, out_dir):
    items = json.loads(json_path.read_text())
    return [
        Record(
            id=f"vqa_{it['id']}",
            image=it["image"],
            conversations=[
                {"from": "human", "value": "<image>\n" + it["q"]},
                {"from": "gpt", "value": it["a"]},
            ],
        )
        for it in items
    ]


def test_every_source_kind_in_one_build(tmp_path):
    f2d = make_folder2d(tmp_path / "endo")
    coco = make_coco(tmp_path / "coco")
    dcm, _ = make_dicom_ct_with_seg(tmp_path / "dcm")
    ts = make_per_structure(tmp_path / "ts")
    vqa = tmp_path / "vqa.json"
    vqa.write_text(json.dumps([{"id": 1, "image": "x.png", "q": "Is this a CT?", "a": "Yes."}]))
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
        vqa_importer=fake_vqa,
        progress=False,
    )
    recs = read_records(out / "train.jsonl")
    by_source = {}
    for r in recs:
        by_source.setdefault(r.source or r.perspective, set()).update(r.meta["label"] for _ in [0] if r.meta)
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
    rep = validate_records(out / "train.jsonl")
    problems = {k: v for k, v in rep.problems.items() if "vqa_1" not in k}  # x.png does not exist
    assert not problems, rep.summary()


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
