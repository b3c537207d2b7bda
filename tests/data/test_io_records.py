import json

import numpy as np
import pytest
from PIL import Image

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.core.records import read_records, write_records
from mimo.data.validate import validate_records


def _record(rid="r0", mask=None, region=None, image="images/a.png"):
    mask = np.zeros((8, 10), bool) if mask is None else mask
    rec = {
        "id": rid,
        "image": image,
        "masks": {"m0": rle.encode(mask).model_dump()},
        "regions": [region or {"type": "box", "box": [1, 1, 4, 4]}],
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is in <region>?"},
            {"from": "gpt", "value": "It is the <p>liver</p> <SEG>.", "masks": ["m0"]},
        ],
    }
    return rec


def _image(tmp_path, h=8, w=10):
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((h, w), np.uint8)).save(tmp_path / "images" / "a.png")


def test_write_read_roundtrip_and_atomic(tmp_path):
    m = np.zeros((8, 10), bool)
    m[2:5, 3:7] = True
    out = tmp_path / "train.jsonl"
    n = write_records(out, [_record("a", m), _record("b", m)])
    assert n == 2
    recs = read_records(out)
    assert [r.id for r in recs] == ["a", "b"]
    np.testing.assert_array_equal(rle.decode(recs[0].masks["m0"]), m)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_read_malformed_json_names_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps(_record("a")) + "\n{not json\n")
    with pytest.raises(MimoDataError, match=r"x\.jsonl:2: malformed JSON"):
        read_records(p)


def test_read_schema_violation_names_line_and_field(tmp_path):
    bad = _record("a")
    bad["conversations"][1]["masks"] = []  # one <SEG>, zero masks
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps(_record("ok")) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(
        MimoDataError, match=r"x\.jsonl:2 \(record 'a'\): schema violation.*1 <SEG> but 0 mask"
    ):
        read_records(p)


def test_validate_reports_problems_per_record(tmp_path):
    _image(tmp_path)
    m = np.zeros((8, 10), bool)
    m[2:5, 3:7] = True
    good = _record("good", m)
    empty = _record("empty", np.zeros((8, 10), bool))
    wrong_size = _record("size", np.ones((9, 10), bool))
    outside = _record("outside", m, region={"type": "point", "points": [[50, 2]], "labels": [1]})
    missing = _record("missing", m, image="images/nope.png")
    p = tmp_path / "train.jsonl"
    lines = [json.dumps(r) for r in (good, empty, wrong_size, outside, missing)] + ["{oops"]
    p.write_text("\n".join(lines) + "\n")
    report = validate_records(p)
    assert report.n_records == 6
    assert not report.ok
    keys = report.problems
    assert "line 1 (good)" not in keys
    assert any("is empty" in m for m in keys["line 2 (empty)"])
    assert any("size [9, 10] but image is [8, 10]" in m for m in keys["line 3 (size)"])
    assert any("outside the image" in m for m in keys["line 4 (outside)"])
    assert any("image file not found" in m for m in keys["line 5 (missing)"])
    assert any("malformed JSON" in m for m in keys["line 6"])


def test_validate_clean_file_ok(tmp_path):
    _image(tmp_path)
    m = np.zeros((8, 10), bool)
    m[0, 9] = True
    p = tmp_path / "train.jsonl"
    write_records(p, [_record("a", m)])
    report = validate_records(p)
    assert report.ok, report.summary()
