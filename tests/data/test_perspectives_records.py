"""generate_records on a constructed slice: all perspectives, valid records, exact masks, no raw names."""

import json
import re
from collections import Counter

import numpy as np
import pytest

from mimo.core import rle
from mimo.core.schema import SEG_TOKEN, MaskRegion, Record
from mimo.data.case import SliceSample
from mimo.data.perspectives import GenerationStats, PerspectiveConfig, generate_records, mix_records

H = W = 96
yy, xx = np.mgrid[:H, :W]


def ell(cx, cy, rx, ry):
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1


def make_sample(image_right="L", image_down="P"):
    tumour = ell(25, 45, 5, 5)
    labels = {
        "liver": ell(25, 45, 18, 22) & ~tumour,
        "liver_tumor": tumour,
        "spleen": ell(75, 55, 8, 12),
        "kidney_left": ell(65, 72, 7, 9),
        "kidney_right": ell(30, 74, 7, 9),
        "aorta": ell(50, 62, 4, 4),
        "7": ell(50, 20, 3, 3),
    }
    if image_right == "R":  # the same anatomy displayed mirrored
        labels = {k: v[:, ::-1].copy() for k, v in labels.items()}
    img = (np.random.default_rng(0).random((H, W)) * 255).astype(np.uint8)
    return SliceSample(
        "case1",
        "pat1",
        "CT",
        "test",
        img,
        labels,
        (0.8, 0.8),
        "images/case1_z010.png",
        (2, 10),
        absent=["gallbladder", "stomach"],
        image_right=image_right,
        image_down=image_down,
    )


RAW_ONLY = ("kidney_left", "kidney_right", "liver_tumor", "7")


def all_text(records):
    return "\n".join(t.value for r in records for t in r.conversations)


def test_all_perspectives_valid_and_masks_exact():
    sample = make_sample()
    cfg = PerspectiveConfig(max_records_per_slice=100, iii_per_slice=6, iv_per_slice=6, negatives_per_slice=2)
    stats = GenerationStats()
    records = generate_records(sample, np.random.default_rng(0), cfg, stats)
    kinds = Counter(r.perspective for r in records)
    assert set(kinds) == {"I", "II", "III", "IV", "negative"}
    assert stats.unknown_labels == Counter({"7": 1})
    assert len({r.id for r in records}) == len(records)
    named = {"liver", "liver tumour", "spleen", "left kidney", "right kidney", "aorta"}
    truth = {
        "liver": sample.labels["liver"],
        "liver tumour": sample.labels["liver_tumor"],
        "spleen": sample.labels["spleen"],
        "left kidney": sample.labels["kidney_left"],
        "right kidney": sample.labels["kidney_right"],
        "aorta": sample.labels["aorta"],
    }
    multi_seg = False
    for r in records:
        Record.model_validate(json.loads(json.dumps(r.to_json_dict())))  # round-trips through JSON
        assert r.image == sample.image_path and r.case == "case1" and r.slice.index == 10
        gpt = r.conversations[-1]
        n_seg = gpt.value.count(SEG_TOKEN)
        multi_seg |= n_seg >= 2
        if r.perspective == "negative":
            assert n_seg == 0 and not r.masks
            continue
        assert n_seg >= 1

        terms = re.findall(r"<p>(.*?)</p> <SEG>", gpt.value)
        assert len(terms) == n_seg == len(gpt.masks)
        for term, key in zip(terms, gpt.masks, strict=True):
            assert term in named
            assert np.array_equal(rle.decode(r.masks[key]), truth[term])
        for region in r.regions:
            if isinstance(region, MaskRegion):
                assert not (
                    rle.decode(r.masks[region.mask]) & ~np.logical_or.reduce(list(truth.values()))
                ).any()
    assert multi_seg
    text = all_text(records)
    for raw in RAW_ONLY:
        assert raw not in text
    assert "<p>7</p>" not in text


@pytest.mark.parametrize("orientation", [("L", "P"), ("R", "P")])
def test_side_answers_follow_orientation(orientation):
    sample = make_sample(*orientation)
    cfg = PerspectiveConfig(
        perspectives=["III", "IV"], iii_per_slice=40, iv_per_slice=40, max_records_per_slice=200
    )
    found = 0
    for seed in range(6):
        for r in generate_records(sample, np.random.default_rng(seed), cfg):
            answer = r.conversations[-1].value
            if r.meta["task"] == "side":
                found += 1
                if "spleen" in answer or "left kidney</p>" in answer:
                    assert "left" in answer.replace("left kidney", "")
                if "<p>liver</p>" in answer or "right kidney</p>" in answer:
                    assert "right" in answer.replace("right kidney", "")
    assert found


def test_no_laterality_without_orientation():
    sample = make_sample()
    sample.image_right = sample.image_down = None
    cfg = PerspectiveConfig(
        perspectives=["III", "IV"], iii_per_slice=40, iv_per_slice=40, max_records_per_slice=200
    )
    records = generate_records(sample, np.random.default_rng(1), cfg)
    assert records
    assert not any(r.meta["task"] in ("side", "same_side", "relation") for r in records)
    assert "patient's left" not in all_text(records) and "patient's right" not in all_text(records)


def test_deterministic_and_capped():
    a = generate_records(make_sample(), np.random.default_rng(5))
    b = generate_records(make_sample(), np.random.default_rng(5))
    assert [r.to_json_dict() for r in a] == [r.to_json_dict() for r in b]
    few = generate_records(
        make_sample(), np.random.default_rng(5), PerspectiveConfig(max_records_per_slice=5)
    )
    assert len(few) == 5 and len({r.perspective for r in few}) == 5


def test_config_rejects_unknown_fields():
    with pytest.raises(ValueError):
        PerspectiveConfig(bogus=1)
    with pytest.raises(ValueError, match="region_probs"):
        PerspectiveConfig(region_probs={"lasso": 1.0})


def test_mix_ratios_hold():
    def rec(p, i):
        return Record.model_validate(
            {
                "id": f"{p}{i}",
                "perspective": p,
                "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
            }
        )

    pool = [
        rec(p, i)
        for p, n in {"I": 500, "II": 300, "III": 900, "IV": 400, "vqa": 1000, "negative": 200}.items()
        for i in range(n)
    ]
    mixed = mix_records(pool, rng=np.random.default_rng(0), negative_fraction=0.1)
    c = Counter(r.perspective for r in mixed)
    # II is the binding one: 300 records for weight 2 -> I 150, III 300, IV 150, vqa 150
    assert (c["I"], c["II"], c["III"], c["IV"], c["vqa"]) == (150, 300, 300, 150, 150)
    assert c["negative"] == round(0.1 / 0.9 * 1050)
    again = mix_records(pool, rng=np.random.default_rng(0), negative_fraction=0.1)
    assert [r.id for r in mixed] == [r.id for r in again]
    no_vqa = Counter(
        r.perspective
        for r in mix_records([r for r in pool if r.perspective != "vqa"], rng=np.random.default_rng(0))
    )
    assert no_vqa["vqa"] == 0 and no_vqa["II"] == 300


def _brain_slice():
    """A brain and its grey-matter rim: different masks with the same bounding box."""
    brain = ell(48, 48, 30, 36)
    grey = brain & ~ell(48, 48, 24, 30)
    img = (np.random.default_rng(0).random((H, W)) * 255).astype(np.uint8)
    labels = {"brain": brain, "grey_matter": grey}
    return SliceSample(
        "case2", "pat2", "MR", "test", img, labels, (1.0, 1.0), "images/case2_z010.png", (2, 10)
    )


@pytest.mark.parametrize("threshold", [0.8, None])
def test_structures_sharing_a_bounding_box_get_no_box_prompt(threshold):
    cfg = PerspectiveConfig(
        perspectives=["II"],
        records_per_structure=20,
        max_records_per_slice=100,
        region_probs={"box": 1.0, "mask": 0.0},
        ambiguous_box_iou=threshold,
    )
    records = generate_records(_brain_slice(), np.random.default_rng(0), cfg)
    types = Counter(r.regions[0].type for r in records)
    assert sum(types.values()) == 40
    if threshold is None:  # the old behaviour: a box that names the brain and the grey matter alike
        assert types == {"box": 40}
    else:
        assert types == {"mask": 40}
        for r in records:  # the whole structure, or a part of it
            prompt, target = (
                rle.decode(r.masks[k]) for k in (r.regions[0].mask, r.conversations[1].masks[0])
            )
            assert prompt.any() and not (prompt & ~target).any()
