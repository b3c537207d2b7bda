"""VQA passthrough import."""

import json

import pytest

from mimo.core.errors import MimoDataError
from mimo.data.vqa import import_llava_vqa


def write_set(tmp_path, items):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"\x89PNG fake")
    path = tmp_path / "rad.json"
    path.write_text(json.dumps(items))
    return path


def test_import_copies_images_and_keeps_answer_type(tmp_path):
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
    out = tmp_path / "out"
    recs = import_llava_vqa(path, tmp_path, out)
    assert [r.id for r in recs] == ["vqa_rad_1", "vqa_rad_q2"]
    assert all(r.perspective == "vqa" for r in recs)
    assert recs[0].image == "images/vqa/rad/imgs/a.png" and (out / recs[0].image).is_file()
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
        ({"image": "imgs/a.png", "conversations": [{"from": "human", "value": "q"}]}, "'id'"),
    ],
)
def test_errors_name_file_sample_and_field(tmp_path, item, message):
    path = write_set(tmp_path, [item])
    with pytest.raises(MimoDataError, match=message) as info:
        import_llava_vqa(path, tmp_path, tmp_path / "out")
    assert "rad.json" in str(info.value) and "sample 0" in str(info.value)
