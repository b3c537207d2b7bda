"""``vqa:`` sources: an alias of ``llava-med:`` (one importer of LLaVA-format JSON)."""

import json

import pytest

from mimo.core.errors import MimoDataError
from mimo.core.records import read_records
from mimo.data.build import BuildConfig, build
from mimo.data.readers import SourceSpec, parse_source

ALL_TRAIN = BuildConfig(ratios=None, splits={"train": 1.0})


def write_set(tmp_path, items):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"\x89PNG fake")
    path = tmp_path / "rad.json"
    path.write_text(json.dumps(items))
    return path


def test_vqa_is_llava_med_with_its_options_mapped():
    assert parse_source("vqa:/d/rad.json") == SourceSpec(
        "llava-med", "/d", {"json": "rad.json", "name": "rad", "split": "train"}
    )
    spec = parse_source("vqa:/d/rad.json,image_root=/img,name=set1,split=test")
    assert spec == SourceSpec("llava-med", "/img", {"json": "/d/rad.json", "name": "set1", "split": "test"})
    assert spec.name == "llava-med-set1"
    with pytest.raises(MimoDataError, match=r"unknown option\(s\) \['copy'\]; vqa accepts"):
        parse_source("vqa:/d/rad.json,copy=no")
    with pytest.raises(MimoDataError, match="needs a path"):
        parse_source("vqa:")


def test_vqa_alias_builds_what_llava_med_builds(tmp_path):
    items = [
        {
            "id": 1,
            "image": "imgs/a.png",
            "answer_type": "CLOSED",
            "conversations": [
                {"from": "human", "value": "Is there a fracture?"},
                {"from": "gpt", "value": "no"},
            ],
        },
        {
            "id": "q2",
            "image": "imgs/a.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat organ?"},
                {"from": "gpt", "value": "liver"},
            ],
        },
    ]
    path = write_set(tmp_path, items)
    build([f"vqa:{path}"], tmp_path / "a", ALL_TRAIN, progress=False)
    build([f"llava-med:{tmp_path},json=rad.json,split=train"], tmp_path / "b", ALL_TRAIN, progress=False)
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()
    recs = read_records(tmp_path / "a" / "train.jsonl")
    assert [r.id for r in recs] == ["llava-med_rad_0000000", "llava-med_rad_0000001"]
    assert all(r.perspective == "vqa" and r.source == "llava-med:rad" for r in recs)
    assert recs[0].image == "images/rad/imgs/a.png" and (tmp_path / "a" / recs[0].image).is_file()
    assert recs[0].conversations[0].value.startswith("<image>\n")
    assert recs[1].conversations[0].value.count("<image>") == 1
    assert recs[0].meta["answer_type"] == "closed" and "answer_type" not in recs[1].meta  # normalised


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"id": 1, "image": "imgs/missing.png", "conversations": [{"from": "human", "value": "q"}]},
            "not found",
        ),
        ({"id": 1, "conversations": [{"from": "human", "value": "<region> q"}]}, "reserved token"),
        ({"id": 1, "conversations": []}, "non-empty"),
    ],
)
def test_errors_name_file_sample_and_field(tmp_path, item, message):
    path = write_set(tmp_path, [item])
    with pytest.raises(MimoDataError, match=message) as info:
        build([f"vqa:{path}"], tmp_path / "out", ALL_TRAIN, progress=False)
    assert "rad.json" in str(info.value) and "sample 0" in str(info.value)
