"""``split=NAME`` on a source pins its cases to that split (a held-out slab of one subject)."""

from __future__ import annotations

import json

from mimo.data.build import BuildConfig, build


def _images(path) -> set[str]:
    return {json.loads(line)["image"] for line in path.read_text().splitlines()}


def test_split_option_pins_every_case_of_its_source(tmp_path):
    build(
        ["phantom:,n=4,size=48,kinds=chest_xray,seed=0", "phantom:,n=2,size=48,kinds=chest_xray,seed=7,split=test"],
        tmp_path,
        BuildConfig(ratios=None),
        progress=False,
    )
    pinned = "images/phantom-default-2/"
    test_images = _images(tmp_path / "test.jsonl")
    assert {i for i in test_images if i.startswith(pinned)} == {
        f"{pinned}phantom_chest_xray_s7_0000.png",
        f"{pinned}phantom_chest_xray_s7_0001.png",
    }
    for split in ("train", "val"):
        assert not any(i.startswith(pinned) for i in _images(tmp_path / f"{split}.jsonl"))
    # the other source still goes through the patient split: 4 patients over the three splits
    others = set()
    for split in ("train", "val", "test"):
        others |= {i for i in _images(tmp_path / f"{split}.jsonl") if not i.startswith(pinned)}
    assert len(others) == 4


def test_the_same_case_from_two_sources_is_refused_before_any_split_is_written(tmp_path):
    import pytest

    from mimo.data.errors import MimoDataError

    with pytest.raises(MimoDataError, match="phantom_chest_xray_0000.*phantom-default.*phantom-default-2"):
        build(
            ["phantom:,n=2,size=48,kinds=chest_xray,seed=0", "phantom:,n=1,size=48,kinds=chest_xray,seed=0"],
            tmp_path,
            BuildConfig(ratios=None),
            progress=False,
        )
    assert not list(tmp_path.glob("*.jsonl"))
