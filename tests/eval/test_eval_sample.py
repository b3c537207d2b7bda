"""score_sample and the grounding helpers: pairing, grounding recall, negatives, VQA."""

import numpy as np
import pytest
from eval_helpers import box_mask, make_record

from mimo.eval.grounding import Segment, grounding_hits, pair_segments
from mimo.eval.sample import PredictedSegment, Prediction, SampleResult, decode_record_masks, score_sample


def test_decode_record_masks_round_trips(liver, spleen):
    record = make_record("r", "III", "<p>liver</p> <SEG> <p>spleen</p> <SEG>", {"m0": liver, "m1": spleen})
    decoded = decode_record_masks(record)
    assert decoded["m0"].dtype == bool
    np.testing.assert_array_equal(decoded["m0"], liver)
    np.testing.assert_array_equal(decoded["m1"], spleen)


def test_pairing_by_phrase_then_order(liver, spleen):
    ref = [Segment("liver", liver), Segment("spleen", spleen), Segment("aorta", liver)]
    pred = [Segment("Spleen", spleen), Segment("kidney", liver), Segment(None, liver), Segment("x", liver)]
    pairs, unmatched = pair_segments(pred, ref)
    assert pairs == [(1, 0), (0, 1), (2, 2)]
    assert unmatched == [3]
    assert pair_segments([], ref) == ([(None, 0), (None, 1), (None, 2)], [])


def test_grounding_hits_needs_name_and_iou_above_half(liver, spleen):
    half = box_mask(0, 2, 0, 4)  # IoU 0.5 with liver: not above the threshold
    ref = [Segment("liver", liver), Segment("spleen", spleen), Segment(None, spleen)]
    assert grounding_hits([Segment("liver", liver), Segment("spleen", spleen)], ref) == (2, 2)
    assert grounding_hits([Segment("liver", half), Segment("kidney", spleen)], ref) == (0, 2)
    synonyms = {"hepar": "liver"}
    assert grounding_hits([Segment("hepar", liver)], ref, normalize=synonyms.get) == (1, 2)


def test_perspective_iii_two_masks_swapped_order(liver, spleen):
    record = make_record(
        "r3",
        "III",
        "The <p>liver</p> <SEG> is above the <p>spleen</p> <SEG>.",
        {"m0": liver, "m1": spleen},
    )
    prediction = Prediction.from_masks(
        "The <p>spleen</p> <SEG> lies below the <p>liver</p> <SEG>.", [box_mask(4, 8, 4, 6), liver]
    )
    result = score_sample(prediction, record)
    assert [(s.reference_key, s.structure, s.predicted_index) for s in result.mask_scores] == [
        ("m0", "liver", 1),
        ("m1", "spleen", 0),
    ]
    assert result.mask_scores[0].iou == 1.0
    assert result.mask_scores[1].iou == pytest.approx(0.5)
    assert result.mean_iou == pytest.approx(0.75)
    assert result.grounding_hits == 1 and result.grounding_total == 2
    assert result.reference_structures == result.predicted_structures == {"liver", "spleen"}
    assert result.structures == ("liver", "spleen")
    assert result.question == "What is shown?"
    assert result.predicted_text == "The spleen lies below the liver."
    assert result.reference_text == "The liver is above the spleen."
    assert result.false_positive is None and result.vqa_type is None


def test_misnamed_structure_still_scores_mask_and_missing_mask_is_empty(liver, spleen):
    record = make_record("r2", "II", "It is the <p>liver</p> <SEG>.", {"m0": liver})
    misnamed = score_sample(Prediction.from_masks("It is the <p>spleen</p> <SEG>.", [liver]), record)
    assert misnamed.mask_scores[0].iou == 1.0
    assert misnamed.predicted_structures == {"spleen"}
    assert misnamed.grounding_hits == 0
    text_only = score_sample(Prediction("It is the <p>liver</p>."), record)
    assert text_only.mask_scores[0].predicted_index is None
    assert text_only.mask_scores[0].iou == 0.0
    assert text_only.mask_scores[0].counts.target_area == 16
    extra = score_sample(Prediction.from_masks("<p>liver</p> <SEG> <SEG>", [liver, spleen]), record)
    assert extra.n_predicted_masks == 2 and extra.n_unmatched_predictions == 1
    assert extra.mask_scores[0].iou == 1.0


def test_explicit_segment_phrase_and_reference_masks_argument(liver):
    record = make_record("r1", "I", "<p>liver</p> <SEG>", {"m0": liver})
    prediction = Prediction("<SEG>", [PredictedSegment(liver, phrase="liver", score=0.9)])
    result = score_sample(prediction, record, reference_masks={"m0": liver})
    assert result.grounding_hits == 1
    with pytest.raises(ValueError, match="'m0' missing"):
        score_sample(prediction, record, reference_masks={})
    with pytest.raises(ValueError, match=r"record 'r1', mask 'm0'.*shape \(4, 4\)"):
        score_sample(Prediction.from_masks("<SEG>", [np.ones((4, 4), bool)]), record)


def test_negative_false_positive():
    record = make_record(
        "n1", "negative", "There is no <p>gallbladder</p> in this image.", meta={"structure": "gallbladder"}
    )
    clean = score_sample(Prediction("No gallbladder is visible."), record)
    assert clean.negative and clean.false_positive is False
    assert clean.mask_scores == ()
    assert clean.structures == ("gallbladder",)
    assert score_sample(Prediction("It is the <p>gallbladder</p> <SEG>."), record).false_positive is True
    empty_mask = Prediction("Here.", [PredictedSegment(np.zeros((8, 8), bool))])
    assert score_sample(empty_mask, record).false_positive is True


def test_vqa_closed_and_open():
    closed = make_record("v1", "vqa", "Yes", question="<image>\nIs there a lesion?")
    assert score_sample(Prediction("Yes, there is."), closed).closed_correct is True
    assert score_sample(Prediction("No."), closed).closed_correct is False
    declared = make_record("v2", "vqa", "CT", meta={"answer_type": "CLOSED"})
    assert score_sample(Prediction("ct"), declared).closed_correct is True
    opened = make_record("v3", "vqa", "left kidney")
    result = score_sample(Prediction("the kidney"), opened)
    assert result.vqa_type == "open" and result.open_recall == 0.5 and result.closed_correct is None


def test_turn_selection():
    record = make_record("t", "vqa", "yes")
    with pytest.raises(ValueError, match="not a gpt turn"):
        score_sample(Prediction("yes"), record, turn_index=0)
    assert score_sample(Prediction("yes"), record, turn_index=1).closed_correct is True


def test_sample_result_round_trips_through_dict(liver, spleen):
    import json

    record = make_record("rt", "III", "<p>liver</p> <SEG> and <p>spleen</p> <SEG>", {"a": liver, "b": spleen})
    result = score_sample(Prediction.from_masks("<p>liver</p> <SEG>", [liver]), record)
    again = SampleResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
