"""Scoring one sample: a model's prediction against a reference record.

A runner (``mimo eval``, a SAM baseline, a text-only ablation...) calls
``score_sample(prediction, record, reference_masks)`` per sample and hands the
``SampleResult``s to ``EvaluationReport``. A ``SampleResult`` keeps counts and texts only,
never masks, and round-trips through JSON (``to_dict`` / ``from_dict``), so a runner can
append them to a JSONL file and resume.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from mimo.core import rle
from mimo.core.answers import parse_answer
from mimo.core.results import Prediction, Segment
from mimo.core.schema import IMAGE_TOKEN, REGION_TOKEN, Record
from mimo.eval.grounding import grounding_hits, pair_segments, produced_segmentation
from mimo.eval.segmentation import MaskCounts, instance_counts, mask_counts
from mimo.eval.text import (
    PhraseNormalizer,
    closed_correct,
    is_closed_reference,
    normalize_phrase,
    open_recall,
    rouge_l,
)


def PredictedSegment(mask: np.ndarray, phrase: str | None = None, score: float | None = None) -> Segment:  # noqa: N802
    """The old name and argument order of a predicted ``Segment`` (kept for callers that use it)."""
    return Segment(phrase, mask, score)


@dataclass(frozen=True)
class MaskScore:
    """One reference mask and the predicted mask paired with it (``grounding.pair_segments``).

    ``structure``: the normalised reference phrase (None for a bare ``<SEG>``);
    ``predicted_index``: which predicted segment was paired, None when none was (the
    prediction then counts as an empty mask); ``instances``: the pair's counts per instance
    of the reference mask when it has several (``segmentation.instance_counts``), else ().
    """

    reference_key: str
    structure: str | None
    predicted_index: int | None
    predicted_phrase: str | None
    counts: MaskCounts
    instances: tuple[MaskCounts, ...] = ()

    @property
    def iou(self) -> float:
        return self.counts.iou

    @property
    def dice(self) -> float:
        return self.counts.dice


@dataclass(frozen=True)
class SampleResult:
    """Everything the report needs about one scored sample (counts and texts, no masks).

    ``first_mask``: the first predicted mask (an empty one when the model gave none) against
    the first reference mask of the scored turn, whatever the pairing (MedPLIB's rule, see
    ``mimo.eval.benchmarks``); None when the turn has no reference mask.
    """

    id: str
    perspective: str
    modality: str
    image: str
    question: str
    reference_answer: str
    predicted_answer: str
    structures: tuple[str, ...] = ()
    reference_structures: frozenset[str] = frozenset()
    predicted_structures: frozenset[str] = frozenset()
    mask_scores: tuple[MaskScore, ...] = ()
    n_predicted_masks: int = 0
    n_unmatched_predictions: int = 0
    grounding_hits: int = 0
    grounding_total: int = 0
    negative: bool = False
    false_positive: bool | None = None
    vqa_type: str | None = None
    closed_correct: bool | None = None
    open_recall: float | None = None
    rouge_l: float = 0.0
    first_mask: MaskCounts | None = None
    meta: dict = field(default_factory=dict)

    @property
    def reference_text(self) -> str:
        """The reference answer without markup."""
        return parse_answer(self.reference_answer).text

    @property
    def predicted_text(self) -> str:
        """The predicted answer without markup."""
        return parse_answer(self.predicted_answer).text

    @property
    def mean_iou(self) -> float | None:
        """Mean IoU of the sample's masks (None when it has no reference mask)."""
        if not self.mask_scores:
            return None
        return float(np.mean([s.iou for s in self.mask_scores]))

    def to_dict(self) -> dict:
        """A JSON-ready dict (sets become sorted lists)."""
        return {
            "id": self.id,
            "perspective": self.perspective,
            "modality": self.modality,
            "image": self.image,
            "question": self.question,
            "reference_answer": self.reference_answer,
            "predicted_answer": self.predicted_answer,
            "structures": list(self.structures),
            "reference_structures": sorted(self.reference_structures),
            "predicted_structures": sorted(self.predicted_structures),
            "mask_scores": [
                {
                    "reference_key": s.reference_key,
                    "structure": s.structure,
                    "predicted_index": s.predicted_index,
                    "predicted_phrase": s.predicted_phrase,
                    "intersection": s.counts.intersection,
                    "union": s.counts.union,
                    "pred_area": s.counts.pred_area,
                    "target_area": s.counts.target_area,
                    "iou": s.iou,
                    "dice": s.dice,
                    "instances": [_counts_dict(c) for c in s.instances],
                }
                for s in self.mask_scores
            ],
            "n_predicted_masks": self.n_predicted_masks,
            "n_unmatched_predictions": self.n_unmatched_predictions,
            "grounding_hits": self.grounding_hits,
            "grounding_total": self.grounding_total,
            "negative": self.negative,
            "false_positive": self.false_positive,
            "vqa_type": self.vqa_type,
            "closed_correct": self.closed_correct,
            "open_recall": self.open_recall,
            "rouge_l": self.rouge_l,
            "first_mask": None if self.first_mask is None else _counts_dict(self.first_mask),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> SampleResult:
        """Inverse of ``to_dict``."""
        values = dict(data)
        values["structures"] = tuple(values.get("structures", ()))
        values["reference_structures"] = frozenset(values.get("reference_structures", ()))
        values["predicted_structures"] = frozenset(values.get("predicted_structures", ()))
        values["mask_scores"] = tuple(
            MaskScore(
                reference_key=s["reference_key"],
                structure=s["structure"],
                predicted_index=s["predicted_index"],
                predicted_phrase=s["predicted_phrase"],
                counts=_counts_of(s),
                instances=tuple(_counts_of(c) for c in s.get("instances", ())),
            )
            for s in values.get("mask_scores", ())
        )
        first = values.get("first_mask")
        values["first_mask"] = None if first is None else _counts_of(first)
        return cls(**values)


def _counts_dict(counts: MaskCounts) -> dict[str, int]:
    return {
        "intersection": counts.intersection,
        "union": counts.union,
        "pred_area": counts.pred_area,
        "target_area": counts.target_area,
    }


def _counts_of(data: Mapping) -> MaskCounts:
    return MaskCounts(data["intersection"], data["union"], data["pred_area"], data["target_area"])


def decode_record_masks(record: Record) -> dict[str, np.ndarray]:
    """Decode every COCO RLE of ``record.masks`` to a boolean ``(H, W)`` array (``mimo.core.rle``)."""
    with warnings.catch_warnings():
        # pycocotools' Cython decoder trips numpy 2's __array__(copy=...) deprecation.
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        return {key: rle.decode(value) for key, value in record.masks.items()}


def _gpt_turn_index(record: Record, turn_index: int | None) -> int:
    gpt_turns = [i for i, t in enumerate(record.conversations) if t.from_ == "gpt"]
    if not gpt_turns:
        raise ValueError(f"record {record.id!r}: no gpt turn to evaluate against")
    if turn_index is None:
        return gpt_turns[-1]
    if turn_index not in gpt_turns:
        raise ValueError(
            f"record {record.id!r}: conversations[{turn_index}] is not a gpt turn (gpt turns: {gpt_turns})"
        )
    return turn_index


_PROMPT_TOKENS = re.compile(re.escape(IMAGE_TOKEN) + r"\s*")


def _question(record: Record, gpt_index: int) -> str:
    for turn in reversed(record.conversations[:gpt_index]):
        if turn.from_ == "human":
            return _PROMPT_TOKENS.sub("", turn.value).replace(REGION_TOKEN, "[region]").strip()
    return ""


# answer types as the benchmarks write them (LLaVA-Med "CLOSED"/"OPEN", VQA-RAD with trailing
# spaces, MedPLIB's cal_metric.py also "yes/no", "other", "number") -> closed / open
ANSWER_TYPES = {"closed": "closed", "yes/no": "closed", "open": "open", "other": "open", "number": "open"}


def declared_answer_type(record: Record) -> str | None:
    """``"closed"`` / ``"open"`` from ``meta["answer_type"]``, None when absent or unknown."""
    return ANSWER_TYPES.get(str((record.meta or {}).get("answer_type", "")).strip().lower())


def _vqa_type(record: Record, reference_text: str, has_masks: bool) -> str | None:
    """How the answer's text is scored: VQA records always (declared type, else yes/no
    references are closed); any other record with a declared answer type and no reference
    mask in the scored turn (a MeCoVQA region question: ``<region>`` in, text out) too."""
    declared = declared_answer_type(record)
    if record.perspective == "vqa":
        return declared or ("closed" if is_closed_reference(reference_text) else "open")
    return declared if not has_masks else None


# sources whose benchmark scores every mask instance (SAM-Med2D, ``mimo.eval.benchmarks``);
# splitting masks into instances costs milliseconds per mask, so only these get it
INSTANCE_SOURCES = ("samed2d",)


def _checked(record_id: str, key: str, metric: Callable, pred: np.ndarray, ref: np.ndarray):
    """``metric(pred, ref)``, with a shape mismatch named after the record and the mask."""
    try:
        return metric(pred, ref)
    except ValueError as error:
        raise ValueError(f"record {record_id!r}, mask {key!r}: {error}") from None


def _mask_score(
    record_id: str,
    reference: tuple[str, Segment],
    predicted: Segment | None,
    pred_index: int | None,
    normalize: PhraseNormalizer | None,
    per_instance: bool,
) -> MaskScore:
    """One reference mask scored against its paired prediction (an empty mask when none)."""
    key, ref = reference
    pred = np.zeros_like(ref.mask, dtype=bool) if predicted is None else predicted.mask
    structure = None if ref.phrase is None else normalize_phrase(ref.phrase, normalize)
    return MaskScore(
        key,
        structure,
        pred_index,
        None if predicted is None else predicted.phrase,
        _checked(record_id, key, mask_counts, pred, ref.mask),
        _checked(record_id, key, instance_counts, pred, ref.mask) if per_instance else (),
    )


def _first_mask(
    record_id: str, references: list[tuple[str, Segment]], predicted: list[Segment]
) -> MaskCounts | None:
    """The first predicted mask (empty when none) against the first reference mask."""
    if not references:
        return None
    key, ref = references[0]
    pred = predicted[0].mask if predicted else np.zeros_like(ref.mask, dtype=bool)
    return _checked(record_id, key, mask_counts, pred, ref.mask)


def score_sample(
    prediction: Prediction,
    record: Record,
    reference_masks: Mapping[str, np.ndarray] | None = None,
    *,
    turn_index: int | None = None,
    normalize: PhraseNormalizer | None = None,
) -> SampleResult:
    """Score ``prediction`` against the gpt turn ``turn_index`` of ``record`` (default: last).

    Args:
        prediction: the model's answer and masks.
        record: the reference record (``mimo.core.schema.Record``).
        reference_masks: mask key -> boolean array; decoded from ``record.masks`` if None.
        normalize: structure-name normaliser (e.g. the knowledge base's synonym mapping),
            used for identification, pairing and grounding; see ``text.normalize_phrase``.

    What is scored depends on ``record.perspective``: every sample gets ROUGE-L and the
    identification sets; reference masks get paired predicted masks (segmentation) and
    grounding hits; ``negative`` samples get a false-positive flag; ``vqa`` samples get closed
    correctness (yes/no references, or ``meta["answer_type"] == "closed"``) or open recall,
    as do region questions with a declared answer type and no reference mask (MeCoVQA).
    """
    gpt_index = _gpt_turn_index(record, turn_index)
    turn = record.conversations[gpt_index]
    if reference_masks is None:
        reference_masks = decode_record_masks(record)
    reference = parse_answer(turn.value)
    predicted = parse_answer(prediction.answer)

    ref_segments = _reference_segments(record, turn, reference, reference_masks)
    pred_segments = _predicted_segments(prediction, predicted)
    mask_scores, unmatched = _mask_scores(record, ref_segments, pred_segments, normalize)
    hits, total = grounding_hits(pred_segments, [s for _, s in ref_segments], normalize)

    perspective = record.perspective or "unknown"
    negative = perspective == "negative"
    reference_structures = frozenset(normalize_phrase(p, normalize) for p in reference.phrases)
    vqa_type, closed, recall = _vqa_scores(record, reference, predicted, bool(ref_segments))
    return SampleResult(
        id=record.id,
        perspective=perspective,
        modality=record.modality or "unknown",
        image=record.image or record.id,
        question=_question(record, gpt_index),
        reference_answer=turn.value,
        predicted_answer=prediction.answer,
        structures=_structures(record, reference_structures, normalize),
        reference_structures=reference_structures,
        predicted_structures=frozenset(normalize_phrase(p, normalize) for p in predicted.phrases),
        mask_scores=tuple(mask_scores),
        n_predicted_masks=len(pred_segments),
        n_unmatched_predictions=len(unmatched),
        grounding_hits=hits,
        grounding_total=total,
        negative=negative,
        false_positive=produced_segmentation(predicted.num_segs, len(pred_segments)) if negative else None,
        vqa_type=vqa_type,
        closed_correct=closed,
        open_recall=recall,
        rouge_l=rouge_l(predicted.text, reference.text).fmeasure,
        first_mask=_first_mask(record.id, ref_segments, pred_segments),
        meta=_result_meta(record, prediction.answer),
    )


def _mask_scores(
    record: Record,
    ref_segments: list[tuple[str, Segment]],
    pred_segments: list[Segment],
    normalize: PhraseNormalizer | None,
) -> tuple[list, list]:
    """The score of each reference mask against its paired prediction (``pair_segments``), and
    the predictions left unpaired."""
    pairs, unmatched = pair_segments(pred_segments, [s for _, s in ref_segments], normalize)
    per_instance = (record.source or "").split(":", 1)[0] in INSTANCE_SOURCES
    scores = [
        _mask_score(
            record.id, ref_segments[r], None if p is None else pred_segments[p], p, normalize, per_instance
        )
        for p, r in pairs
    ]
    return scores, unmatched


def _reference_segments(
    record: Record, turn, reference, reference_masks: Mapping[str, np.ndarray]
) -> list[tuple[str, Segment]]:
    """``(mask key, Segment)`` of each ``<SEG>`` of the reference turn, its phrase and mask."""
    segments = []
    for item, key in zip(reference.segments, turn.masks or [], strict=True):
        if key not in reference_masks:
            raise ValueError(f"record {record.id!r}: reference mask {key!r} missing from reference_masks")
        segments.append((key, Segment(item.phrase, np.asarray(reference_masks[key]))))
    return segments


def _predicted_segments(prediction: Prediction, predicted) -> list[Segment]:
    """The prediction's segments; one without a phrase takes its ``<SEG>``'s from the answer."""
    segments = []
    for i, seg in enumerate(prediction.segments):
        phrase = seg.phrase
        if phrase is None and i < predicted.num_segs:
            phrase = predicted.phrase_for_seg(i)
        segments.append(Segment(phrase, np.asarray(seg.mask)))
    return segments


def _structures(
    record: Record, reference_structures: frozenset[str], normalize: PhraseNormalizer | None
) -> tuple[str, ...]:
    """The structures a result is reported under: the reference's phrases, else the record's
    ``meta["structure"]``."""
    structures = sorted(reference_structures)
    meta = record.meta or {}
    if not structures and meta.get("structure"):
        structures = [normalize_phrase(str(meta["structure"]), normalize)]
    return tuple(structures)


def _vqa_scores(record: Record, reference, predicted, has_reference_masks: bool):
    """``(vqa_type, closed_correct, open_recall)``: a closed answer's correctness or an open
    one's recall, None where the record is no such question (``_vqa_type``)."""
    closed = recall = None
    vqa_type = _vqa_type(record, reference.text, has_reference_masks)
    if vqa_type == "closed":
        closed = closed_correct(predicted.text, reference.text)
    elif vqa_type == "open":
        recall = open_recall(predicted.text, reference.text)
    return vqa_type, closed, recall


def _result_meta(record: Record, answer: str) -> dict:
    """Source and case of the record; for a measurement record, its numeric result
    (``mimo.eval.measurements``)."""
    from mimo.eval.measurements import measurement_result

    meta = {k: v for k, v in (("source", record.source), ("case", record.case)) if v is not None}
    measurement = measurement_result(answer, record.meta)
    if measurement is not None:
        meta["measurement"] = measurement
    return meta
