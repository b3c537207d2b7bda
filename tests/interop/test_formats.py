"""Each public format, written to its published specification, reads into records; MeCoVQA
records write back to files equal to the input."""

from __future__ import annotations

import numpy as np
import pytest

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.data.interop.mecovqa import read_mecovqa, write_mecovqa
from mimo.data.interop.samed2d import label_of, list_samed2d
from mimo.data.interop.vqa_sets import read_llava_med, read_pathvqa, read_slake, read_vqa_rad
from tests.interop import fixtures as F


def records(source):
    return [item.make() for item in source.items]


@pytest.mark.parametrize("jsonl", [False, True])
def test_mecovqa_reads_region_and_mask_markup(tmp_path, jsonl):
    F.mecovqa(tmp_path / "m", jsonl=jsonl)
    recs = records(read_mecovqa(tmp_path / "m", tmp_path / "out"))
    g, region, gplus, vqa = recs
    assert g.conversations[1].value == "Sure, it is <SEG>." and g.conversations[1].masks == ["m0"]
    assert np.array_equal(rle.decode(g.masks["m0"]), F.mask(4, 4) > 0)
    assert (g.modality, g.case, g.slice.axis, g.slice.index) == ("CT", "AbdomenCT1K--Case_00001", 2, 61)
    assert region.conversations[0].value == "<image>\nWhat is in <region>?"
    assert region.regions[0].type == "mask" and region.modality == "MR"
    assert region.meta["answer_type"] == "open"
    assert gplus.conversations[1].masks == ["m0", "m1"]
    assert np.array_equal(rle.decode(gplus.masks["m1"]), F.mask(18, 22) > 0)
    assert vqa.perspective == "vqa" and vqa.meta["answer_type"] == "closed"
    assert (tmp_path / "out" / g.image).is_file()


def test_mecovqa_written_back_equals_input(tmp_path):
    src = F.mecovqa(tmp_path / "m")
    recs = records(read_mecovqa(tmp_path / "m", tmp_path / "out"))
    out = write_mecovqa(recs, tmp_path / "w" / src.name, tmp_path / "w")
    assert out.read_bytes() == src.read_bytes()
    masks = sorted((tmp_path / "m" / "masks").iterdir())
    assert masks
    for m in masks:
        assert (tmp_path / "w" / "masks" / m.name).read_bytes() == m.read_bytes()


def test_builder_records_written_as_mecovqa_read_back(tmp_path):
    """Records from elsewhere (no MeCoVQA meta) get mask files and read back identically."""
    F.mecovqa(tmp_path / "m")
    recs = records(read_mecovqa(tmp_path / "m", tmp_path / "out"))
    plain = [r.model_copy(update={"meta": None}) for r in recs[:3]]
    write_mecovqa(plain, tmp_path / "w" / "x.json", tmp_path / "w", records_dir=tmp_path / "out")
    again = records(read_mecovqa(tmp_path / "w", None, json="x.json"))
    for a, b in zip(plain, again, strict=True):
        assert [t.value for t in a.conversations] == [t.value for t in b.conversations]
        assert a.masks == b.masks and a.regions == b.regions


def test_samed2d_cases_from_json_and_names(tmp_path):
    F.samed2d(tmp_path / "s")
    listing = list_samed2d(tmp_path / "s")
    assert [r.patient_id for r in listing.refs] == [
        "AbdomenCT1K--Case_00001",
        "AbdomenCT1K--Case_00002",
        "BraTS--Case_00007",
    ]
    case = listing.refs[0].load()
    assert case.modality == "CT" and set(case.labels) == {"liver", "kidney_left"}
    assert case.labels["kidney_left"].sum() == 160  # two instances merged
    assert listing.refs[2].load().modality == "MR"
    assert label_of("masks/a--b--c--x_1--heart_atrium_left_003.png", "a--b--c--x_1") == (
        "heart_atrium_left",
        "003",
    )
    assert label_of("masks/amos_0004_75_liver_000.png", "amos_0004_75") == ("liver", "000")  # the repo's demo


def test_slake_keeps_english_and_answer_types(tmp_path):
    F.slake(tmp_path)
    src = read_slake(tmp_path, tmp_path / "out")
    recs = records(src)
    assert [i.split for i in src.items] == ["train", "val", "test"]
    assert [r.meta["answer_type"] for r in recs] == ["closed", "open", "open"]
    assert recs[0].modality == "CT" and recs[0].meta["slake"]["location"] == "Abdomen"
    assert recs[0].conversations[0].value == "<image>\nDoes the picture contain liver?"


def test_vqa_rad_splits_by_phrase_type(tmp_path):
    F.vqa_rad(tmp_path)
    src = read_vqa_rad(tmp_path, tmp_path / "out")
    recs = records(src)
    assert [i.split for i in src.items] == ["train", "test"]
    assert recs[1].conversations[1].value == "2" and recs[1].meta["answer_type"] == "open"
    assert recs[0].meta["vqa-rad"]["question_type"] == "PRES"


@pytest.mark.parametrize("form", ["csv", "json"])
def test_pathvqa_tables(tmp_path, form):
    F.pathvqa(tmp_path, form)
    recs = records(read_pathvqa(tmp_path, tmp_path / "out"))
    assert [r.meta["answer_type"] for r in recs] == ["closed", "open", "closed", "open"]
    assert all(r.modality == "pathology" or r.modality is None for r in recs)


def test_pathvqa_pickles_are_refused_not_loaded(tmp_path):
    F.pathvqa(tmp_path, "pkl")
    with pytest.raises(MimoDataError, match="pickle"):
        read_pathvqa(tmp_path, tmp_path / "out")


def test_llava_med_conversations(tmp_path):
    F.llava_med(tmp_path)
    (rec,) = records(read_llava_med(tmp_path, tmp_path / "out"))
    assert len(rec.conversations) == 4 and "<image>" in rec.conversations[0].value
    assert (tmp_path / "out" / rec.image).is_file()
