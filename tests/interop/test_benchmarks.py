"""The benchmark metrics follow their authors' code on hand-worked cases.

References (read in the authors' repositories, see docs/benchmarks.md): LLaVA-Med
``llava/eval/run_eval.py`` before and after its December 2023 fix; MedPLIB
``model/eval/vqa_infer.py`` (``validate_seg``) and ``model/eval/cal_metric.py``; SAM-Med2D
``test.py`` / ``metrics.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mimo.core import rle
from mimo.core.schema import Record
from mimo.eval.benchmarks import (
    benchmark_metrics,
    llava_med_closed_hit,
    llava_med_closed_hit_before_fix,
    medplib_binarize,
    medplib_closed_hit,
    normalize_answer,
    open_recall,
    samed2d_dice,
    substring_closed_hit,
)
from mimo.eval.report import EvaluationReport
from mimo.eval.sample import Prediction, SampleResult, score_sample
from mimo.eval.segmentation import MaskCounts, instance_counts, mask_counts


def cols(a: int, b: int, shape=(10, 10)) -> np.ndarray:
    """A mask holding columns a..b-1 of every row (10 px per column)."""
    mask = np.zeros(shape, bool)
    mask[:, a:b] = True
    return mask


def seg_record(rid: str, source: str, answer: str, masks: dict[str, np.ndarray], **extra) -> Record:
    return Record.model_validate(
        {
            "id": rid,
            "image": f"{rid}.png",
            "source": source,
            "perspective": "I",
            "masks": {k: rle.encode(m) for k, m in masks.items()},
            "conversations": [
                {"from": "human", "value": "<image>\nSegment them."},
                {"from": "gpt", "value": answer, "masks": list(masks)},
            ],
            **extra,
        }
    )


def vqa_record(rid: str, answer: str, answer_type: str, source: str = "slake:x") -> Record:
    return Record.model_validate(
        {
            "id": rid,
            "source": source,
            "perspective": "vqa",
            "meta": {"answer_type": answer_type},
            "conversations": [{"from": "human", "value": "q?"}, {"from": "gpt", "value": answer}],
        }
    )


def test_normalize_answer_like_llava_med():
    assert normalize_answer("The Liver, two lesions.") == "liver 2 lesions"
    assert normalize_answer("3.5 cm") == "3.5 cm"


def test_wrong_no_to_a_yes_question_under_old_and_fixed_llava_med_rules():
    wrong = "No, there is no fracture."
    assert llava_med_closed_hit(wrong, "yes") == 0  # fixed: a miss
    assert llava_med_closed_hit_before_fix(wrong, "yes") is None  # before: not counted at all
    # both rules: "no" inside "normal" answers a "no" question (LLaVA-Med issue #12)
    assert llava_med_closed_hit("normal", "no") == 1 and llava_med_closed_hit_before_fix("normal", "no") == 1
    # neither "yes" nor "no" in the prediction: a miss under both
    assert (
        llava_med_closed_hit("the liver", "no") == 0
        and llava_med_closed_hit_before_fix("the liver", "no") == 0
    )
    # a right answer to a closed question whose reference is not yes/no: no "yes"/"no" in the
    # prediction, so a miss for LLaVA-Med (LLaVA-Med issue #113), a hit for MedPLIB
    assert llava_med_closed_hit("Left lung.", "left lung") == 0
    assert substring_closed_hit("Left lung.", "left lung") == 1 and substring_closed_hit(wrong, "yes") == 0
    assert medplib_closed_hit("Left lung.", "left lung") == 1
    assert medplib_closed_hit("Yes.", "yes") == 1 and medplib_closed_hit("yes it is", "yes") == 0

    results = [
        score_sample(Prediction("Yes."), vqa_record("a", "yes", "CLOSED ")),  # trailing space as in VQA-RAD
        score_sample(Prediction(wrong), vqa_record("b", "yes", "closed")),
        score_sample(Prediction("liver"), vqa_record("c", "left liver", "OPEN")),
    ]
    m = benchmark_metrics(results)["slake"]
    assert m["n_closed"] == 2 and m["n_open"] == 1
    assert m["llava_med_closed_accuracy"] == 0.5  # 1 hit of 2
    assert m["llava_med_closed_accuracy_before_fix"] == 1.0 and m["llava_med_closed_counted_before_fix"] == 1
    assert m["medplib_closed_accuracy"] == 0.5 and m["substring_closed_accuracy"] == 0.5
    assert m["open_recall"] == 0.5


def test_open_recall_word_counts():
    assert open_recall("the left kidney", "left kidney") == 1.0
    assert open_recall("kidney", "left kidney") == 0.5
    assert open_recall("", "kidney") == 0.0


def test_medplib_first_mask_vs_first_mask_differs_from_pooled_pairs():
    liver, spleen = cols(0, 4), cols(6, 10)  # 40 px each, apart
    two = seg_record(
        "two",
        "mecovqa:test",
        "The <p>liver</p> <SEG> and the <p>spleen</p> <SEG>.",
        {"m0": liver, "m1": spleen},
    )
    # the model names the spleen first: exact spleen, then half the liver
    pred = Prediction.from_masks("The <p>spleen</p> <SEG> and the <p>liver</p> <SEG>.", [spleen, cols(0, 2)])
    r_two = score_sample(pred, two)
    # MedPLIB: first predicted (spleen) vs first reference (liver): IoU 0
    assert r_two.first_mask == MaskCounts(0, 80, 40, 40)
    # paired by phrase and pooled: (20 + 40) / (40 + 40) = 0.75; Dice 120 / 140
    one = seg_record("one", "mecovqa:test", "It is <SEG>.", {"m0": cols(0, 4)})
    r_one = score_sample(Prediction.from_masks("It is <SEG>.", [cols(2, 6)]), one)  # IoU 20/60, Dice 1/2
    m = benchmark_metrics([r_two, r_one])["mecovqa"]
    assert m["medplib_miou"] == pytest.approx((0 + 1 / 3) / 2)
    assert m["medplib_mdice"] == pytest.approx((0 + 0.5) / 2)  # 2*IoU/(1+IoU) per sample
    assert m["pooled_miou"] == pytest.approx((0.75 + 1 / 3) / 2)
    assert m["pooled_dice"] == pytest.approx((120 / 140 + 0.5) / 2)
    assert m["n_medplib_samples"] == 2 and m["n_medplib_empty_reference"] == 0
    assert SampleResult.from_dict(r_two.to_dict()) == r_two


def test_medplib_fallback_mask_and_no_mask():
    rec = seg_record("r", "mecovqa:test", "It is <SEG>.", {"m0": cols(0, 4)})
    # an answer without <SEG> that still came with a (fallback) mask: that mask is scored
    fallback = score_sample(Prediction.from_masks("It is the liver.", [cols(0, 4)]), rec)
    none = score_sample(Prediction("It is the liver."), rec)  # no mask at all: IoU 0
    m = benchmark_metrics([fallback, none])["mecovqa"]
    assert m["medplib_miou"] == 0.5 and m["medplib_mdice"] == 0.5
    assert medplib_binarize(np.array([0.05, 0.1, 0.2])).tolist() == [False, False, True]


def test_medplib_empty_reference_scores_zero_and_is_counted():
    empty = np.zeros((10, 10), bool)
    rec = seg_record("e", "mecovqa:test", "It is <SEG>.", {"m0": empty})
    r = score_sample(Prediction.from_masks("It is <SEG>.", [empty]), rec)
    m = benchmark_metrics([r])["mecovqa"]
    # MedPLIB's calculate_iou crashes here (0 .item()); we give the 0 its branch means
    assert m["medplib_miou"] == 0.0 and m["n_medplib_empty_reference"] == 1
    assert m["pooled_miou"] == 1.0 and m["pooled_dice"] == 1.0  # ours: nothing to find, nothing found
    summary = EvaluationReport([r]).summary()
    assert summary["benchmarks"]["mecovqa"]["n_seg_samples"] == 1
    assert "Benchmark mecovqa" in EvaluationReport([r]).to_markdown()


def test_instance_counts_split_by_component_and_nearest_instance():
    target = cols(0, 6) | cols(8, 10)  # instances: columns 0-5 (60 px) and 8-9 (20 px)
    # predicted columns 6 and 7: column 6 is nearer the first instance, 7 the second
    a, b = instance_counts(cols(6, 8), target)
    assert a == MaskCounts(0, 70, 10, 60) and b == MaskCounts(0, 30, 10, 20)
    assert instance_counts(cols(0, 4), cols(0, 6)) == ()  # one component: no split
    diagonal = np.eye(4, dtype=bool)  # pixels touching at corners: one instance (8-connectivity)
    assert instance_counts(diagonal, diagonal) == ()
    with pytest.raises(ValueError, match="shape"):
        instance_counts(np.zeros((3, 3), bool), target)
    rng = np.random.default_rng(0)  # every pixel counted once, whatever the masks
    for _ in range(50):
        pred, target = rng.random((12, 12)) < 0.3, rng.random((12, 12)) < 0.15
        parts = instance_counts(pred, target) or (mask_counts(pred, target),)
        assert (
            sum(c.pred_area for c in parts) == pred.sum()
            and sum(c.target_area for c in parts) == target.sum()
        )
        assert sum(c.intersection for c in parts) == (pred & target).sum()


def test_samed2d_instance_dice_vs_merged_structure_dice():
    hip = cols(0, 6) | cols(8, 10)  # one structure merged from two instances (60 + 20 px)
    r1 = score_sample(
        Prediction.from_masks("The <p>hip</p> <SEG>.", [cols(0, 6)]),  # finds the big one only
        seg_record("h", "samed2d:SA-Med2D", "The <p>hip</p> <SEG>.", {"m0": hip}),
    )
    r2 = score_sample(  # a one-instance structure with Dice 1/2
        Prediction.from_masks("The <p>liver</p> <SEG>.", [cols(2, 6)]),
        seg_record("l", "samed2d:SA-Med2D", "The <p>liver</p> <SEG>.", {"m0": cols(0, 4)}),
    )
    m = benchmark_metrics([r1, r2])["samed2d"]
    merged_hip = 2 * 60 / (60 + 80)  # 0.857...
    assert m["n_structures"] == 2 and m["structure_dice"] == pytest.approx((merged_hip + 0.5) / 2)
    # SAM-Med2D averages over instances: hip 1 and 0, liver 0.5
    assert m["n_instances"] == 3 and m["samed2d_instance_dice"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert "medplib_miou" not in m
    assert SampleResult.from_dict(r1.to_dict()).mask_scores == r1.mask_scores
    # the same record from another source is not split into instances (no cost where unused)
    other = seg_record("h2", "mecovqa:test", "The <p>hip</p> <SEG>.", {"m0": hip})
    assert (
        score_sample(Prediction.from_masks("The <p>hip</p> <SEG>.", [cols(0, 6)]), other)
        .mask_scores[0]
        .instances
        == ()
    )
    # SAM-Med2D's eps: both empty is 1; each item rounded to 4 decimals
    assert samed2d_dice(MaskCounts(0, 0, 0, 0)) == 1.0
    assert samed2d_dice(MaskCounts(1, 3, 2, 2)) == 0.5 and samed2d_dice(MaskCounts(1, 6, 3, 4)) == 0.2857


def _region_record(rid: str, answer: str, meta: dict | None) -> Record:
    return Record.model_validate(
        {
            "id": rid,
            "image": "x.png",
            "source": "mecovqa:MeCoVQA_Region_QA_test",
            "perspective": "II",
            "masks": {"r0": rle.encode(cols(0, 4))},
            "regions": [{"type": "mask", "mask": "r0"}],
            "meta": meta,
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is in <region>?"},
                {"from": "gpt", "value": answer},
            ],
        }
    )


def test_mecovqa_region_questions_scored_like_vqa():
    results = [
        score_sample(Prediction("Yes."), _region_record("c", "yes", {"answer_type": "closed"})),
        score_sample(
            Prediction("the liver"), _region_record("o", "left liver lobe", {"answer_type": "open"})
        ),
        score_sample(Prediction("kidney"), _region_record("n", "kidney", None)),  # no answer type: not VQA
    ]
    assert [r.vqa_type for r in results] == ["closed", "open", None]
    assert results[0].closed_correct is True and results[1].open_recall == pytest.approx(1 / 3)
    m = benchmark_metrics(results)["mecovqa"]
    assert (
        m["n_closed"] == 1 and m["llava_med_closed_accuracy"] == 1.0 and m["medplib_closed_accuracy"] == 1.0
    )
    assert m["n_open"] == 1 and m["open_recall"] == pytest.approx(1 / 3)
    assert "n_seg_samples" not in m and not math.isnan(m["n_samples"])
    overall = EvaluationReport(results).summary()["overall"]
    assert overall["closed_accuracy"] == 1.0 and overall["open_recall"] == pytest.approx(1 / 3)
