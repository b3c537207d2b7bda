"""Each public benchmark's headline metrics as its authors compute them, beside ours.

Definitions, read from the authors' evaluation code (file and commit named in
docs/benchmarks.md); every function works from ``SampleResult`` counts and texts:

MedPLIB / MeCoVQA-G (``model/eval/vqa_infer.py``, ``validate_seg``):
    the predicted mask is ``sigmoid(logits) > 0.1`` (a probability threshold of 0.1, not
    0.5: use ``medplib_binarize`` or a predictor mask threshold of 0.1 for comparable
    numbers); per sample ``IoU = |P∩G| / |P∪G|`` with **0** when the union is empty and 0
    when no mask is produced; ``Dice = 2·IoU / (1 + IoU)`` per sample (Dice derived from
    IoU); ``mIoU`` and ``mDice`` are plain means over samples. With one mask per sample
    (MeCoVQA-G) the derived Dice equals the standard Dice. For several masks per sample
    MedPLIB compares its first predicted mask with all reference masks pooled; we pool the
    paired masks' counts (sum of intersections / sum of unions) instead.
LLaVA-Med VQA (``llava/eval/run_eval.py``; VQA-RAD, SLAKE, PathVQA numbers of LLaVA-Med,
MedPLIB and most later papers):
    texts lower-cased and normalised (``normalize_word``: punctuation to spaces, periods not
    before a digit removed, number words to digits, articles dropped); **closed** ("yes/no
    accuracy"): if "yes" or "no" occurs as a substring of the prediction, a hit when the
    reference is a substring of it, and a miss is *not counted at all*; with neither
    substring, a miss. **open** ("recall"): ``tp / (tp + fn)`` over word counts of
    reference and prediction (0 when either is empty).
MedPLIB VQA (``model/eval/cal_metric.py``): closed = normalised strings exactly equal
    (misses counted); open recall as LLaVA-Med.

Not reproduced: the contraction table of ``normalize_word`` (only answers with
apostrophe-less contractions such as "dont" are affected).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from mimo.eval.sample import SampleResult

MEDPLIB_MASK_THRESHOLD = 0.1
_PUNCT = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_NUMBERS = dict(
    none="0",
    zero="0",
    one="1",
    two="2",
    three="3",
    four="4",
    five="5",
    six="6",
    seven="7",
    eight="8",
    nine="9",
    ten="10",
)
_ARTICLES = ("a", "an", "the")
_PERIOD = re.compile(r"\.(?!\d)")
_DIGIT_COMMA = re.compile(r"\d,\d")

SEGMENTATION_BENCHMARKS = ("mecovqa", "samed2d")
VQA_BENCHMARKS = ("vqa-rad", "slake", "pathvqa", "mecovqa", "llava-med")


def medplib_binarize(probabilities: np.ndarray, threshold: float = MEDPLIB_MASK_THRESHOLD) -> np.ndarray:
    """MedPLIB's mask: probability (after sigmoid) above 0.1."""
    return np.asarray(probabilities) > threshold


def normalize_answer(text: str) -> str:
    """LLaVA-Med's ``normalize_word`` applied to a lower-cased answer (contractions aside)."""
    text = str(text).lower()
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or _DIGIT_COMMA.search(text):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD.sub("", out, count=32)  # their call passes re.UNICODE (32) as the count
    words = [_NUMBERS.get(w, w) for w in out.split()]
    return " ".join(w for w in words if w not in _ARTICLES).replace(",", "")


def llava_med_closed_hit(prediction: str, reference: str) -> int | None:
    """1 hit, 0 miss, None: not counted (prediction has yes/no but not the reference)."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if "yes" in pred or "no" in pred:
        return 1 if ref in pred else None
    return 0


def medplib_closed_hit(prediction: str, reference: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(reference))


def open_recall(prediction: str, reference: str) -> float:
    """``tp / (tp + fn)`` over the word counts of the normalised texts (LLaVA-Med/MedPLIB)."""
    pred, ref = Counter(normalize_answer(prediction).split()), Counter(normalize_answer(reference).split())
    if not pred or not ref:
        return 0.0
    tp = sum(c for w, c in pred.items() if w in ref)
    fn = sum(c for w, c in ref.items() if w not in pred)
    return 0.0 if tp == 0 else tp / (tp + fn)


def medplib_iou(result: SampleResult) -> float:
    """MedPLIB's per-sample IoU: 0 for no prediction or an empty union."""
    if result.n_predicted_masks == 0:
        return 0.0
    inter = sum(s.counts.intersection for s in result.mask_scores)
    union = sum(s.counts.union for s in result.mask_scores)
    return inter / union if union else 0.0


def standard_dice(result: SampleResult) -> float:
    """Per-sample Dice ``2|P∩G| / (|P| + |G|)`` of the pooled paired masks (1 when both empty)."""
    inter = sum(s.counts.intersection for s in result.mask_scores)
    denom = sum(s.counts.pred_area + s.counts.target_area for s in result.mask_scores)
    return 1.0 if denom == 0 else 2 * inter / denom


def benchmark_of(result: SampleResult) -> str | None:
    source = str(result.meta.get("source") or "")
    kind = source.split(":", 1)[0]
    return kind if kind in set(SEGMENTATION_BENCHMARKS) | set(VQA_BENCHMARKS) else None


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def benchmark_metrics(results: Iterable[SampleResult]) -> dict[str, dict[str, float]]:
    """``{benchmark: {metric: value}}`` for the results whose source is a public benchmark."""
    groups: dict[str, list[SampleResult]] = {}
    for r in results:
        b = benchmark_of(r)
        if b is not None:
            groups.setdefault(b, []).append(r)
    out: dict[str, dict[str, float]] = {}
    for bench, rs in sorted(groups.items()):
        m: dict[str, float] = {"n_samples": len(rs)}
        seg = [r for r in rs if r.mask_scores]
        if seg:
            ious = [medplib_iou(r) for r in seg]
            m.update(
                n_seg_samples=len(seg),
                medplib_miou=_mean(ious),
                medplib_mdice=_mean([2 * i / (1 + i) for i in ious]),
                dice=_mean([standard_dice(r) for r in seg]),
            )
        closed = [r for r in rs if r.vqa_type == "closed"]
        opened = [r for r in rs if r.vqa_type == "open"]
        if closed:
            hits = [llava_med_closed_hit(r.predicted_text, r.reference_text) for r in closed]
            counted = [h for h in hits if h is not None]
            m.update(
                n_closed=len(closed),
                llava_med_closed_accuracy=_mean(counted),
                llava_med_closed_counted=len(counted),
                medplib_closed_accuracy=_mean(
                    [medplib_closed_hit(r.predicted_text, r.reference_text) for r in closed]
                ),
            )
        if opened:
            m.update(
                n_open=len(opened),
                open_recall=_mean([open_recall(r.predicted_text, r.reference_text) for r in opened]),
            )
        out[bench] = m
    return out
