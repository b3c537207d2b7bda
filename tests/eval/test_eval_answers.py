"""The answer parser: grounded, ungrounded and bare-SEG items, display text and spans."""

import pytest

from mimo.core.schema import SEG_TOKEN
from mimo.eval.answers import PhraseItem, parse_answer, strip_markup


def test_single_grounded_phrase():
    parsed = parse_answer("It is the <p>left kidney</p> <SEG>.")
    assert parsed.text == "It is the left kidney."
    assert parsed.items == (PhraseItem("left kidney", 0, 10, 21),)
    assert parsed.text[10:21] == "left kidney"
    assert parsed.num_segs == 1
    assert parsed.phrase_for_seg(0) == "left kidney"


def test_several_segs_in_order():
    parsed = parse_answer("The <p>gallbladder</p> <SEG>, beneath the <p>liver</p> <SEG>.")
    assert parsed.text == "The gallbladder, beneath the liver."
    assert [(i.phrase, i.seg_index) for i in parsed.items] == [("gallbladder", 0), ("liver", 1)]
    assert parsed.grounded_phrases == ("gallbladder", "liver")
    assert [parsed.text[i.start : i.end] for i in parsed.items] == ["gallbladder", "liver"]


def test_no_segs():
    parsed = parse_answer("There is no spleen in this image.")
    assert parsed.text == "There is no spleen in this image."
    assert parsed.items == ()
    assert parsed.num_segs == 0
    with pytest.raises(IndexError):
        parsed.phrase_for_seg(0)


def test_ungrounded_phrase():
    parsed = parse_answer("No <p>spleen</p> is visible, but the <p>liver</p> <SEG> is.")
    assert [(i.phrase, i.seg_index) for i in parsed.items] == [("spleen", None), ("liver", 0)]
    assert parsed.ungrounded_phrases == ("spleen",)
    assert parsed.grounded_phrases == ("liver",)
    assert parsed.phrases == ("spleen", "liver")


def test_phrase_followed_by_text_then_seg_is_not_grounded_by_it():
    parsed = parse_answer("The <p>liver</p> and here <SEG>.")
    assert [(i.phrase, i.seg_index) for i in parsed.items] == [("liver", None), (None, 0)]


def test_seg_without_phrase():
    parsed = parse_answer(f"Here {SEG_TOKEN} it is, and <p>liver</p>{SEG_TOKEN}{SEG_TOKEN}")
    assert [(i.phrase, i.seg_index) for i in parsed.items] == [(None, 0), ("liver", 1), (None, 2)]
    assert parsed.phrase_for_seg(0) is None
    assert parsed.phrase_for_seg(2) is None
    assert parsed.text == "Here it is, and liver"
    assert parsed.items[0].start == parsed.items[0].end


def test_markup_only_answer_and_whitespace_in_phrase():
    parsed = parse_answer("<p> left   kidney </p> <SEG>")
    assert parsed.text == "left kidney"
    assert parsed.items == (PhraseItem("left kidney", 0, 0, 11),)


def test_strip_markup():
    assert strip_markup("It is the <p>liver</p> <SEG>.") == "It is the liver."
    assert strip_markup("plain") == "plain"
    assert strip_markup("") == ""


def test_lenient_repairs_malformed_markup():
    assert [(i.phrase, i.seg_index) for i in parse_answer("<p>liver <SEG> ok").items] == [("liver", 0)]
    assert [(i.phrase, i.seg_index) for i in parse_answer("a </p> <p>liver").items] == [("liver", None)]
    assert parse_answer("<p>a <p>b</p>").phrases == ("a b",)


@pytest.mark.parametrize("answer", ["<p>liver <SEG>", "x </p>", "<p>a <p>b</p>", "<p>liver"])
def test_strict_rejects_malformed_markup(answer):
    with pytest.raises(ValueError, match="answer"):
        parse_answer(answer, strict=True)
