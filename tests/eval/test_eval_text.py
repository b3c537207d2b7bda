"""Text metrics: hand-computed values, and agreement with torchmetrics BLEU, the
rouge-score package and scikit-learn's macro F1 on random texts."""

import math
import random

import pytest
from rouge_score import rouge_scorer
from torchmetrics.text import BLEUScore

from mimo.eval.text import (
    bleu,
    closed_accuracy,
    closed_correct,
    identification_metrics,
    identification_scores,
    mean_open_recall,
    mean_rouge_l,
    named_structures,
    normalize_text,
    open_recall,
    rouge_l,
    sentence_bleu,
    tokenize,
)

VOCAB = [
    "liver",
    "kidney",
    "spleen",
    "left",
    "right",
    "lesion",
    "organ",
    "large",
    "small",
    "near",
    "above",
    "below",
    "is",
    "in",
    "of",
]


def _random_sentence(rng: random.Random, low: int = 3, high: int = 12) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(low, high)))


def _perturb(rng: random.Random, sentence: str) -> str:
    words = sentence.split()
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(len(words))
        if rng.random() < 0.5:
            words[i] = rng.choice(VOCAB)
        else:
            words.insert(i, rng.choice(VOCAB))
    return " ".join(words)


def test_normalize_text():
    assert normalize_text("The Left-Kidney, an organ.") == "left kidney organ"
    assert normalize_text("  A   LIVER!! ") == "liver"
    assert normalize_text("") == ""
    assert tokenize("Yes, the spleen.") == ["yes", "spleen"]


def test_bleu_hand_computed():
    # p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0/1; c = r = 4 so BP = 1.
    scores = bleu(["a b c d"], ["a b c e"], tokenizer=str.split)
    assert scores["bleu1"] == pytest.approx(0.75)
    assert scores["bleu2"] == pytest.approx(math.sqrt(0.75 * 2 / 3))
    assert scores["bleu3"] == pytest.approx((0.75 * 2 / 3 * 0.5) ** (1 / 3))
    assert scores["bleu4"] == 0.0
    # Smoothing (Lin & Och 2004): +1 on orders >= 2 -> 3/4, 3/4, 2/3, 1/2.
    smoothed = sentence_bleu("a b c d", "a b c e", tokenizer=str.split)
    assert smoothed["bleu4"] == pytest.approx((0.75 * 0.75 * 2 / 3 * 0.5) ** 0.25)
    assert smoothed["bleu1"] == pytest.approx(0.75)


def test_bleu_brevity_penalty_and_closest_reference():
    # c = 2, closest reference length 4 -> BP = exp(1 - 4/2).
    scores = bleu(["a b"], [["a b c d", "a b c d e f g"]], max_n=2, tokenizer=str.split)
    assert scores["bleu1"] == pytest.approx(math.exp(-1))
    assert scores["bleu2"] == pytest.approx(math.exp(-1))
    # Corpus level sums counts before the mean: p1 = (2 + 1) / (2 + 2).
    corpus = bleu(["a b", "x y"], ["a b", "x z"], max_n=1, tokenizer=str.split)
    assert corpus["bleu1"] == pytest.approx(0.75)
    assert bleu(["", "a"], ["a", "a"], max_n=1, level="sentence", tokenizer=str.split)["bleu1"] == 0.5


def test_bleu_rejects_bad_input():
    with pytest.raises(ValueError, match="predictions"):
        bleu(["a"], [])
    with pytest.raises(ValueError, match="level"):
        bleu(["a"], ["a"], level="document")
    assert math.isnan(bleu([], [])["bleu4"])


@pytest.mark.parametrize("n_gram", [1, 2, 3, 4])
def test_corpus_bleu_agrees_with_torchmetrics(n_gram):
    rng = random.Random(n_gram)
    # Reference lists sorted by token count: on a length tie both choose the shorter/first.
    references = [
        sorted((_random_sentence(rng) for _ in range(rng.randint(1, 3))), key=lambda s: len(s.split()))
        for _ in range(30)
    ]
    # Predictions: a reference with a few words changed, so that 4-gram matches exist.
    predictions = [_perturb(rng, rng.choice(refs)) for refs in references]
    ours = bleu(predictions, references, max_n=n_gram, tokenizer=str.split)[f"bleu{n_gram}"]
    theirs = float(BLEUScore(n_gram=n_gram)(predictions, references))
    assert ours > 0
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_smoothed_sentence_bleu_agrees_with_torchmetrics():
    rng = random.Random(7)
    for _ in range(20):
        shared = " ".join(rng.choice(VOCAB) for _ in range(4))  # guarantees a 4-gram match
        prediction = f"{_random_sentence(rng, 0, 5)} {shared} {_random_sentence(rng, 0, 5)}".strip()
        reference = f"{_random_sentence(rng, 0, 5)} {shared}".strip()
        ours = sentence_bleu(prediction, reference, tokenizer=str.split)["bleu4"]
        theirs = float(BLEUScore(n_gram=4, smooth=True)([prediction], [[reference]]))
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_rouge_l_hand_computed():
    score = rouge_l("a c e x", "a b c d e", tokenizer=str.split)  # LCS = a c e
    assert score.recall == pytest.approx(3 / 5)
    assert score.precision == pytest.approx(3 / 4)
    assert score.fmeasure == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert rouge_l("", "a").fmeasure == 0.0
    assert rouge_l("x", "a").fmeasure == 0.0
    # Several references: the best F counts.
    assert rouge_l("a b", ["x y", "a b"], tokenizer=str.split).fmeasure == 1.0


def test_rouge_l_agrees_with_rouge_score_package():
    rng = random.Random(3)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    predictions = [_random_sentence(rng, 1, 15) for _ in range(40)]
    references = [_random_sentence(rng, 1, 15) for _ in range(40)]
    for prediction, reference in zip(predictions, references, strict=True):
        theirs = scorer.score(reference, prediction)["rougeL"]
        ours = rouge_l(prediction, reference)
        assert ours.precision == pytest.approx(theirs.precision, abs=1e-6)
        assert ours.recall == pytest.approx(theirs.recall, abs=1e-6)
        assert ours.fmeasure == pytest.approx(theirs.fmeasure, abs=1e-6)
    expected = sum(
        scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)
    )
    assert mean_rouge_l(predictions, references) == pytest.approx(expected / 40, abs=1e-6)


def test_closed_correct():
    assert closed_correct("Yes, the liver is enlarged.", "yes")
    assert closed_correct("NO.", "No")
    assert not closed_correct("No, yes", "yes")
    assert not closed_correct("The liver.", "yes")
    assert closed_correct("The Liver", "liver")
    assert not closed_correct("left liver", "liver")
    assert closed_accuracy(["yes", "no", "yes"], ["yes", "yes", "yes"]) == pytest.approx(2 / 3)
    assert math.isnan(closed_accuracy([], []))


def test_open_recall():
    assert open_recall("The kidney on the left side.", "left kidney") == 1.0
    assert open_recall("right kidney", "Left kidney") == 0.5
    assert open_recall("nothing", "") == 1.0
    assert open_recall("", "liver") == 0.0
    assert mean_open_recall(["right kidney", "liver"], ["left kidney", "liver"]) == pytest.approx(0.75)


def test_identification_hand_computed():
    predictions = [
        "It is the <p>liver</p> <SEG>.",
        "It is the <p>Spleen</p> <SEG>.",
        "It is the <p>hepar</p> <SEG>.",
        "I cannot tell.",
    ]
    references = [
        "It is the <p>liver</p> <SEG>.",
        "It is the <p>left kidney</p> <SEG>.",
        "It is the <p>liver</p> <SEG>.",
        "It is the <p>spleen</p> <SEG>.",
    ]
    plain = identification_scores(predictions, references)
    # Labels: liver (TP 1, FN 1), spleen (FP 1, FN 1), left kidney (FN 1), hepar (FP 1).
    assert plain["id_accuracy"] == pytest.approx(1 / 4)
    assert plain["id_macro_f1"] == pytest.approx((2 / 3 + 0 + 0 + 0) / 4)
    synonyms = {"hepar": "liver", "liver": "liver"}
    with_kb = identification_scores(predictions, references, normalize=lambda p: synonyms.get(p.lower()))
    # liver TP 2; spleen FP 1, FN 1; left kidney FN 1.
    assert with_kb["id_accuracy"] == pytest.approx(2 / 4)
    assert with_kb["id_macro_f1"] == pytest.approx((1.0 + 0 + 0) / 3)
    assert named_structures("The <p>Liver</p> <SEG> and <p>the spleen</p>") == {"liver", "spleen"}


def test_identification_macro_f1_agrees_with_sklearn():
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    rng = random.Random(11)
    labels = ["liver", "spleen", "left kidney", "right kidney", "aorta"]
    references = [frozenset(rng.sample(labels, rng.randint(1, 2))) for _ in range(50)]
    predicted = [frozenset(rng.sample(labels, rng.randint(0, 2))) for _ in range(50)]
    binarizer = MultiLabelBinarizer(classes=sorted(set().union(*references, *predicted)))
    theirs = f1_score(
        binarizer.fit_transform(references), binarizer.transform(predicted), average="macro", zero_division=0
    )
    ours = identification_metrics(predicted, references)
    assert ours["id_macro_f1"] == pytest.approx(theirs, abs=1e-6)
    assert ours["id_accuracy"] == pytest.approx(
        sum(p == r for p, r in zip(predicted, references, strict=True)) / 50
    )
