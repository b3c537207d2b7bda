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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mimo.data import rle
from mimo.data.schema import IMAGE_TOKEN, REGION_TOKEN, Record
from mimo.eval.answers import parse_answer
from mimo.eval.grounding import Segment, grounding_hits, pair_segments, produced_segmentation
from mimo.eval.segmentation import MaskCounts, mask_counts
from mimo.eval.text import (
    PhraseNormalizer,
    closed_correct,
    is_closed_reference,
    normalize_phrase,
    open_recall,
    rouge_l,
)


@dataclass(frozen=True)
class PredictedSegment:
    """One ``<SEG>`` output of a model: its mask (bool, the image's own size), the phrase it
    grounds (None: take it from the answer text) and the model's confidence."""

    mask: np.ndarray
    phrase: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class Prediction:
    """A model's answer: the generated text (with markup) and one segment per ``<SEG>``."""

    answer: str
    segments: Sequence[PredictedSegment] = ()

    @classmethod
    def from_masks(cls, answer: str, masks: Sequence[np.ndarray]) -> Prediction:
        """Masks in ``<SEG>`` order; their phrases are read from the answer."""
        return cls(answer, tuple(PredictedSegment(np.asarray(m)) for m in masks))


@dataclass(frozen=True)
class MaskScore:
    """One reference mask and the predicted mask paired with it (``grounding.pair_segments``).

    ``structure``: the normalised reference phrase (None for a bare ``<SEG>``);
    ``predicted_index``: which predicted segment was paired, None when none was (the
    prediction then counts as an empty mask).
    """

    reference_key: str
    structure: str | None
    predicted_index: int | None
    predicted_phrase: str | None
    counts: MaskCounts

    @property
    def iou(self) -> float:
        return self.counts.iou

    @property
    def dice(self) -> float:
        return self.counts.dice


@dataclass(frozen=True)
class SampleResult:
    """Everything the report needs about one scored sample (counts and texts, no masks)."""

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
                counts=MaskCounts(s["intersection"], s["union"], s["pred_area"], s["target_area"]),
            )
            for s in values.get("mask_scores", ())
        )
        return cls(**values)


def decode_record_masks(record: Record) -> dict[str, np.ndarray]:
    """Decode every COCO RLE of ``record.masks`` to a boolean ``(H, W)`` array (``mimo.data.rle``)."""
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


def _vqa_type(record: Record, reference_text: str) -> str:
    declared = str((record.meta or {}).get("answer_type", "")).lower()
    if declared in ("closed", "open"):
        return declared
    return "closed" if is_closed_reference(reference_text) else "open"


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
        record: the reference record (``mimo.data.schema.Record``).
        reference_masks: mask key -> boolean array; decoded from ``record.masks`` if None.
        normalize: structure-name normaliser (e.g. the knowledge base's synonym mapping),
            used for identification, pairing and grounding; see ``text.normalize_phrase``.

    What is scored depends on ``record.perspective``: every sample gets ROUGE-L and the
    identification sets; reference masks get paired predicted masks (segmentation) and
    grounding hits; ``negative`` samples get a false-positive flag; ``vqa`` samples get closed
    correctness (yes/no references, or ``meta["answer_type"] == "closed"``) or open recall.
    """
    gpt_index = _gpt_turn_index(record, turn_index)
    turn = record.conversations[gpt_index]
    if reference_masks is None:
        reference_masks = decode_record_masks(record)
    reference = parse_answer(turn.value)
    predicted = parse_answer(prediction.answer)

    ref_segments = []
    for item, key in zip(reference.segments, turn.masks or [], strict=True):
        if key not in reference_masks:
            raise ValueError(f"record {record.id!r}: reference mask {key!r} missing from reference_masks")
        ref_segments.append((key, Segment(item.phrase, np.asarray(reference_masks[key]))))
    pred_segments = []
    for i, seg in enumerate(prediction.segments):
        phrase = seg.phrase
        if phrase is None and i < predicted.num_segs:
            phrase = predicted.phrase_for_seg(i)
        pred_segments.append(Segment(phrase, np.asarray(seg.mask)))

    refs_only = [s for _, s in ref_segments]
    pairs, unmatched = pair_segments(pred_segments, refs_only, normalize)
    mask_scores = []
    for pred_index, ref_index in pairs:
        key, ref = ref_segments[ref_index]
        if pred_index is None:
            counts = mask_counts(np.zeros_like(ref.mask, dtype=bool), ref.mask)
            pred_phrase = None
        else:
            try:
                counts = mask_counts(pred_segments[pred_index].mask, ref.mask)
            except ValueError as error:
                raise ValueError(f"record {record.id!r}, mask {key!r}: {error}") from None
            pred_phrase = pred_segments[pred_index].phrase
        structure = None if ref.phrase is None else normalize_phrase(ref.phrase, normalize)
        mask_scores.append(MaskScore(key, structure, pred_index, pred_phrase, counts))
    hits, total = grounding_hits(pred_segments, refs_only, normalize)

    perspective = record.perspective or "unknown"
    negative = perspective == "negative"
    reference_structures = frozenset(normalize_phrase(p, normalize) for p in reference.phrases)
    structures = sorted(reference_structures)
    meta = record.meta or {}
    if not structures and meta.get("structure"):
        structures = [normalize_phrase(str(meta["structure"]), normalize)]

    vqa_type = closed = recall = None
    if perspective == "vqa":
        vqa_type = _vqa_type(record, reference.text)
        if vqa_type == "closed":
            closed = closed_correct(predicted.text, reference.text)
        else:
            recall = open_recall(predicted.text, reference.text)

    return SampleResult(
        id=record.id,
        perspective=perspective,
        modality=record.modality or "unknown",
        image=record.image or record.id,
        question=_question(record, gpt_index),
        reference_answer=turn.value,
        predicted_answer=prediction.answer,
        structures=tuple(structures),
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
        meta=_result_meta(record, prediction.answer),
    )


def _result_meta(record: Record, answer: str) -> dict:
    """Source and case of the record; for a measurement record, its numeric result
    (``mimo.eval.measurements``)."""
    from mimo.eval.measurements import measurement_result

    meta = {k: v for k, v in (("source", record.source), ("case", record.case)) if v is not None}
    measurement = measurement_result(answer, record.meta)
    if measurement is not None:
        meta["measurement"] = measurement
    return meta
