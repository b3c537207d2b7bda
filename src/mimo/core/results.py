"""The one result type of a grounded answer: ``Prediction`` and its ``Segment``s.

The predictor returns it, the scorer (``mimo.eval.score_sample``) reads it, serve and the
command line render it. A ``Segment`` is one ``<SEG>`` output: the phrase it grounds, its mask
(bool, the image's own ``(H, W)``) and the model's score (None where nobody scored it, e.g. a
reference mask or a test's hand-made mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mimo.core.answers import parse_answer


@dataclass(frozen=True)
class Segment:
    """One grounded term: its phrase (None for a ``<SEG>`` following no phrase, or to take it
    from the answer), its mask and the model's mask score."""

    phrase: str | None
    mask: np.ndarray
    score: float | None = None


@dataclass(frozen=True)
class Prediction:
    """``answer``: the generated text with ``<p>..</p> <SEG>`` kept; ``segments``: one per
    ``<SEG>``, in order; ``text``: the answer without markup (filled in from ``answer`` when
    not given); ``measurement``: for a measurement question asked with the image's pixel
    spacing, ``{"kind", "value", "unit", "model_value"}``, where ``value`` (also written into
    the answer, or appended to it) was measured on the first mask by ``mimo.core.measure``, not
    generated, and ``model_value`` is the number the language model wrote (None if none)."""

    answer: str
    segments: Sequence[Segment] = ()
    text: str | None = None
    measurement: dict | None = None

    def __post_init__(self) -> None:
        if self.text is None:
            object.__setattr__(self, "text", parse_answer(self.answer).text)

    @classmethod
    def from_masks(cls, answer: str, masks: Sequence[np.ndarray]) -> Prediction:
        """Masks in ``<SEG>`` order; their phrases are read from the answer."""
        return cls(answer, tuple(Segment(None, np.asarray(m)) for m in masks))

    @classmethod
    def from_answer(cls, answer: str, masks: Sequence[np.ndarray], scores: Sequence[float]) -> Prediction:
        """A model's output: the n-th mask (and score) goes with the n-th ``<SEG>`` of the
        answer and takes its phrase (None past the answer's last ``<SEG>``)."""
        parsed = parse_answer(answer)
        phrases = [item.phrase for item in parsed.segments]
        segments = [
            Segment(phrases[i] if i < len(phrases) else None, np.asarray(mask, dtype=bool), float(score))
            for i, (mask, score) in enumerate(zip(masks, scores, strict=True))
        ]
        return cls(answer, segments, parsed.text)
