"""Text metrics: normalisation, BLEU, ROUGE-L, VQA accuracy/recall, structure identification.

All functions take plain strings; strip the answer markup first (``mimo.core.answers``).
The identification metrics take answers *with* markup, because they compare the phrases
named in ``<p>..</p>``.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mimo.core.answers import parse_answer

Tokenizer = Callable[[str], Sequence[str]]
PhraseNormalizer = Callable[[str], "str | None"]

_ARTICLES = frozenset({"a", "an", "the"})
_PUNCTUATION = re.compile("[" + re.escape(string.punctuation) + "]")


def normalize_text(text: str) -> str:
    """Lowercase, replace punctuation by spaces, drop the articles a/an/the, collapse spaces.

    This is the answer normalisation of the SQuAD evaluation script (Rajpurkar et al., 2016),
    reused by the medical VQA evaluations (LLaVA-Med, PMC-VQA), except that punctuation
    becomes a space rather than vanishing, so that "left/right" gives two words.

    >>> normalize_text("The Left-Kidney, an organ.")
    'left kidney organ'
    """
    words = _PUNCTUATION.sub(" ", text.lower()).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def tokenize(text: str) -> list[str]:
    """Whitespace tokens of ``normalize_text(text)``; the default tokenizer of this module."""
    return normalize_text(text).split()


# --------------------------------------------------------------------------- BLEU


@dataclass(frozen=True)
class _BleuStats:
    matches: tuple[int, ...]  # clipped n-gram matches, n = 1..max_n
    totals: tuple[int, ...]  # candidate n-grams, n = 1..max_n
    pred_len: int
    ref_len: int


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _bleu_stats(pred: Sequence[str], refs: Sequence[Sequence[str]], max_n: int) -> _BleuStats:
    if not refs:
        raise ValueError("BLEU needs at least one reference per prediction; got none")
    matches, totals = [], []
    for n in range(1, max_n + 1):
        pred_counts = _ngrams(pred, n)
        max_ref_counts: Counter = Counter()
        for ref in refs:
            max_ref_counts |= _ngrams(ref, n)
        matches.append(sum((pred_counts & max_ref_counts).values()))
        totals.append(sum(pred_counts.values()))
    # Effective reference length: the reference length closest to the candidate's,
    # the shorter one on a tie (Papineni et al. 2002 "best match length"; NLTK, sacreBLEU).
    ref_len = min((abs(len(r) - len(pred)), len(r)) for r in refs)[1]
    return _BleuStats(tuple(matches), tuple(totals), len(pred), ref_len)


def _bleu_from_stats(stats: _BleuStats, n: int, smooth: bool) -> float:
    """Cumulative BLEU-n with uniform weights 1/n (Papineni et al., 2002).

    ``smooth``: add one to matches and totals for orders 2..n (Lin & Och, 2004; "smoothing 2"
    in Chen & Cherry, 2014), the usual choice for sentence-level BLEU. Unlike
    torchmetrics' ``smooth=True``, a missing higher-order match does not zero the score.
    """
    if stats.pred_len == 0 or stats.matches[0] == 0:
        return 0.0
    log_precision = 0.0
    for k in range(n):
        m, t = stats.matches[k], stats.totals[k]
        if smooth and k > 0:
            m, t = m + 1, t + 1
        if m == 0:
            return 0.0
        log_precision += math.log(m / t) / n
    c, r = stats.pred_len, stats.ref_len
    brevity_penalty = 1.0 if c > r else math.exp(1.0 - r / c)
    return brevity_penalty * math.exp(log_precision)


def _as_reference_lists(references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    return [[r] if isinstance(r, str) else list(r) for r in references]


def bleu(
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    max_n: int = 4,
    level: str = "corpus",
    smooth: bool | None = None,
    tokenizer: Tokenizer = tokenize,
) -> dict[str, float]:
    """BLEU-1..``max_n`` (cumulative, uniform weights) as ``{"bleu1": .., "bleu4": ..}``.

    Args:
        predictions: one string per sample.
        references: per sample, one reference string or a list of them.
        level: ``"corpus"``: Papineni et al. (2002): clipped n-gram matches and lengths summed
            over the corpus, then one geometric mean times one brevity penalty
            BP = exp(1 - r/c) if c <= r else 1. ``"sentence"``: the mean over samples of each
            sample's own BLEU.
        smooth: Lin & Och (2004) add-one smoothing of orders >= 2 (see ``_bleu_from_stats``).
            Default: off for corpus level, on for sentence level.
        tokenizer: string -> tokens; default lowercases and strips punctuation and articles.

    With ``level="corpus", smooth=False`` and ``tokenizer=str.split`` this equals
    ``torchmetrics.text.BLEUScore(n_gram=n)``.
    """
    if len(predictions) != len(references):
        raise ValueError(f"BLEU: {len(predictions)} predictions but {len(references)} references")
    if level not in ("corpus", "sentence"):
        raise ValueError(f"BLEU level {level!r}: expected 'corpus' or 'sentence'")
    if smooth is None:
        smooth = level == "sentence"
    stats = [
        _bleu_stats(tokenizer(p), [tokenizer(r) for r in refs], max_n)
        for p, refs in zip(predictions, _as_reference_lists(references), strict=True)
    ]
    if not stats:
        return {f"bleu{n}": math.nan for n in range(1, max_n + 1)}
    if level == "sentence":
        return {
            f"bleu{n}": sum(_bleu_from_stats(s, n, smooth) for s in stats) / len(stats)
            for n in range(1, max_n + 1)
        }
    total = _BleuStats(
        matches=tuple(sum(s.matches[k] for s in stats) for k in range(max_n)),
        totals=tuple(sum(s.totals[k] for s in stats) for k in range(max_n)),
        pred_len=sum(s.pred_len for s in stats),
        ref_len=sum(s.ref_len for s in stats),
    )
    return {f"bleu{n}": _bleu_from_stats(total, n, smooth) for n in range(1, max_n + 1)}


def sentence_bleu(
    prediction: str,
    references: str | Sequence[str],
    *,
    max_n: int = 4,
    smooth: bool = True,
    tokenizer: Tokenizer = tokenize,
) -> dict[str, float]:
    """BLEU-1..``max_n`` of one sentence (smoothed by default; see ``bleu``)."""
    return bleu([prediction], [references], max_n=max_n, level="corpus", smooth=smooth, tokenizer=tokenizer)


# --------------------------------------------------------------------------- ROUGE-L


@dataclass(frozen=True)
class RougeScore:
    precision: float
    recall: float
    fmeasure: float


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(
    prediction: str,
    references: str | Sequence[str],
    *,
    beta: float = 1.0,
    tokenizer: Tokenizer = tokenize,
) -> RougeScore:
    """Sentence-level ROUGE-L (Lin, 2004, sec. 3.1).

    With X the reference (length m), Y the prediction (length n): R = LCS(X, Y)/m,
    P = LCS(X, Y)/n, F = (1 + beta^2) R P / (R + beta^2 P). ``beta = 1`` (the F1 that the
    ``rouge-score`` package reports). With several references the one of highest F counts
    (as ``rouge_score.RougeScorer.score_multi``). An empty prediction or reference scores 0,
    as in ``rouge-score``.
    """
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("ROUGE-L needs at least one reference; got none")
    pred_tokens = tokenizer(prediction)
    best = RougeScore(0.0, 0.0, 0.0)
    for ref in refs:
        ref_tokens = tokenizer(ref)
        if not pred_tokens or not ref_tokens:
            continue
        lcs = _lcs_length(ref_tokens, pred_tokens)
        if lcs == 0:
            continue
        recall = lcs / len(ref_tokens)
        precision = lcs / len(pred_tokens)
        f = (1 + beta**2) * recall * precision / (recall + beta**2 * precision)
        if f > best.fmeasure:
            best = RougeScore(precision, recall, f)
    return best


def mean_rouge_l(
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    tokenizer: Tokenizer = tokenize,
) -> float:
    """Mean over samples of the sentence-level ROUGE-L F-measure (NaN for no samples)."""
    if len(predictions) != len(references):
        raise ValueError(f"ROUGE-L: {len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return math.nan
    scores = [
        rouge_l(p, r, tokenizer=tokenizer).fmeasure for p, r in zip(predictions, references, strict=True)
    ]
    return sum(scores) / len(scores)


# --------------------------------------------------------------------------- VQA


YES_NO = ("yes", "no")


def is_closed_reference(reference: str) -> bool:
    """Whether a reference answer is a yes/no answer after normalisation."""
    return normalize_text(reference) in YES_NO


def closed_correct(prediction: str, reference: str) -> bool:
    """Closed-question correctness (VQA-RAD / SLAKE "closed" accuracy, as LLaVA-Med reports).

    Both strings are normalised (``normalize_text``). A yes/no reference is matched against
    the first "yes" or "no" word of the prediction, so "Yes, the liver is enlarged." is
    correct for "yes"; any other reference needs an exact match of the normalised strings.
    """
    ref = normalize_text(reference)
    pred_words = normalize_text(prediction).split()
    if ref in YES_NO:
        first = next((w for w in pred_words if w in YES_NO), None)
        return first == ref
    return " ".join(pred_words) == ref


def open_recall(prediction: str, reference: str, *, tokenizer: Tokenizer = tokenize) -> float:
    """Fraction of the distinct reference tokens present in the prediction.

    The open-question "recall" of the LLaVA-Med and PMC-VQA evaluations: how much of the
    ground-truth answer the generated answer contains, after normalisation. An empty
    reference gives 1.0 (nothing to recall).
    """
    ref_tokens = set(tokenizer(reference))
    if not ref_tokens:
        return 1.0
    return len(ref_tokens & set(tokenizer(prediction))) / len(ref_tokens)


def closed_accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean of ``closed_correct`` over samples (NaN for no samples)."""
    if len(predictions) != len(references):
        raise ValueError(f"closed accuracy: {len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return math.nan
    return sum(closed_correct(p, r) for p, r in zip(predictions, references, strict=True)) / len(predictions)


def mean_open_recall(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean of ``open_recall`` over samples (NaN for no samples)."""
    if len(predictions) != len(references):
        raise ValueError(f"open recall: {len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return math.nan
    return sum(open_recall(p, r) for p, r in zip(predictions, references, strict=True)) / len(predictions)


# --------------------------------------------------------------------------- identification


def normalize_phrase(phrase: str, normalize: PhraseNormalizer | None = None) -> str:
    """The comparison key of a structure name.

    ``normalize`` (e.g. the knowledge base's synonym normaliser, mapping "hepar" to "liver")
    is applied when given; where it returns None or "" (an unknown term), or when none is
    given, the key is ``normalize_text(phrase)``.
    """
    if normalize is not None:
        key = normalize(phrase)
        if key:
            return key
    return normalize_text(phrase)


def named_structures(answer: str, normalize: PhraseNormalizer | None = None) -> frozenset[str]:
    """The set of normalised phrases named in ``<p>..</p>`` of an answer (grounded or not)."""
    return frozenset(normalize_phrase(p, normalize) for p in parse_answer(answer).phrases)


def identification_metrics(
    predicted: Iterable[frozenset[str] | set[str]],
    reference: Iterable[frozenset[str] | set[str]],
) -> dict[str, float]:
    """Identification accuracy and macro F1 of the named structures, from normalised sets.

    - ``id_accuracy``: fraction of samples whose predicted set equals the reference set
      (for the usual one-structure answer: the structure was named correctly).
    - ``id_macro_f1``: per structure c, F1_c = 2 TP / (2 TP + FP + FN) counting samples
      (multi-label: c in both sets, only predicted, only in the reference); the unweighted
      mean over every structure named in a reference or a prediction. This is
      scikit-learn's ``f1_score(average="macro")`` on binarised label sets.

    NaN for no samples.
    """
    pairs = [(frozenset(p), frozenset(r)) for p, r in zip(predicted, reference, strict=True)]
    if not pairs:
        return {"id_accuracy": math.nan, "id_macro_f1": math.nan}
    accuracy = sum(p == r for p, r in pairs) / len(pairs)
    labels = sorted(set().union(*(p | r for p, r in pairs)))
    if not labels:
        return {"id_accuracy": accuracy, "id_macro_f1": math.nan}
    f1s = []
    for label in labels:
        tp = sum(label in p and label in r for p, r in pairs)
        fp = sum(label in p and label not in r for p, r in pairs)
        fn = sum(label not in p and label in r for p, r in pairs)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"id_accuracy": accuracy, "id_macro_f1": sum(f1s) / len(f1s)}


def identification_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    normalize: PhraseNormalizer | None = None,
) -> dict[str, float]:
    """``identification_metrics`` on answers with markup: compares their ``<p>`` phrases."""
    if len(predictions) != len(references):
        raise ValueError(f"identification: {len(predictions)} predictions but {len(references)} references")
    return identification_metrics(
        (named_structures(p, normalize) for p in predictions),
        (named_structures(r, normalize) for r in references),
    )
