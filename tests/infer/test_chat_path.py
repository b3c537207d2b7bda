"""One path from an image to tensors in a chat: the shipped ``mimo-tiny`` answers a 3-turn chat
as it did before the processor was split (``shipped_chats.json``, recorded with the earlier
code), each image is preprocessed once, and no training targets are built at inference. When the
shipped weights change on purpose, re-record the chats: ``python tests/infer/record_shipped_chats.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mimo.core import rle
from mimo.infer.images import ImageInputError
from mimo.infer.predictor import Predictor, packaged_model_dir

HELDOUT = packaged_model_dir().parent / "heldout"
CHATS = Path(__file__).parent / "shipped_chats.json"
MAX_DIFFERING_PIXELS = 0.001  # share of a mask; 0 where recorded, a margin for other CPUs


@pytest.fixture(scope="module")
def shipped():
    return Predictor.from_pretrained(packaged_model_dir())


def _records() -> dict[str, dict]:
    lines = (HELDOUT / "records.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def _question(record: dict) -> tuple[str, dict]:
    """A record's question as a user types it, and its regions as ``ask``'s visual prompts."""
    prompts: dict[str, list] = {"points": [], "boxes": [], "scribbles": [], "masks": []}
    for region in record["regions"]:
        if region["type"] == "point":
            prompts["points"].append(region["points"][0])
        elif region["type"] == "box":
            prompts["boxes"].append(region["box"])
        elif region["type"] == "scribble":
            prompts["scribbles"].append(region["strokes"])
        else:
            prompts["masks"].append(rle.decode(record["masks"][region["mask"]]))
    question = record["conversations"][0]["value"].replace("<image>\n", "")
    return question, {key: value for key, value in prompts.items() if value}


def _spy(monkeypatch, processor, name: str) -> list:
    """Record each call of ``processor.name`` (its positional arguments and its result)."""
    calls, original = [], getattr(processor, name)

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((args, kwargs, out))
        return out

    monkeypatch.setattr(processor, name, spy)
    return calls


def test_a_three_turn_chat_answers_as_before_preprocessing_each_image_once(shipped, monkeypatch):
    expected = json.loads(CHATS.read_text())["chats"]
    records = _records()
    prepared = _spy(monkeypatch, shipped.processor, "prepare_image")
    samples = _spy(monkeypatch, shipped.processor, "process_prepared")
    kinds = set()
    for chat in expected:
        session = shipped.chat(str(HELDOUT / chat["image"]))
        for turn in chat["turns"]:
            question, prompts = _question(records[turn["record"]])
            kinds |= set(prompts)
            prediction = session.ask(question, **prompts)
            assert prediction.answer == turn["answer"], chat["image"]
            assert len(prediction.segments) == len(turn["masks"])
            for segment, mask, score in zip(prediction.segments, turn["masks"], turn["scores"], strict=True):
                before = rle.decode(mask)
                assert segment.mask.shape == before.shape
                assert np.mean(segment.mask != before) <= MAX_DIFFERING_PIXELS, chat["image"]
                assert segment.score == pytest.approx(score, abs=1e-4)
    assert kinds == {"points", "scribbles", "masks"}  # the chats hold each kind of prompt
    assert len(prepared) == len(expected)  # once per image, not once per question
    assert len(samples) == sum(len(chat["turns"]) for chat in expected)
    for (_, conversations, *_), kwargs, sample in samples:
        assert kwargs["add_generation_prompt"] is True
        assert "labels" not in sample and "seg_masks" not in sample
        assert all("masks" not in turn for turn in conversations if turn["from"] == "gpt")
    # the third turn's history holds earlier answers with <SEG> (targets used to be made for them)
    assert any("<SEG>" in turn["value"] for turn in samples[-1][0][1] if turn["from"] == "gpt")


def test_a_region_count_that_does_not_match_names_the_question(shipped):
    image = str(HELDOUT / "images" / "021_HC.png")
    with pytest.raises(ImageInputError, match=r"the question holds 1 <region> placeholder\(s\) but 2 visual"):
        shipped.predict(image, "What is <region>?", boxes=[(1, 1, 9, 9), (2, 2, 8, 8)])
    session = shipped.chat(image)
    session.ask("What is this?", points=[(100, 80)])
    with pytest.raises(ImageInputError, match=r"the question holds 2 <region> placeholder\(s\) but 1 visual"):
        session.ask("Is <region> above <region>?", points=[(100, 80)])
    assert len(session.history) == 2  # the refused question left no turn behind
