"""The Python API: prompts become <region>, batched = one by one, chat sessions cache the image."""

from __future__ import annotations

import numpy as np
import pytest

from mimo.infer.images import ImageInputError
from mimo.infer.predictor import insert_regions

from .tiny_model import dice

MULTI = 10  # overfit_samples(): 4 grounding, 3 same-image regions, 3 volume slices, multi, negative


def test_region_rule_inserts_before_final_punctuation():
    assert insert_regions("What is in?", 1) == "What is in <region>?"
    assert insert_regions("Compare", 2) == "Compare <region> and <region>"
    assert insert_regions("Is <region> left of <region>?", 2) == "Is <region> left of <region>?"
    # a question holding some is left as it is: the processor checks the count (test_chat_path)
    assert insert_regions("What is <region>?", 2) == "What is <region>?"
    assert insert_regions("What is this?", 0) == "What is this?"


def test_predict_grounds_the_term_with_a_mask_at_image_size(predictor, tiny):
    sample = tiny["samples"][1]  # "What is in <region>?" -> disc, a box prompt
    prediction = predictor.predict(sample["image"], "What is in?", boxes=[sample["regions"][0]["box"]])
    assert prediction.answer == sample["conversations"][1]["value"]
    assert prediction.text == "It is the disc."
    [segment] = prediction.segments
    assert segment.phrase == "disc" and segment.mask.dtype == bool
    assert segment.mask.shape == sample["image"].shape
    assert dice(segment.mask, sample["masks"]["m0"]) > 0.9


def test_batched_answers_equal_one_by_one(predictor, tiny):
    samples = tiny["samples"][:4] + tiny["samples"][MULTI : MULTI + 2]  # + multi, negative
    items = []
    for s in samples:
        human = s["conversations"][0]["value"].replace("<image>\n", "")
        boxes = [r["box"] for r in s["regions"]]
        items.append({"image": s["image"], "question": human, "boxes": boxes})
    batched = predictor.predict_batch(items, batch_size=3)
    single = [predictor.predict(**item) for item in items]
    assert [p.answer for p in batched] == [p.answer for p in single]
    for s, b, one in zip(samples, batched, single, strict=True):
        assert b.answer == s["conversations"][1]["value"]
        for seg_b, seg_one, key in zip(
            b.segments, one.segments, s["conversations"][1].get("masks") or [], strict=True
        ):
            assert dice(seg_b.mask, seg_one.mask) > 0.99
            assert dice(seg_b.mask, s["masks"][key]) > 0.9


def _count_calls(module):
    calls = []
    handle = module.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


def test_second_turn_reuses_the_image_encodings(predictor, tiny):
    model = predictor.model
    vision, vision_handle = _count_calls(model.vision_tower)
    sam, sam_handle = _count_calls(model.sam.vision_encoder)
    try:
        square, disc = tiny["samples"][MULTI]["masks"]["m0"], tiny["samples"][MULTI]["masks"]["m1"]
        image = tiny["samples"][MULTI]["image"]
        session = predictor.chat(image)
        first = session.ask("Segment the square and the disc.")
        second = session.ask("Segment the square and the disc.")
        assert (len(vision), len(sam)) == (1, 1), "the second turn re-encoded the image"
        # the counters see a fresh prediction: two more encodings
        predictor.predict(image, "Segment the square and the disc.")
        assert (len(vision), len(sam)) == (2, 2)
    finally:
        vision_handle.remove()
        sam_handle.remove()
    assert first.answer == "<p>square</p> <SEG> and <p>disc</p> <SEG>."
    assert [s.phrase for s in first.segments] == ["square", "disc"]
    assert dice(first.segments[0].mask, square) > 0.9 and dice(first.segments[1].mask, disc) > 0.9
    assert [t["from"] for t in session.history] == ["human", "gpt", "human", "gpt"]
    assert session.history[1]["value"] == first.answer
    assert len(second.segments) == len(second.answer.split("<SEG>")) - 1


def test_bad_prompts_name_the_problem(predictor, tiny):
    image = tiny["samples"][0]["image"]
    with pytest.raises(ImageInputError, match="outside the 64x64 image"):
        predictor.predict(image, "What is in?", points=[(100, 3)])
    with pytest.raises(ImageInputError, match=r"boxes\[0\]"):
        predictor.predict(image, "What is in?", boxes=[(1, 2, 3)])
    with pytest.raises(ImageInputError, match="expected a 2D gray"):
        predictor.predict(np.zeros((4, 4, 5)), "What?")


def test_mask_threshold_is_a_probability_cut(predictor, tiny):
    """A lower probability threshold (MedPLIB evaluates at 0.1) only adds pixels."""
    from mimo.infer.predictor import Predictor

    sample = tiny["samples"][1]
    box = [sample["regions"][0]["box"]]
    low = Predictor(predictor.model, predictor.processor, mask_threshold=0.1)
    high = Predictor(predictor.model, predictor.processor, mask_threshold=0.9)
    [at_default] = predictor.predict(sample["image"], "What is in?", boxes=box).segments
    [at_low] = low.predict(sample["image"], "What is in?", boxes=box).segments
    [at_high] = high.predict(sample["image"], "What is in?", boxes=box).segments
    assert not (at_default.mask & ~at_low.mask).any() and not (at_high.mask & ~at_default.mask).any()
    assert at_low.mask.sum() > at_high.mask.sum()
    with pytest.raises(ValueError, match="mask_threshold"):
        Predictor(predictor.model, predictor.processor, mask_threshold=1.0)
