"""Phrase-level grounding: pairing predicted masks with reference masks, grounding recall,
and false positives on negative questions.

A *segment* (``mimo.core.results.Segment``) is one ``<SEG>`` output: a phrase (or None) and
a boolean mask.
"""

from __future__ import annotations

from collections.abc import Sequence

from mimo.core.results import Segment
from mimo.eval.segmentation import iou
from mimo.eval.text import PhraseNormalizer, normalize_phrase

GROUNDING_IOU_THRESHOLD = 0.5


def _key(phrase: str | None, normalize: PhraseNormalizer | None) -> str | None:
    return None if phrase is None else normalize_phrase(phrase, normalize)


def pair_segments(
    predicted: Sequence[Segment],
    reference: Sequence[Segment],
    normalize: PhraseNormalizer | None = None,
) -> tuple[list[tuple[int | None, int]], list[int]]:
    """Decide which predicted mask is scored against each reference mask.

    1. A reference segment takes the first unused predicted segment with the same
       normalised phrase.
    2. Reference segments still unpaired take the unused predicted segments in order
       (so a mask is scored even if its structure was misnamed, as in perspective II).
    3. A reference segment left over has no prediction (scored as an empty mask).

    Returns ``(pairs, unmatched)``: ``pairs`` lists ``(predicted_index or None,
    reference_index)`` for every reference segment in order; ``unmatched`` the indices of
    predicted segments paired with no reference (extra masks).
    """
    used: set[int] = set()
    chosen: dict[int, int] = {}
    pred_keys = [_key(s.phrase, normalize) for s in predicted]
    for r, ref in enumerate(reference):
        key = _key(ref.phrase, normalize)
        if key is None:
            continue
        for p, pred_key in enumerate(pred_keys):
            if p not in used and pred_key == key:
                chosen[r] = p
                used.add(p)
                break
    remaining = [p for p in range(len(predicted)) if p not in used]
    for r in range(len(reference)):
        if r not in chosen and remaining:
            chosen[r] = remaining.pop(0)
    pairs = [(chosen.get(r), r) for r in range(len(reference))]
    return pairs, remaining


def grounding_hits(
    predicted: Sequence[Segment],
    reference: Sequence[Segment],
    normalize: PhraseNormalizer | None = None,
    threshold: float = GROUNDING_IOU_THRESHOLD,
) -> tuple[int, int]:
    """Phrase grounding: ``(hits, total)`` over the reference's grounded phrases.

    A reference phrase is a hit when the prediction names the same structure (after
    ``normalize_phrase``) with a mask whose IoU with the reference mask exceeds
    ``threshold`` (0.5). Grounding recall is ``hits / total`` summed over a dataset; this is
    the phrase-level recall of grounded conversation generation (GLaMM, Rasheed et al.,
    CVPR 2024), with exact structure names instead of a text-similarity match. Reference
    segments without a phrase are not counted.
    """
    hits = total = 0
    pred_keys = [_key(s.phrase, normalize) for s in predicted]
    for ref in reference:
        key = _key(ref.phrase, normalize)
        if key is None:
            continue
        total += 1
        if any(
            pred_key == key and iou(pred.mask, ref.mask) > threshold
            for pred, pred_key in zip(predicted, pred_keys, strict=True)
        ):
            hits += 1
    return hits, total


def produced_segmentation(num_seg_tokens: int, num_masks: int) -> bool:
    """Whether an answer to a negative question is a false positive: it holds any ``<SEG>``
    or the model returned any mask (even an empty one: it claimed the structure is there).
    """
    return num_seg_tokens > 0 or num_masks > 0
