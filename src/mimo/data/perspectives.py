"""MIMOSeg records for one slice from the paper's four perspectives, plus negatives.

* I  language-guided segmentation: "Segment the liver." -> "<p>liver</p> <SEG>."
* II visual-prompt-aware perception: "What is in <region>?" -> "It is the <p>left kidney</p> <SEG>."
* III complex QA with grounding (knowledge base + geometry; see ``reasoning``)
* IV visual-prompt-assisted reasoning (region + knowledge/geometry; see ``reasoning``)
* negative: the asked-for structure is absent; the answer says so and has no ``<SEG>``.

``generate_records`` is what the builder calls per slice; ``mix_records`` mixes perspectives by ratio.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mimo.core.schema import Record
from mimo.data import regions as region_sampling
from mimo.data.case import SliceSample
from mimo.data.grounding import (
    GenerationStats,
    RecordDraft,
    Structure,
    resolve_structures,
    slice_tag,
    slot,
    slug,
    unresolved_labels,
)
from mimo.data.knowledge import lookup, normalize_label, plausible_terms
from mimo.data.mix import DEFAULT_RATIOS, mix_records
from mimo.data.reasoning import (
    SliceFacts,
    iii_candidates,
    iv_candidates,
    sample_structure_region,
)
from mimo.data.templates import MODALITY_NOUN, display_name, render

__all__ = [
    "DEFAULT_RATIOS",
    "GenerationStats",
    "PerspectiveConfig",
    "generate_records",
    "mix_records",
    "unresolved_labels",
]

PerspectiveName = Literal["I", "II", "III", "IV", "negative", "measure"]
ORDER: tuple[str, ...] = ("I", "II", "III", "IV", "negative")
# measurement questions are opt-in (``perspectives=[..., "measure"]``) and kept outside the
# per-slice cap, so builds that do not ask for them are unchanged
MEASURE = "measure"


class PerspectiveConfig(BaseModel):
    """How many records of which kind ``generate_records`` makes per slice.

    Attributes:
        perspectives: which of I, II, III, IV, negative, measure to generate (default: all
            but ``measure``, the measurement questions of ``mimo.core.measure``).
        records_per_structure: perspective I and II records per structure in the slice.
        max_structures: at most this many structures per slice are used for I and II (random subset).
        iii_per_slice / iv_per_slice: complex QA / region-reasoning records per slice.
        negatives_per_slice: negative records per slice (when an absent structure is known).
        max_records_per_slice: cap on all records of a slice (kept round-robin across perspectives).
        region_probs: probability of each region type (point, box, scribble, mask).
        negative_point_prob: chance that a point prompt also has 1-2 negative (label 0) points.
        partial_mask_prob: chance that a mask prompt is a part of the structure, not all of it.
        synonym_prob: chance that a question names a structure by a synonym.
        multi_target_prob: chance that a perspective-I record asks for two structures.
        min_area_px: structures with fewer mask pixels are skipped.
        adjacency_px: dilation (pixels) within which two masks count as touching.
        plausible_negatives: also ask for findings plausible for the modality/body region that
            the slice does not label, when no finding is present at all (else only the case's
            labelled-but-absent structures are used).
        ambiguous_box_iou: a box prompt whose bounding box overlaps another present structure's
            bounding box at this IoU or more would name either (the brain and its grey matter
            share a box): such structures get a whole-mask prompt instead. ``None`` keeps every
            box (builds made before this rule, e.g. the shipped mimo-tiny's data).
    """

    model_config = ConfigDict(extra="forbid")

    perspectives: list[PerspectiveName] = Field(default_factory=lambda: list(ORDER))
    measures_per_slice: int = Field(
        1, ge=0, description="measurement records per slice (perspective 'measure')"
    )
    records_per_structure: int = Field(1, ge=0)
    max_structures: int = Field(8, ge=1)
    iii_per_slice: int = Field(3, ge=0)
    iv_per_slice: int = Field(2, ge=0)
    negatives_per_slice: int = Field(1, ge=0)
    max_records_per_slice: int = Field(16, ge=1)
    region_probs: dict[str, float] = Field(
        default_factory=lambda: {"point": 0.3, "box": 0.3, "scribble": 0.2, "mask": 0.2}
    )
    negative_point_prob: float = Field(0.3, ge=0, le=1)
    partial_mask_prob: float = Field(0.3, ge=0, le=1)
    synonym_prob: float = Field(0.25, ge=0, le=1)
    multi_target_prob: float = Field(0.2, ge=0, le=1)
    min_area_px: int = Field(16, ge=1)
    adjacency_px: int = Field(2, ge=0)
    plausible_negatives: bool = True
    ambiguous_box_iou: float | None = Field(0.8, gt=0, le=1)

    @field_validator("region_probs")
    @classmethod
    def _check_probs(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(region_sampling.REGION_TYPES)
        if unknown:
            raise ValueError(
                f"region_probs: unknown type(s) {sorted(unknown)}, expected {region_sampling.REGION_TYPES}"
            )
        if any(p < 0 for p in value.values()) or sum(value.values()) <= 0:
            raise ValueError(
                f"region_probs: expected non-negative probabilities with a positive sum, got {value}"
            )
        return value


class _Collector:
    """Deterministic ids ``case_slice_structure_perspective_index`` and per-perspective lists."""

    def __init__(self, sample: SliceSample) -> None:
        self.sample = sample
        self.tag = f"{sample.case_id}_{slice_tag(sample)}"
        self.counts: Counter = Counter()
        self.by_perspective: dict[str, list[Record]] = {p: [] for p in ORDER}

    def add(
        self, draft: RecordDraft, perspective: str, task: str, term: str, extra: dict | None = None
    ) -> None:
        key = (slug(term), perspective)
        record_id = f"{self.tag}_{key[0]}_{perspective}_{self.counts[key]}"
        self.counts[key] += 1
        self.by_perspective[perspective].append(draft.build(record_id, perspective, task, extra))


def _perspective_i(
    c: _Collector, sts: list[Structure], rng: np.random.Generator, cfg: PerspectiveConfig
) -> None:
    mod = MODALITY_NOUN.get(c.sample.modality, "image")
    for st in sts:
        for _ in range(cfg.records_per_structure):
            d = RecordDraft(c.sample)
            others = [o for o in sts if o.term != st.term]
            if others and rng.random() < cfg.multi_target_prob:
                other = others[int(rng.integers(len(others)))]
                t1, t2 = (
                    display_name(st.entry, rng, cfg.synonym_prob),
                    display_name(other.entry, rng, cfg.synonym_prob),
                )
                d.human(render("I.multi.q", rng, t1=t1, t2=t2, mod=mod))
                d.gpt(render("I.multi.a", rng, P1=slot(0), P2=slot(1)), [st, other])
                c.add(d, "I", "segment_multi", st.term)
            else:
                d.human(render("I.q", rng, t=display_name(st.entry, rng, cfg.synonym_prob), mod=mod))
                d.gpt(render("I.a", rng, P=slot(0)), [st])
                c.add(d, "I", "segment", st.term)


def _perspective_ii(
    c: _Collector,
    sts: list[Structure],
    all_sts: dict[str, Structure],
    rng: np.random.Generator,
    cfg: PerspectiveConfig,
) -> None:
    mod = MODALITY_NOUN.get(c.sample.modality, "image")
    for st in sts:
        for _ in range(cfg.records_per_structure):
            d = RecordDraft(c.sample)
            region, region_mask = sample_structure_region(st, all_sts, rng, cfg)
            d.add_region(region, region_mask)
            d.human(render("II.q", rng, mod=mod))
            d.gpt(render("II.a", rng, P=slot(0), system=st.entry.system), [st])
            c.add(d, "II", "identify", st.term)


def _related(a: str, b: str) -> bool:
    ea, eb = lookup(a), lookup(b)
    return ea.base == eb.base or ea.base in b or eb.base in a


def negative_terms(sample: SliceSample, present: dict[str, Structure], cfg: PerspectiveConfig) -> list[str]:
    """Canonical terms that may be asked for as absent: the case's labelled structures missing
    from this slice, and (``plausible_negatives``, no finding present) plausible findings."""
    out: list[str] = []
    any_finding = any(st.entry.is_finding for st in present.values())
    for raw in sorted(sample.absent):
        term = normalize_label(raw, sample.modality)
        if term is None or term in out or term in present:
            continue
        entry = lookup(term, sample.modality)
        if any(_related(term, p) for p in present):
            continue
        if entry.is_finding and any_finding and entry.system == "general":
            continue
        out.append(term)
    if cfg.plausible_negatives and not any_finding and present:
        regions = {r for st in present.values() for r in st.entry.regions}
        for term in plausible_terms(sample.modality, regions, kind="finding"):
            entry = lookup(term)
            if entry.system == "general" or term in out or any(_related(term, p) for p in present):
                continue
            out.append(term)
    return out


def _negatives(
    c: _Collector, present: dict[str, Structure], rng: np.random.Generator, cfg: PerspectiveConfig
) -> None:
    terms = negative_terms(c.sample, present, cfg)
    if not terms:
        return
    labelled = {normalize_label(r, c.sample.modality) for r in c.sample.absent}
    # prefer structures the case labels (certainly absent) over merely plausible findings
    ranked = [t for t in terms if t in labelled] or terms
    k = min(cfg.negatives_per_slice, len(ranked))
    mod = MODALITY_NOUN.get(c.sample.modality, "image")
    for i in rng.choice(len(ranked), size=k, replace=False):
        term = ranked[int(i)]
        entry = lookup(term, c.sample.modality)
        d = RecordDraft(c.sample)
        bank = "neg.exist" if rng.random() < 0.4 else "neg"
        d.human(render(f"{bank}.q", rng, t=display_name(entry, rng, cfg.synonym_prob), mod=mod))
        d.gpt(render(f"{bank}.a", rng, t=term, mod=mod))
        c.add(d, "negative", "absent", term, {"absent": term, "labelled": term in labelled})


def _reasoning(
    c: _Collector, perspective: str, candidates: list[Callable], n: int, rng: np.random.Generator
) -> None:
    order = list(rng.permutation(len(candidates))) if candidates else []
    made = 0
    for i in order:
        if made >= n:
            break
        d = RecordDraft(c.sample)
        result = candidates[int(i)](d)
        if result is None:
            continue
        task, term = result
        c.add(d, perspective, task, term)
        made += 1


def generate_records(
    sample: SliceSample,
    rng: np.random.Generator,
    config: PerspectiveConfig | None = None,
    stats: GenerationStats | None = None,
) -> list[Record]:
    """Records of all configured perspectives for one slice, each a validated ``schema.Record``.

    Structures are named only by the knowledge base's canonical terms or synonyms; raw labels
    that do not normalise are skipped (counted in ``stats.unknown_labels``, see also
    ``unresolved_labels``). Deterministic for a given ``rng`` state.
    """
    cfg = config or PerspectiveConfig()
    present = resolve_structures(sample, cfg.min_area_px, stats)
    c = _Collector(sample)
    sts = list(present.values())
    if len(sts) > cfg.max_structures:
        sts = [sts[int(i)] for i in sorted(rng.choice(len(sts), size=cfg.max_structures, replace=False))]
    wanted = set(cfg.perspectives)
    if sts and "I" in wanted:
        _perspective_i(c, sts, rng, cfg)
    if sts and "II" in wanted:
        _perspective_ii(c, sts, present, rng, cfg)
    if present and wanted & {"III", "IV"}:
        facts = SliceFacts(sample, present, rng, cfg)
        if "III" in wanted:
            _reasoning(c, "III", iii_candidates(facts), cfg.iii_per_slice, rng)
        if "IV" in wanted:
            _reasoning(c, "IV", iv_candidates(facts), cfg.iv_per_slice, rng)
    if "negative" in wanted and cfg.negatives_per_slice:
        _negatives(c, present, rng, cfg)
    records = _cap(c.by_perspective, cfg.max_records_per_slice, rng)
    if MEASURE in wanted and present:
        records += _measurements(c.sample, list(present.values()), rng, cfg)
    if stats is not None:
        stats.records.update(r.perspective for r in records)
    return records


def _measurements(
    sample: SliceSample, sts: list[Structure], rng: np.random.Generator, cfg: PerspectiveConfig
) -> list[Record]:
    """Measurement questions: the answer states the value measured on the reference mask with the
    slice's pixel spacing (head circumference for a fetal head, else area or longest diameter);
    ``meta.measurement`` keeps it, with the dataset's published value when it has one."""
    from mimo.core.measure import UNITS, format_value, measure

    c = _Collector(sample)
    c.by_perspective[MEASURE] = []
    mod = MODALITY_NOUN.get(sample.modality, "image")
    for i in rng.permutation(len(sts))[: cfg.measures_per_slice]:
        st = sts[int(i)]
        if st.term == "fetal head":
            kind, bank = "head circumference", "M.hc"
        else:
            kind, bank = [("area", "M.area"), ("longest diameter", "M.diameter")][int(rng.integers(2))]
        value = format_value(kind, measure(st.mask, kind, sample.spacing))
        info = {"kind": kind, "value": float(value), "unit": UNITS[kind], "structure": st.term}
        if kind in sample.reference_measurements:
            info["reference"] = float(sample.reference_measurements[kind])
        d = RecordDraft(sample)
        d.human(render(f"{bank}.q", rng, t=display_name(st.entry, rng, cfg.synonym_prob), mod=mod))
        d.gpt(render(f"{bank}.a", rng, P=slot(0), v=value), [st])
        c.add(d, MEASURE, "measure", st.term, {"measurement": info})
    return c.by_perspective[MEASURE]


def _cap(groups: dict[str, list[Record]], limit: int, rng: np.random.Generator) -> list[Record]:
    """At most ``limit`` records, taken round-robin across perspectives (random within each)."""
    total = sum(len(v) for v in groups.values())
    if total <= limit:
        return [r for p in ORDER for r in groups[p]]
    queues = {p: [groups[p][int(i)] for i in rng.permutation(len(groups[p]))] for p in ORDER}
    kept: list[Record] = []
    while len(kept) < limit:
        for p in ORDER:
            if queues[p] and len(kept) < limit:
                kept.append(queues[p].pop(0))
    keep_ids = {r.id for r in kept}
    return [r for p in ORDER for r in groups[p] if r.id in keep_ids]
