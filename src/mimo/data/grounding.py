"""Assembling one grounded record: structures of a slice, masks as RLE keyed ``m0, m1 ...``,
visual-prompt regions, and answers whose ``<SEG>`` order matches the gpt turn's ``masks``."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mimo.core import rle
from mimo.core.schema import IMAGE_TOKEN, Record
from mimo.data.case import SliceSample
from mimo.data.knowledge import Entry, lookup, normalize_label
from mimo.data.templates import phrase

_SLOT = re.compile(r"\x00(\d+)\x00")


@dataclass
class Structure:
    """A named structure present in a slice: canonical term, KB entry, mask and the raw names it came from."""

    term: str
    entry: Entry
    mask: np.ndarray
    raw: tuple[str, ...]

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class GenerationStats:
    """Counts a builder can report after generating records for many slices.

    Attributes:
        unknown_labels: raw label name -> slices where it did not resolve to a KB term (skipped).
        small_labels: canonical term -> slices where its mask was below ``min_area_px`` (skipped).
        records: perspective -> records generated.
    """

    unknown_labels: Counter = field(default_factory=Counter)
    small_labels: Counter = field(default_factory=Counter)
    records: Counter = field(default_factory=Counter)

    def update(self, other: GenerationStats) -> None:
        self.unknown_labels.update(other.unknown_labels)
        self.small_labels.update(other.small_labels)
        self.records.update(other.records)


def resolve_structures(
    sample: SliceSample, min_area_px: int = 1, stats: GenerationStats | None = None
) -> dict[str, Structure]:
    """The slice's structures by canonical term; raw labels naming the same term are merged.

    Raw names that do not normalise are skipped and counted in ``stats.unknown_labels``; masks
    smaller than ``min_area_px`` pixels are skipped and counted in ``stats.small_labels``.
    """
    merged: dict[str, tuple[np.ndarray, list[str]]] = {}
    shape = sample.image.shape[:2]
    for raw in sorted(sample.labels):
        mask = np.asarray(sample.labels[raw], dtype=bool)
        if mask.shape != shape:
            raise ValueError(
                f"slice {sample.image_path!r}: label {raw!r} has shape {mask.shape}, expected the image's {shape}"
            )
        term = normalize_label(raw, sample.modality)
        if term is None:
            if stats is not None:
                stats.unknown_labels[raw] += 1
            continue
        if term in merged:
            merged[term][0][...] |= mask
            merged[term][1].append(raw)
        else:
            merged[term] = (mask.copy(), [raw])
    out: dict[str, Structure] = {}
    for term in sorted(merged):
        mask, raws = merged[term]
        if mask.sum() < max(1, min_area_px):
            if stats is not None:
                stats.small_labels[term] += 1
            continue
        out[term] = Structure(term, lookup(term, sample.modality), mask, tuple(raws))
    return out


def unresolved_labels(sample: SliceSample) -> list[str]:
    """Raw label names of the slice (present or absent) that the knowledge base cannot name."""
    names = set(sample.labels) | set(sample.absent)
    return sorted(n for n in names if normalize_label(n, sample.modality) is None)


def slice_tag(sample: SliceSample) -> str:
    """``z057`` for axis 2 index 57 (``x``/``y``/``z`` for axes 0/1/2), ``2d`` for 2D images."""
    if sample.slice is None:
        return "2d"
    axis, index = sample.slice
    return f"{'xyz'[axis] if 0 <= axis < 3 else f'a{axis}'}{index:03d}"


def slug(term: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", term.lower()).strip("-")


class RecordDraft:
    """Collects masks, regions and turns of one record, then validates it as a ``schema.Record``."""

    def __init__(self, sample: SliceSample) -> None:
        self.sample = sample
        self.masks: dict[str, object] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._by_term: dict[str, str] = {}
        self.regions: list[object] = []
        self.turns: list[dict] = []
        self.structures: list[str] = []
        self.region_types: list[str] = []

    def add_mask(self, mask: np.ndarray, term: str | None = None) -> str:
        """Store a mask (once per term) and return its key."""
        if term is not None and term in self._by_term:
            return self._by_term[term]
        key = f"m{len(self.masks)}"
        self.masks[key] = rle.encode(mask)
        self._arrays[key] = np.asarray(mask, bool)
        if term is not None:
            self._by_term[term] = key
        return key

    def add_region(self, region: object, region_mask: np.ndarray | None = None) -> None:
        """Append a region (in the order its ``<region>`` appears); a mask region's mask is stored too."""
        if region_mask is not None:
            key = self.add_mask(region_mask)
            region = region.model_copy(update={"mask": key})
        self.regions.append(region)
        self.region_types.append(region.type)

    def human(self, text: str) -> None:
        if not self.turns:
            text = f"{IMAGE_TOKEN}\n{text}"
        self.turns.append({"from": "human", "value": text})

    def gpt(self, text: str, grounded: list[Structure] | None = None) -> None:
        """Add an answer; slot ``\\x00i\\x00`` in ``text`` becomes ``<p>term</p> <SEG>`` of ``grounded[i]``,
        and the turn's ``masks`` follow the order in which the slots appear."""
        grounded = grounded or []
        keys: list[str] = []

        def fill(match: re.Match) -> str:
            s = grounded[int(match.group(1))]
            keys.append(self.add_mask(s.mask, s.term))
            if s.term not in self.structures:
                self.structures.append(s.term)
            return phrase(s.term)

        value = _SLOT.sub(fill, text)
        turn = {"from": "gpt", "value": value}
        if keys:
            turn["masks"] = keys
        self.turns.append(turn)

    def build(self, record_id: str, perspective: str, task: str, extra: dict | None = None) -> Record:
        s = self.sample
        meta = {"task": task, "structures": self.structures, "patient_id": s.patient_id}
        if self.region_types:
            meta["region_types"] = self.region_types
        meta.update(extra or {})
        obj = {
            "id": record_id,
            "image": s.image_path,
            "modality": s.modality,
            "source": s.source,
            "case": s.case_id,
            "spacing": (float(s.spacing[0]), float(s.spacing[1])),
            "perspective": perspective,
            "masks": self.masks,
            "regions": self.regions,
            "conversations": self.turns,
            "meta": meta,
        }
        if s.slice is not None:
            obj["slice"] = {"axis": int(s.slice[0]), "index": int(s.slice[1])}
        return Record.model_validate(obj)


def slot(i: int) -> str:
    """Placeholder for the i-th grounded structure of an answer (see ``RecordDraft.gpt``)."""
    return f"\x00{i}\x00"
