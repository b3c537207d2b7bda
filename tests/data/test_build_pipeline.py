import json
import re

import nibabel as nib
import numpy as np
import pytest
import standin_generator as sg
from dataset_fixtures import label_volume, make_nnunet, save_nii

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.core.records import read_records
from mimo.core.schema import REGION_TOKEN, SEG_TOKEN, PointRegion
from mimo.data import imaging
from mimo.data.build import BuildConfig, build, parse_ratios
from mimo.data.validate import validate_records

NO_MIX = BuildConfig(ratios=None, splits={"train": 0.5, "test": 0.5})


def _records(out, splits=("train", "val", "test")):
    recs = []
    for s in splits:
        p = out / f"{s}.jsonl"
        if p.exists():
            recs += read_records(p)
    return recs


def test_nnunet_two_patients_to_all_perspectives(tmp_path):
    root = make_nnunet(tmp_path / "Dataset001_Toy")
    out = tmp_path / "out"
    report = build([f"nnunet:{root}"], out, NO_MIX, seed=1, generator=sg.generate, progress=False)
    recs = _records(out)
    assert {r.perspective for r in recs} == {"I", "II", "III", "IV", "negative"}
    assert report["cases"]["done"] == 2 and report["cases"]["skipped"] == 0
    # splits by patient: each patient's records in exactly one split
    split_of = {}
    for r in recs:
        assert split_of.setdefault(r.case, r.split) == r.split
    assert set(split_of.values()) == {"train", "test"}
    # masks decode to exactly the label voxels of the chosen slice (display orientation)
    labs = {f"pat0{i + 1}_a": label_volume(seed=i)[::-1, ::-1, :] for i in range(2)}
    names = {1: "liver", 2: "kidney_left", 3: "spleen"}
    for r in recs:
        assert sum(t.value.count(REGION_TOKEN) for t in r.conversations if t.from_ == "human") == len(
            r.regions
        )
        for t in r.conversations:
            if t.from_ == "gpt":
                assert t.value.count(SEG_TOKEN) == len(t.masks or [])
        if r.perspective == "negative":
            continue
        k = r.slice.index
        value = {n: v for v, n in names.items()}[r.meta["label"]]
        expected = imaging.slice_to_display(labs[r.case] == value, 2, k)
        expected = imaging.square_pixels(expected.astype(np.uint8), {"m": expected}, (0.8, 0.8))[1]["m"]
        mask = rle.decode(r.masks["m0"])
        np.testing.assert_array_equal(mask, expected)
        for reg in r.regions:
            if isinstance(reg, PointRegion):
                x, y = reg.points[0]
                assert mask[int(y), int(x)]
    # images exist and match mask sizes; every record validates
    for split in ("train", "test"):
        rep = validate_records(out / f"{split}.jsonl")
        assert rep.ok, rep.summary()
    assert report["slices_by_structure"]["liver"] > 0
    assert report["unmapped_labels"] == []
    assert report["slices_by_term"]["left kidney"] == report["slices_by_structure"]["kidney_left"]


def test_same_seed_byte_identical_and_parallel_equals_serial(tmp_path):
    root = make_nnunet(tmp_path / "D", case_ids=("pat01_a", "pat02_a", "pat03_a"))
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    build([f"nnunet:{root}"], a, seed=5, generator=sg.generate, progress=False)
    build([f"nnunet:{root}"], b, seed=5, generator=sg.generate, workers=2, progress=False)
    build([f"nnunet:{root}"], c, seed=6, generator=sg.generate, progress=False)
    for name in ("train.jsonl", "val.jsonl", "test.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "train.jsonl").read_bytes() != (c / "train.jsonl").read_bytes() or (
        (a / "test.jsonl").read_bytes() != (c / "test.jsonl").read_bytes()
    )
    assert (a / "train.jsonl").stat().st_size > 0


def test_parse_ratios():
    assert parse_ratios("1:2:2:1:1") == {"I": 1, "II": 2, "III": 2, "IV": 1, "vqa": 1}
    with pytest.raises(MimoDataError, match="five non-negative"):
        parse_ratios("1:2:2")


def test_mix_in_build(tmp_path):
    root = make_nnunet(tmp_path / "D")
    out = tmp_path / "o"
    report = build(
        [f"nnunet:{root}"],
        out,
        BuildConfig(splits={"train": 1.0}, ratios=parse_ratios("1:2:2:1:1")),
        generator=sg.generate,
        progress=False,
    )
    by = report["splits"]["train"]["by_perspective"]
    assert by["II"] == 2 * by["I"] and by["III"] == 2 * by["IV"] and by["I"] == by["IV"] > 0
    positives = sum(v for k, v in by.items() if k != "negative")
    assert by["negative"] == round(0.1 / 0.9 * positives)


def test_corrupt_case_raise_then_skip_and_resume(tmp_path):
    root = make_nnunet(tmp_path / "D", case_ids=("pat01_a", "pat02_a", "pat03_a"))
    (root / "imagesTr" / "pat02_a_0000.nii.gz").write_bytes(b"garbage")
    out = tmp_path / "out"
    with pytest.raises(MimoDataError, match=r"imagesTr/pat02_a_0000\.nii\.gz: not a valid NIfTI file"):
        build([f"nnunet:{root}"], out, NO_MIX, generator=sg.generate, progress=False)
    shard1 = out / "shards" / "nnunet-D" / "pat01_a.jsonl"
    assert shard1.is_file() and (out / "shards" / "nnunet-D" / "pat01_a.done.json").is_file()
    mtime = shard1.stat().st_mtime_ns
    assert not (out / "train.jsonl").exists()

    sg.CALLS.clear()
    report = build([f"nnunet:{root}"], out, NO_MIX, generator=sg.generate, on_error="skip", progress=False)
    assert shard1.stat().st_mtime_ns == mtime  # finished case not redone
    assert not any("pat01_a" in c for c in sg.CALLS)
    assert report["cases"]["resumed"] == 1 and report["cases"]["built_now"] == 1
    (sk,) = report["skipped"]
    assert sk["case"] == "pat02_a" and "not a valid NIfTI" in sk["error"]
    on_disk = json.loads((out / "build_report.json").read_text())
    assert on_disk["skipped"][0]["case"] == "pat02_a"
    assert {r.case for r in _records(out)} == {"pat01_a", "pat03_a"}
    assert not list(out.rglob("*.tmp"))


def test_interrupted_build_resumes(tmp_path):
    root = make_nnunet(tmp_path / "D", case_ids=("pat01_a", "pat02_a", "pat03_a"))
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        build([f"nnunet:{root}"], out, NO_MIX, generator=sg.failing_on("pat03"), progress=False)
    sg.CALLS.clear()
    report = build([f"nnunet:{root}"], out, NO_MIX, generator=sg.generate, progress=False)
    assert report["cases"] == {"done": 3, "built_now": 1, "resumed": 2, "skipped": 0}
    assert all("pat03_a" in c for c in sg.CALLS) and sg.CALLS
    fresh = tmp_path / "fresh"
    build([f"nnunet:{root}"], fresh, NO_MIX, generator=sg.generate, progress=False)
    for s in ("train.jsonl", "test.jsonl"):
        assert (out / s).read_bytes() == (fresh / s).read_bytes()


def test_resume_with_other_source_settings_is_refused_and_changes_nothing(tmp_path):
    """Finished cases are reused on resume only when they were made the same way: other slicing
    (or options, seed, perspective options) for a source is refused, with the way out named."""
    root = make_nnunet(tmp_path / "D", case_ids=("pat01_a", "pat02_a"))
    out = tmp_path / "out"
    build([f"nnunet:{root}"], out, NO_MIX, generator=sg.generate, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for changed, kwargs in (("slices", {}), ("seed", {"seed": 5})):
        source = f"nnunet:{root},max_slices=2" if changed == "slices" else f"nnunet:{root}"
        with pytest.raises(
            MimoDataError,
            match=rf"source nnunet-D was built there with other settings \(changed: {changed}\).*delete .*shards/nnunet-D",
        ):
            build([source], out, NO_MIX, generator=sg.generate, progress=False, **kwargs)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # the same settings resume; a new folder takes the new ones
    assert (
        build([f"nnunet:{root}"], out, NO_MIX, generator=sg.generate, progress=False)["cases"]["resumed"] == 2
    )
    other = build(
        [f"nnunet:{root},max_slices=2"], tmp_path / "new", NO_MIX, generator=sg.generate, progress=False
    )
    assert other["cases"]["built_now"] == 2


def test_build_leaves_the_callers_source_specs_as_they_were(tmp_path):
    from mimo.data.readers import parse_source

    root = make_nnunet(tmp_path / "D", case_ids=("pat01_a", "pat02_a"))
    spec = parse_source(f"nnunet:{root},max_slices=2,split=test")
    options = dict(spec.options)
    build([spec], tmp_path / "a", NO_MIX, generator=sg.generate, progress=False)
    assert spec.options == options
    # so the same spec builds the same thing twice
    build([spec], tmp_path / "b", NO_MIX, generator=sg.generate, progress=False)
    assert (tmp_path / "a" / "test.jsonl").read_bytes() == (tmp_path / "b" / "test.jsonl").read_bytes()


def test_declared_label_absent_from_every_volume(tmp_path):
    """nnU-Net/MSD's dataset.json names the labels of the whole dataset: one that no case holds
    is a warning (issue 17), under either --on-error."""
    labels = {"background": 0, "liver": 1, "kidney_left": 2, "spleen": 3, "pancreas": 4}
    root = make_nnunet(tmp_path / "D", labels=labels)
    for on_error in ("raise", "skip"):
        report = build(
            [f"nnunet:{root}"],
            tmp_path / on_error,
            NO_MIX,
            generator=sg.generate,
            on_error=on_error,
            progress=False,
        )
        assert report["problems"] == []
        assert len(report["warnings"]) == 1
        assert re.search(
            r"dataset\.json: names label\(s\) 'pancreas' \(id 4\) that no label volume", report["warnings"][0]
        )


def test_shape_mismatch_and_empty_dataset(tmp_path):
    root = make_nnunet(tmp_path / "D")
    save_nii(root / "labelsTr" / "pat02_a.nii.gz", np.zeros((32, 30, 12), np.uint8))
    with pytest.raises(MimoDataError, match=r"labelsTr/pat02_a\.nii\.gz: label shape"):
        build([f"nnunet:{root}"], tmp_path / "o", NO_MIX, generator=sg.generate, progress=False)
    assert (tmp_path / "o" / "shards" / "nnunet-D" / "pat01_a.done.json").is_file()
    empty = tmp_path / "E"
    (empty / "labelsTr").mkdir(parents=True)
    (empty / "dataset.json").write_text('{"labels": {"background": 0, "a": 1}, "file_ending": ".nii.gz"}')
    with pytest.raises(MimoDataError, match="empty dataset"):
        build([f"nnunet:{empty}"], tmp_path / "o2", generator=sg.generate, progress=False)
    assert nib  # fixtures use nibabel
