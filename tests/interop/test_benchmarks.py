"""The benchmark metrics follow their authors' code on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mimo.data import rle
from mimo.data.schema import Record
from mimo.eval.benchmarks import (
    benchmark_metrics,
    llava_med_closed_hit,
    medplib_binarize,
    medplib_closed_hit,
    normalize_answer,
    open_recall,
)
from mimo.eval.report import EvaluationReport
from mimo.eval.sample import Prediction, score_sample


def test_normalize_answer_like_llava_med():
    assert normalize_answer("The Liver, two lesions.") == "liver 2 lesions"
    assert normalize_answer("3.5 cm") == "3.5 cm"


def test_closed_hits():
    assert llava_med_closed_hit("Yes, it is.", "yes") == 1
    assert llava_med_closed_hit("yes", "no") is None  # a wrong yes/no answer is not counted
    assert llava_med_closed_hit("the liver", "no") == 0
    assert medplib_closed_hit("Yes.", "yes") == 1 and medplib_closed_hit("yes it is", "yes") == 0


def test_open_recall_word_counts():
    assert open_recall("the left kidney", "left kidney") == 1.0
    assert open_recall("kidney", "left kidney") == 0.5
    assert open_recall("", "kidney") == 0.0


def _record(mask):
    return Record.model_validate(
        {
            "id": "r",
            "image": "x.png",
            "source": "mecovqa:test",
            "perspective": "I",
            "masks": {"m0": rle.encode(mask)},
            "conversations": [
                {"from": "human", "value": "<image>\nSegment it."},
                {"from": "gpt", "value": "It is <SEG>.", "masks": ["m0"]},
            ],
        }
    )


def test_medplib_dice_from_iou_and_standard_dice():
    gt = np.zeros((10, 10), bool)
    gt[:, :4] = True  # 40 px
    pred = np.zeros((10, 10), bool)
    pred[:, 2:6] = True  # 40 px, 20 overlap -> IoU 1/3, Dice 1/2
    empty = np.zeros((10, 10), bool)
    results = [
        score_sample(Prediction.from_masks("It is <SEG>.", [pred]), _record(gt)),
        score_sample(Prediction.from_masks("No.", []), _record(gt)),
    ]
    m = benchmark_metrics(results)["mecovqa"]
    assert m["medplib_miou"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["medplib_mdice"] == pytest.approx((0.5 + 0) / 2)  # 2*IoU/(1+IoU)
    assert m["dice"] == pytest.approx(0.25)
    # an empty prediction of an empty reference: MedPLIB scores 0, standard Dice 1
    r = score_sample(Prediction.from_masks("It is <SEG>.", [empty]), _record(empty))
    m = benchmark_metrics([r])["mecovqa"]
    assert m["medplib_miou"] == 0.0 and m["dice"] == 1.0
    assert medplib_binarize(np.array([0.05, 0.1, 0.2])).tolist() == [False, False, True]
    summary = EvaluationReport(results).summary()
    assert summary["benchmarks"]["mecovqa"]["n_seg_samples"] == 2
    assert "Benchmark mecovqa" in EvaluationReport(results).to_markdown()


def test_vqa_metrics_per_benchmark():
    def rec(answer, kind):
        return Record.model_validate(
            {
                "id": answer,
                "source": "slake:x",
                "perspective": "vqa",
                "meta": {"answer_type": kind},
                "conversations": [{"from": "human", "value": "q?"}, {"from": "gpt", "value": answer}],
            }
        )

    results = [
        score_sample(Prediction("yes"), rec("yes", "closed")),
        score_sample(Prediction("yes"), rec("no", "closed")),
        score_sample(Prediction("liver"), rec("left liver", "open")),
    ]
    m = benchmark_metrics(results)["slake"]
    assert m["llava_med_closed_accuracy"] == 1.0 and m["llava_med_closed_counted"] == 1
    assert m["medplib_closed_accuracy"] == 0.5
    assert m["open_recall"] == 0.5
    assert not math.isnan(m["n_samples"])
