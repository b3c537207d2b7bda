"""mimo.eval: model-independent evaluation (see docs/architecture.md, docs/benchmarks.md).

- ``answers``: ``mimo.core.answers`` (parsing ``<p>term</p> <SEG>`` answers), kept importable here;
- ``segmentation``: IoU, Dice, mIoU, gIoU, cIoU, AP50 and ``SegmentationMeter``;
- ``text``: normalisation, BLEU, ROUGE-L, VQA closed accuracy / open recall, identification;
- ``grounding``: pairing of predicted and reference masks, grounding recall, negatives;
- ``sample``: ``score_sample(prediction, record, reference_masks) -> SampleResult``;
- ``report``: ``EvaluationReport`` (JSON, Markdown) and best/worst case selection;
- ``visualize``: ``render_cases_grid`` (PNG).
"""

from mimo.core.answers import ParsedAnswer, PhraseItem, parse_answer, strip_markup
from mimo.core.results import Segment
from mimo.eval.grounding import grounding_hits, pair_segments
from mimo.eval.report import EvaluationReport, grid_case, group_metrics
from mimo.eval.sample import (
    MaskScore,
    PredictedSegment,
    Prediction,
    SampleResult,
    decode_record_masks,
    score_sample,
)
from mimo.eval.segmentation import MaskCounts, SegmentationMeter, dice, iou, mask_counts
from mimo.eval.text import (
    bleu,
    closed_accuracy,
    closed_correct,
    identification_metrics,
    identification_scores,
    mean_open_recall,
    mean_rouge_l,
    normalize_text,
    open_recall,
    rouge_l,
    sentence_bleu,
)
from mimo.eval.visualize import GridCase, grid_size, render_cases_grid

__all__ = [
    "EvaluationReport",
    "GridCase",
    "MaskCounts",
    "MaskScore",
    "ParsedAnswer",
    "PhraseItem",
    "PredictedSegment",
    "Prediction",
    "SampleResult",
    "Segment",
    "SegmentationMeter",
    "bleu",
    "closed_accuracy",
    "closed_correct",
    "decode_record_masks",
    "dice",
    "grid_case",
    "grid_size",
    "grounding_hits",
    "group_metrics",
    "identification_metrics",
    "identification_scores",
    "iou",
    "mask_counts",
    "mean_open_recall",
    "mean_rouge_l",
    "normalize_text",
    "open_recall",
    "pair_segments",
    "parse_answer",
    "render_cases_grid",
    "rouge_l",
    "score_sample",
    "sentence_bleu",
    "strip_markup",
]
