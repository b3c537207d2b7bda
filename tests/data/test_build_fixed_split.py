"""``split=NAME`` on a source pins its cases to that split (a held-out slab of one subject)."""

from __future__ import annotations

import json

from mimo.data.build import BuildConfig, build


def _images(path) -> set[str]:
    return {json.loads(line)["image"] for line in path.read_text().splitlines()}


def test_split_option_pins_every_case_of_its_source(tmp_path):
    build(
        [
            "phantom:,n=4,size=48,kinds=chest_xray,seed=0",
            "phantom:,n=2,size=48,kinds=chest_xray,seed=7,split=test",
        ],
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

    from mimo.core.errors import MimoDataError

    with pytest.raises(MimoDataError, match="phantom_chest_xray_0000.*phantom-default.*phantom-default-2"):
        build(
            ["phantom:,n=2,size=48,kinds=chest_xray,seed=0", "phantom:,n=1,size=48,kinds=chest_xray,seed=0"],
            tmp_path,
            BuildConfig(ratios=None),
            progress=False,
        )
    assert not list(tmp_path.glob("*.jsonl"))


def test_max_slices_and_stride_options_apply_to_their_source_only(tmp_path):
    import pytest

    from mimo.core.errors import MimoDataError

    build(
        [
            "phantom:,n=3,size=48,kinds=brain_mri,seed=0,max_slices=2",
            "phantom:,n=3,size=48,kinds=brain_mri,seed=5",
        ],
        tmp_path,
        BuildConfig(ratios=None),
        progress=False,
    )
    per_case: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        for image in _images(tmp_path / f"{split}.jsonl"):
            case = image.rsplit("_z", 1)[0]  # images/<source>/<case>_z<slice>.png
            per_case.setdefault(case, set()).add(image)
    capped = {c: n for c, n in per_case.items() if c.startswith("images/phantom-default/")}
    others = {c: n for c, n in per_case.items() if c.startswith("images/phantom-default-2/")}
    assert len(capped) == 3 and all(len(n) <= 2 for n in capped.values())
    assert len(others) == 3 and all(len(n) > 2 for n in others.values())  # the build's own max_slices
    with pytest.raises(MimoDataError, match="source phantom-default: max_slices='two'.*whole number"):
        build(["phantom:,n=1,size=48,kinds=brain_mri,max_slices=two"], tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / "train.jsonl").exists()
