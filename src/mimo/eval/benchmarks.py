"""Each public benchmark's headline metrics as its authors compute them, beside ours.

Definitions, read from the authors' evaluation code (files and commits in
docs/benchmarks.md); every function works from ``SampleResult`` counts and texts.

MedPLIB / MeCoVQA-G (``model/eval/vqa_infer.py`` ``validate_seg``, ``model/MedPLIB.py``
``evaluate``, commit 3fc2b92):
    the predicted mask is ``sigmoid(logits) > 0.1`` (``medplib_binarize``; evaluate with a
    predictor mask threshold of 0.1 for comparable numbers). Per sample MedPLIB scores its
    **first** predicted mask against the sample's **first** reference mask, whatever the
    other masks are (``SampleResult.first_mask``); ``IoU = |P∩G| / |P∪G|``, 0 when the
    model gave no mask; ``Dice = 2·IoU / (1 + IoU)``; ``mIoU``, ``mDice`` are means over
    samples. MedPLIB's ``calculate_iou`` sets IoU to 0 for an empty union and then calls
    ``.item()`` on that int, so a sample whose prediction and reference are both empty
    crashes its run; we give such samples (any sample whose first reference mask is empty:
    its IoU can only be 0) the 0 that branch means, and count them in
    ``n_medplib_empty_reference``. Beside them, our ``pooled_miou`` / ``pooled_dice``: per
    sample, the masks paired by phrase (``grounding.pair_segments``) pooled
    (sum of intersections / sum of unions; 1 when all are empty), means over samples.
SA-Med2D-20M / SAM-Med2D (``test.py``, ``metrics.py``, ``DataLoader.py``):
    one test item per mask file, i.e. per **instance** (``label2image_test.json``);
    ``Dice = (2|P∩G| + 1e-7) / (|P| + |G| + 1e-7)`` with the prediction thresholded at 0.5,
    each item's value rounded to 4 decimals, mean over items. Our records merge the
    instances of a structure into one mask, so an instance is a connected component of it
    and the prediction is shared out by nearest instance (``segmentation.instance_counts``).
    Beside it, our ``structure_dice``: mean Dice over merged structure masks.
LLaVA-Med VQA (``llava/eval/run_eval.py``; VQA-RAD, SLAKE, PathVQA):
    texts lower-cased and normalised (``normalize_word``: punctuation to spaces, periods not
    before a digit removed, number words to digits, articles dropped). **closed** ("yes/no
    accuracy"): a hit when "yes" or "no" occurs as a substring of the prediction and the
    reference is a substring of it, anything else a miss (``llava_med_closed_hit``: the rule
    since the December 2023 fix, LLaVA-Med pull request #35). Before the fix (commit
    ad758b6) a prediction holding "yes"/"no" but not the reference was *not counted at all*
    (``llava_med_closed_hit_before_fix``), which inflates accuracy. The same release's
    ``run_eval_batch.py`` (and MedTrinity-25M's) counts a hit whenever the reference is a
    substring of the prediction (``substring_closed_hit``). **open** ("recall"):
    ``tp / (tp + fn)`` over word counts of reference and prediction (0 when either is empty).
MedPLIB VQA (``model/eval/cal_metric.py``): closed = normalised strings exactly equal
    (misses counted); open recall as LLaVA-Med. Region questions of MeCoVQA (``<region>`` in,
    text out, with an answer type) are scored like any VQA sample (``sample.score_sample``).

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
from mimo.eval.segmentation import MaskCounts

MEDPLIB_MASK_THRESHOLD = 0.1
SAMED2D_EPS = 1e-7
_COUNT_FIELDS = ("intersection", "union", "pred_area", "target_area")
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


def llava_med_closed_hit(prediction: str, reference: str) -> int:
    """1 hit, 0 miss: LLaVA-Med's closed rule since its December 2023 fix."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    return int(("yes" in pred or "no" in pred) and ref in pred)


def llava_med_closed_hit_before_fix(prediction: str, reference: str) -> int | None:
    """LLaVA-Med's closed rule before December 2023: 1 hit, 0 miss, None not counted (the
    prediction holds "yes"/"no" but not the reference)."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if "yes" in pred or "no" in pred:
        return 1 if ref in pred else None
    return 0


def substring_closed_hit(prediction: str, reference: str) -> int:
    """1 when the normalised reference is a substring of the prediction, else 0 (LLaVA-Med's
    ``run_eval_batch.py``, MedTrinity-25M's ``run_eval_nocandi.py``: no yes/no gate)."""
    return int(normalize_answer(reference) in normalize_answer(prediction))


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
    """MedPLIB's per-sample IoU: first predicted mask vs first reference mask, 0 for an
    empty union (an empty first reference mask) and for no prediction."""
    counts = result.first_mask
    if counts is None or counts.union == 0:
        return 0.0
    return counts.intersection / counts.union


def pooled_counts(result: SampleResult) -> MaskCounts:
    """The sample's masks paired by phrase, pooled into one set of counts."""
    return MaskCounts(*(sum(getattr(s.counts, f) for s in result.mask_scores) for f in _COUNT_FIELDS))


def samed2d_dice(counts: MaskCounts) -> float:
    """SAM-Med2D's Dice of one mask (``metrics.py``: eps 1e-7), rounded to 4 decimals as its
    ``test.py`` rounds each item before averaging."""
    value = (2 * counts.intersection + SAMED2D_EPS) / (counts.pred_area + counts.target_area + SAMED2D_EPS)
    return float(f"{value:.4f}")


def instances(result: SampleResult) -> list[MaskCounts]:
    """The sample's reference instances (``MaskScore.instances``, or the mask itself)."""
    return [c for s in result.mask_scores for c in (s.instances or (s.counts,))]


def benchmark_of(result: SampleResult) -> str | None:
    source = str(result.meta.get("source") or "")
    kind = source.split(":", 1)[0]
    return kind if kind in set(SEGMENTATION_METRICS) | set(VQA_BENCHMARKS) else None


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def medplib_segmentation(results: list[SampleResult]) -> dict[str, float]:
    """MedPLIB's mIoU / mDice (first mask vs first mask) and our pooled ones beside them."""
    scored = [r for r in results if r.first_mask is not None]
    ious = [medplib_iou(r) for r in scored]
    pooled = [pooled_counts(r) for r in results]
    return {
        "n_seg_samples": len(results),
        "medplib_miou": _mean(ious),
        "medplib_mdice": _mean([2 * i / (1 + i) for i in ious]),
        "n_medplib_samples": len(scored),
        "n_medplib_empty_reference": sum(r.first_mask.target_area == 0 for r in scored),
        "pooled_miou": _mean([c.iou for c in pooled]),
        "pooled_dice": _mean([c.dice for c in pooled]),
    }


def samed2d_segmentation(results: list[SampleResult]) -> dict[str, float]:
    """SAM-Med2D's Dice per instance and our Dice per merged structure beside it."""
    structures = [s.counts for r in results for s in r.mask_scores]
    items = [c for r in results for c in instances(r)]
    return {
        "n_seg_samples": len(results),
        "n_structures": len(structures),
        "structure_dice": _mean([c.dice for c in structures]),
        "n_instances": len(items),
        "samed2d_instance_dice": _mean([samed2d_dice(c) for c in items]),
    }


def vqa_metrics(results: list[SampleResult]) -> dict[str, float]:
    """Closed accuracy (LLaVA-Med fixed and before the fix, MedPLIB) and open recall."""
    m: dict[str, float] = {}
    closed = [(r.predicted_text, r.reference_text) for r in results if r.vqa_type == "closed"]
    opened = [(r.predicted_text, r.reference_text) for r in results if r.vqa_type == "open"]
    if closed:
        before = [h for h in (llava_med_closed_hit_before_fix(p, t) for p, t in closed) if h is not None]
        m.update(
            n_closed=len(closed),
            llava_med_closed_accuracy=_mean([llava_med_closed_hit(p, t) for p, t in closed]),
            llava_med_closed_accuracy_before_fix=_mean(before),
            llava_med_closed_counted_before_fix=len(before),
            substring_closed_accuracy=_mean([substring_closed_hit(p, t) for p, t in closed]),
            medplib_closed_accuracy=_mean([medplib_closed_hit(p, t) for p, t in closed]),
        )
    if opened:
        m.update(n_open=len(opened), open_recall=_mean([open_recall(p, t) for p, t in opened]))
    return m


SEGMENTATION_METRICS = {"mecovqa": medplib_segmentation, "samed2d": samed2d_segmentation}


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
        if seg and bench in SEGMENTATION_METRICS:
            m.update(SEGMENTATION_METRICS[bench](seg))
        m.update(vqa_metrics(rs))
        out[bench] = m
    return out
