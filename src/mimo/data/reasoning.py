"""Question candidates for perspectives III (complex QA with grounding) and IV (visual-prompt-
assisted reasoning), built from the knowledge base and from geometry on the slice's masks.

Each candidate is a function that fills a ``RecordDraft`` and returns ``(task, primary term)``,
or None when the slice does not support it. Only facts that hold are asked: a side needs the
image orientation and agreement between the KB and the mask's position; a relation needs a
clear separation; "largest" needs a clear winner.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from mimo.data import geometry
from mimo.data import regions as region_sampling
from mimo.data.case import SliceSample
from mimo.data.grounding import RecordDraft, Structure, slot
from mimo.data.templates import MODALITY_NAME, MODALITY_NOUN, display_name, join_names, render

if TYPE_CHECKING:
    from mimo.data.perspectives import PerspectiveConfig

REL_WORDS = {
    "L": "to the patient's left of",
    "R": "to the patient's right of",
    "A": "anterior to",
    "P": "posterior to",
    "S": "superior to",
    "I": "inferior to",
}
CLEAR_SIZE_RATIO = 1.3
FINDING_SIDE_MARGIN = 0.1

Candidate = Callable[[RecordDraft], "tuple[str, str] | None"]


class SliceFacts:
    """Geometry and knowledge about one slice's structures, computed lazily and shared by candidates."""

    def __init__(
        self, sample: SliceSample, structures: dict[str, Structure], rng: np.random.Generator, cfg
    ) -> None:
        self.sample = sample
        self.structures = structures
        self.rng = rng
        self.cfg = cfg
        self.modality_noun = MODALITY_NOUN.get(sample.modality, "image")
        self.modality_name = MODALITY_NAME.get(sample.modality, "imaging")
        self._side: dict[str, str | None] = {}
        bases = [st.entry.base for st in structures.values()]
        self.unique_base = {t for t, st in structures.items() if bases.count(st.entry.base) == 1}

    # ------------------------------------------------------------ facts
    def name(self, st: Structure) -> str:
        return display_name(st.entry, self.rng, self.cfg.synonym_prob)

    def side(self, st: Structure) -> str | None:
        """Patient side of a structure: the KB's side confirmed by its position, or for a finding
        its position alone when clearly off the midline; None without a left-right image axis."""
        if st.term not in self._side:
            r, d = self.sample.image_right, self.sample.image_down
            value = None
            if r is not None or d is not None:
                if st.entry.side is not None:
                    geo = geometry.body_side(st.mask, r, d)
                    value = st.entry.side if geo == st.entry.side else None
                elif st.entry.is_finding:
                    geo = geometry.body_side(st.mask, r, d, margin=FINDING_SIDE_MARGIN)
                    value = geo if geo in ("left", "right") else None
            self._side[st.term] = value
        return self._side[st.term]

    def directions(self, a: Structure, b: Structure) -> list[str]:
        return geometry.relative_directions(
            a.mask, b.mask, self.sample.image_right, self.sample.image_down, self.sample.spacing
        )

    def pick(self, items: list):
        return items[int(self.rng.integers(len(items)))] if items else None

    def pairs(self) -> list[tuple[Structure, Structure]]:
        sts = list(self.structures.values())
        return [(a, b) for a in sts for b in sts if a.term != b.term]

    def base_fields(self, st: Structure) -> dict:
        e = st.entry
        return {
            "mod": self.modality_noun,
            "modname": self.modality_name,
            "function": e.function,
            "location": e.location,
            "system": e.system,
            "category": e.category,
            "be": e.be,
            "appearance": e.appearance.get(self.sample.modality, ""),
        }

    def area_fields(self, st: Structure) -> dict:
        mm2 = geometry.area_mm2(st.mask, self.sample.spacing)
        return {"area": f"{mm2:.0f}", "cm2": f"{mm2 / 100:.1f}"}

    def region_for(self, draft: RecordDraft, st: Structure) -> None:
        region, region_mask = sample_structure_region(st, self.structures, self.rng, self.cfg)
        draft.add_region(region, region_mask)


# ---------------------------------------------------------------- perspective III


def iii_candidates(facts: SliceFacts) -> list[Candidate]:
    """All perspective-III question builders that this slice supports, in a fixed order (the
    caller draws from them with its own generator)."""
    found = [kb_question(facts, kind) for kind in KB_QUESTION_POOLS]
    found += [question(facts) for question in (side_question, relation_question, larger_question)]
    if len(facts.structures) >= 3:
        found += [_extreme_candidate(facts, mode) for mode in ("largest", "smallest")]
    found += [
        question(facts)
        for question in (adjacent_question, contains_question, count_question, area_question, paired_question)
    ]
    return [candidate for candidate in found if candidate is not None]


# Which structures each knowledge-base question may ask about.
KB_QUESTION_POOLS: dict[str, Callable[[SliceFacts, Structure], bool]] = {
    "function": lambda facts, st: st.term in facts.unique_base,
    "location": lambda facts, st: st.term in facts.unique_base and not st.entry.is_finding,
    "appearance": lambda facts, st: facts.sample.modality in st.entry.appearance,
    "system": lambda facts, st: st.entry.system != "general",
    "kind": lambda facts, st: True,
}


def kb_question(facts: SliceFacts, kind: str) -> Candidate | None:
    """A question answered from the knowledge base (function, location, appearance, system, kind)."""
    pool = [st for st in facts.structures.values() if KB_QUESTION_POOLS[kind](facts, st)]
    return partial(_ask_kb, facts, kind, pool) if pool else None


def _ask_kb(facts: SliceFacts, kind: str, pool: list[Structure], d: RecordDraft) -> tuple[str, str]:
    st = facts.pick(pool)
    fields = facts.base_fields(st)
    d.human(render(f"III.{kind}.q", facts.rng, t=facts.name(st), **fields))
    bank = f"III.kind.{st.entry.kind}.a" if kind == "kind" else f"III.{kind}.a"
    d.gpt(render(bank, facts.rng, P=slot(0), t=st.term, **fields), [st])
    return kind, st.term


def side_question(facts: SliceFacts) -> Candidate | None:
    """Which side of the patient a structure is on (only where the side is confirmed)."""
    sided = [st for st in facts.structures.values() if facts.side(st)]
    return partial(_ask_side, facts, sided) if sided else None


def _ask_side(facts: SliceFacts, sided: list[Structure], d: RecordDraft) -> tuple[str, str]:
    st = facts.pick(sided)
    side = facts.side(st)
    d.human(render("III.side.q", facts.rng, t=facts.name(st), mod=facts.modality_noun))
    d.gpt(render("III.side.a", facts.rng, P=slot(0), side=side, Side=side.capitalize()), [st])
    return "side", st.term


def relation_question(facts: SliceFacts) -> Candidate | None:
    """Where one structure lies relative to another (only clearly separated directions)."""
    related = [(a, b, dirs) for a, b in facts.pairs() if (dirs := facts.directions(a, b))]
    return partial(_ask_relation, facts, related) if related else None


def _ask_relation(facts: SliceFacts, related: list, d: RecordDraft) -> tuple[str, str]:
    a, b, dirs = facts.pick(related)
    rel = REL_WORDS[facts.pick(dirs)]
    d.human(render("III.relation.q", facts.rng, t1=facts.name(a), t2=facts.name(b), mod=facts.modality_noun))
    d.gpt(render("III.relation.a", facts.rng, P1=slot(0), P2=slot(1), rel=rel), [a, b])
    return "relation", a.term


def larger_question(facts: SliceFacts) -> Candidate | None:
    """Which of two structures is larger (only pairs at least ``CLEAR_SIZE_RATIO`` apart)."""
    bigger = [(a, b) for a, b in facts.pairs() if a.area >= CLEAR_SIZE_RATIO * b.area]
    return partial(_ask_larger, facts, bigger) if bigger else None


def _ask_larger(facts: SliceFacts, bigger: list, d: RecordDraft) -> tuple[str, str]:
    a, b = facts.pick(bigger)
    names = (facts.name(a), facts.name(b)) if facts.rng.random() < 0.5 else (facts.name(b), facts.name(a))
    d.human(render("III.larger.q", facts.rng, t1=names[0], t2=names[1], mod=facts.modality_noun))
    d.gpt(render("III.larger.a", facts.rng, P1=slot(0), P2=slot(1)), [a, b])
    return "larger", a.term


def adjacent_question(facts: SliceFacts) -> Candidate | None:
    """Whether two structures touch: asked for pairs that touch, or that are clearly apart
    (more than three times the adjacency distance), never for the doubtful ones between."""
    px = facts.cfg.adjacency_px
    touching = [(a, b, geometry.adjacent(a.mask, b.mask, px)) for a, b in facts.pairs()]
    clear = [
        (a, b, yes) for a, b, yes in touching if yes or not geometry.adjacent(a.mask, b.mask, 3 * px + 2)
    ]
    return partial(_ask_adjacent, facts, clear) if clear else None


def _ask_adjacent(facts: SliceFacts, clear: list, d: RecordDraft) -> tuple[str, str]:
    a, b, yes = facts.pick(clear)
    d.human(render("III.adjacent.q", facts.rng, t1=facts.name(a), t2=facts.name(b), mod=facts.modality_noun))
    bank = "III.adjacent.yes.a" if yes else "III.adjacent.no.a"
    d.gpt(render(bank, facts.rng, P1=slot(0), P2=slot(1)), [a, b])
    return "adjacent", a.term


def contains_question(facts: SliceFacts) -> Candidate | None:
    """What a structure lies inside (the smallest structure whose mask contains it)."""
    structures = list(facts.structures.values())
    inside = []
    for inner in structures:
        outers = [o for o in structures if o.term != inner.term and geometry.contains(o.mask, inner.mask)]
        if outers:
            inside.append((inner, min(outers, key=lambda o: (o.area, o.term))))
    return partial(_ask_contains, facts, inside) if inside else None


def _ask_contains(facts: SliceFacts, inside: list, d: RecordDraft) -> tuple[str, str]:
    inner, outer = facts.pick(inside)
    d.human(render("III.contains.q", facts.rng, t1=facts.name(inner), mod=facts.modality_noun))
    d.gpt(render("III.contains.a", facts.rng, P1=slot(0), P2=slot(1)), [inner, outer])
    return "contains", inner.term


def count_question(facts: SliceFacts) -> Candidate | None:
    """How many regions a structure has: several, or any number for a finding."""
    countable = [(st, n) for st in facts.structures.values() if (n := _region_count(facts, st))]
    countable = [(st, n) for st, n in countable if n > 1 or st.entry.is_finding]
    return partial(_ask_count, facts, countable) if countable else None


def _region_count(facts: SliceFacts, st: Structure) -> int | None:
    """The dataset's own instance count when every raw label has one (touching instances stay
    apart); else the mask's connected components, when small specks do not change the count."""
    annotated = [facts.sample.instances.get(r) for r in st.raw]
    if st.raw and all(annotated):
        return sum(annotated)
    n_all = geometry.count_components(st.mask)
    min_size = max(2, facts.cfg.min_area_px // 2)
    if n_all == geometry.count_components(st.mask, min_size) and n_all >= 1:
        return n_all
    return None


def _ask_count(facts: SliceFacts, countable: list, d: RecordDraft) -> tuple[str, str]:
    st, n = facts.pick(countable)
    d.human(render("III.count.q", facts.rng, t=facts.name(st), mod=facts.modality_noun))
    fields = {
        "n": n,
        "N": str(n),
        "are_n": "is" if n == 1 else "are",
        "regions_word": "region" if n == 1 else "regions",
        "t": st.term,
    }
    d.gpt(render("III.count.a", facts.rng, P=slot(0), **fields), [st])
    return "count", st.term


def area_question(facts: SliceFacts) -> Candidate | None:
    """The area of a structure in mm^2 and cm^2."""
    return partial(_ask_area, facts) if facts.structures else None


def _ask_area(facts: SliceFacts, d: RecordDraft) -> tuple[str, str]:
    st = facts.pick(list(facts.structures.values()))
    d.human(render("III.area.q", facts.rng, t=facts.name(st), mod=facts.modality_noun))
    d.gpt(render("III.area.a", facts.rng, P=slot(0), **facts.area_fields(st)), [st])
    return "area", st.term


def paired_question(facts: SliceFacts) -> Candidate | None:
    """The counterpart of a paired structure (left and right kidney ...) when both are present."""
    structures = facts.structures
    paired = [
        (st, structures[st.entry.paired_with])
        for st in structures.values()
        if st.entry.paired_with in structures
    ]
    paired = [(a, b) for a, b in paired if a.term != b.term]
    return partial(_ask_paired, facts, paired) if paired else None


def _ask_paired(facts: SliceFacts, paired: list, d: RecordDraft) -> tuple[str, str]:
    a, b = facts.pick(paired)
    d.human(render("III.paired.q", facts.rng, t=facts.name(a), mod=facts.modality_noun))
    d.gpt(render("III.paired.a", facts.rng, P1=slot(0), P2=slot(1)), [a, b])
    return "paired", a.term


def _extreme_candidate(facts: SliceFacts, mode: str) -> Candidate:
    """Which of three to five structures is the ``largest`` / ``smallest`` (only a clear one)."""
    return partial(_ask_extreme, facts, mode)


def _ask_extreme(facts: SliceFacts, mode: str, d: RecordDraft) -> tuple[str, str] | None:
    sts = list(facts.structures.values())
    k = int(facts.rng.integers(3, min(5, len(sts)) + 1))
    chosen = [sts[i] for i in facts.rng.choice(len(sts), size=k, replace=False)]
    ranked = sorted(chosen, key=lambda s: (-s.area, s.term))
    if mode == "smallest":
        ranked = ranked[::-1]
    top, second = ranked[0], ranked[1]
    ratio = top.area / second.area if mode == "largest" else second.area / top.area
    if ratio < 1.2:
        return None
    names = join_names([facts.name(s) for s in chosen])
    d.human(render(f"III.{mode}.q", facts.rng, names=names, mod=facts.modality_noun))
    d.gpt(render(f"III.{mode}.a", facts.rng, P=slot(0)), [top])
    return mode, top.term


# ---------------------------------------------------------------- perspective IV


def iv_candidates(facts: SliceFacts) -> list[Candidate]:
    """All perspective-IV (region + reasoning) question builders that this slice supports, in a
    fixed order: the region questions of ``IV_REGION_QUESTIONS``, then the pair questions."""
    found = [region_question(facts, *entry) for entry in IV_REGION_QUESTIONS]
    found += [
        question(facts) for question in (same_side_question, region_relation_question, region_larger_question)
    ]
    return [candidate for candidate in found if candidate is not None]


# One region, one question about it: (task, which structures it may ask about, answer bank,
# extra template fields or None).
IV_REGION_QUESTIONS: tuple[tuple[str, Callable, Callable[[Structure], str], Callable | None], ...] = (
    ("function", lambda facts, st: True, lambda st: "IV.function.a", None),
    ("finding", lambda facts, st: True, lambda st: f"IV.finding.{st.entry.kind}.a", None),
    ("system", lambda facts, st: st.entry.system != "general", lambda st: "IV.system.a", None),
    (
        "appearance",
        lambda facts, st: facts.sample.modality in st.entry.appearance,
        lambda st: "IV.appearance.a",
        None,
    ),
    ("area", lambda facts, st: True, lambda st: "IV.area.a", SliceFacts.area_fields),
    (
        "side",
        lambda facts, st: bool(facts.side(st)),
        lambda st: "IV.side.a",
        lambda facts, st: {"side": facts.side(st)},
    ),
)


def region_question(
    facts: SliceFacts, task: str, allowed: Callable, answer_bank: Callable, extra: Callable | None
) -> Candidate | None:
    """A question about the structure under a visual prompt (one row of ``IV_REGION_QUESTIONS``)."""
    pool = [st for st in facts.structures.values() if allowed(facts, st)]
    return partial(_ask_about_region, facts, task, pool, answer_bank, extra) if pool else None


def _ask_about_region(
    facts: SliceFacts, task: str, pool: list, answer_bank: Callable, extra: Callable | None, d: RecordDraft
) -> tuple[str, str]:
    st = facts.pick(pool)
    fields = facts.base_fields(st)
    if extra:
        fields.update(extra(facts, st))
    facts.region_for(d, st)
    d.human(render(f"IV.{task}.q", facts.rng, **fields))
    d.gpt(render(answer_bank(st), facts.rng, P=slot(0), **fields), [st])
    return task, st.term


def same_side_question(facts: SliceFacts) -> Candidate | None:
    """Whether the structure under the prompt is on the same side as a named one (confirmed sides)."""
    sided = [st for st in facts.structures.values() if facts.side(st)]
    side_pairs = [(a, b) for a in sided for b in sided if a.term != b.term]
    return partial(_ask_same_side, facts, side_pairs) if side_pairs else None


def _ask_same_side(facts: SliceFacts, side_pairs: list, d: RecordDraft) -> tuple[str, str]:
    a, b = facts.pick(side_pairs)
    facts.region_for(d, a)
    d.human(render("IV.same_side.q", facts.rng, t2=facts.name(b), mod=facts.modality_noun))
    side_a, side_b = facts.side(a), facts.side(b)
    bank = "IV.same_side.yes.a" if side_a == side_b else "IV.same_side.no.a"
    d.gpt(render(bank, facts.rng, P1=slot(0), P2=slot(1), side1=side_a, side2=side_b), [a, b])
    return "same_side", a.term


def region_relation_question(facts: SliceFacts) -> Candidate | None:
    """Where the structure under the prompt lies relative to a named one (clear directions only)."""
    related = [(a, b, dirs) for a, b in facts.pairs() if (dirs := facts.directions(a, b))]
    return partial(_ask_region_relation, facts, related) if related else None


def _ask_region_relation(facts: SliceFacts, related: list, d: RecordDraft) -> tuple[str, str]:
    a, b, dirs = facts.pick(related)
    facts.region_for(d, a)
    d.human(render("IV.relation.q", facts.rng, t2=facts.name(b), mod=facts.modality_noun))
    rel = REL_WORDS[facts.pick(dirs)]
    d.gpt(render("IV.relation.a", facts.rng, P1=slot(0), P2=slot(1), rel=rel), [a, b])
    return "relation", a.term


def region_larger_question(facts: SliceFacts) -> Candidate | None:
    """Which of two prompted regions is larger (only pairs at least ``CLEAR_SIZE_RATIO`` apart)."""
    bigger = [(a, b) for a, b in facts.pairs() if a.area >= CLEAR_SIZE_RATIO * b.area]
    return partial(_ask_region_larger, facts, bigger) if bigger else None


def _ask_region_larger(facts: SliceFacts, bigger: list, d: RecordDraft) -> tuple[str, str]:
    a, b = facts.pick(bigger)
    first, second = (a, b) if facts.rng.random() < 0.5 else (b, a)
    facts.region_for(d, first)
    facts.region_for(d, second)
    d.human(render("IV.larger.q", facts.rng, mod=facts.modality_noun))
    bank = "IV.larger.a" if first is a else "IV.larger.rev.a"
    d.gpt(render(bank, facts.rng, P1=slot(0), P2=slot(1)), [first, second])
    return "larger", a.term


def exclusive_mask(st: Structure, structures: dict[str, Structure]) -> np.ndarray:
    """Pixels where ``st`` is the smallest structure covering them (so that a point there
    names ``st`` rather than a structure nested inside it)."""
    mask = st.mask.copy()
    for other in structures.values():
        if other.term != st.term and other.area < st.area:
            mask &= ~other.mask
    return ndimage.binary_opening(mask) if mask.sum() > 50 else mask


def sample_structure_region(
    st: Structure, structures: dict[str, Structure], rng: np.random.Generator, cfg: PerspectiveConfig
) -> tuple[object, np.ndarray | None]:
    """A visual prompt for ``st``: points, scribbles and partial masks are drawn from the part of
    the structure not covered by a smaller structure (so they name ``st``); boxes and whole masks
    from the whole mask. Falls back to a box or whole mask when that part is too small."""
    types = [t for t in region_sampling.REGION_TYPES if cfg.region_probs.get(t, 0) > 0]
    p = np.array([cfg.region_probs[t] for t in types], float)
    kind = types[int(rng.choice(len(types), p=p / p.sum()))]
    own = exclusive_mask(st, structures)
    own_ok = own.sum() >= min(cfg.min_area_px, st.area)
    if kind in ("point", "scribble") and not own_ok:
        kind = "box" if "box" in types or "mask" not in types else "mask"
    if kind == "box" and _box_is_ambiguous(st, structures, cfg.ambiguous_box_iou):
        kind = "mask"
    if kind == "point":
        n_neg = int(rng.integers(1, 3)) if rng.random() < cfg.negative_point_prob else 0
        return region_sampling.sample_points(own, rng, int(rng.integers(1, 4)), n_neg), None
    if kind == "scribble":
        return region_sampling.scribble(own, rng), None
    if kind == "box":
        return region_sampling.jittered_box(st.mask, rng), None
    partial = own_ok and rng.random() < cfg.partial_mask_prob
    region_mask = region_sampling.partial_mask(own, rng) if partial else st.mask
    return region_sampling.MaskRegion(mask="pending"), region_mask


def _box_is_ambiguous(st: Structure, structures: dict[str, Structure], threshold: float | None) -> bool:
    """Whether another present structure has (nearly) the same bounding box as ``st``."""
    if threshold is None:
        return False
    x0, y0, x1, y1 = region_sampling.tight_box(st.mask)
    for other in structures.values():
        if other.term == st.term or not other.mask.any():
            continue
        a0, b0, a1, b1 = region_sampling.tight_box(other.mask)
        inter = max(0, min(x1, a1) - max(x0, a0)) * max(0, min(y1, b1) - max(y0, b0))
        union = (x1 - x0) * (y1 - y0) + (a1 - a0) * (b1 - b0) - inter
        if inter / union >= threshold:
            return True
    return False
