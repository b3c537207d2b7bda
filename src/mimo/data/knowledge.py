"""The shipped knowledge base of anatomical structures and findings, and label-name normalisation.

``knowledge_base.json`` holds one entry per structure or finding with its canonical term,
display synonyms, raw dataset spellings (``aliases``), body system, function, location,
laterality, paired structure and typical appearance per modality. Paired structures
(``laterality == "bilateral"``) are stored once; ``left kidney`` / ``right kidney`` are derived.

``normalize_label`` maps a dataset's raw label name (``kidney_left``, ``Left-Lateral-Ventricle``,
``GTVp``) to a canonical term, or None when the name is unknown or purely numeric; raw names are
never shown to the model. ``lookup`` returns the ``Entry`` of a canonical term.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources

KB_FILE = "knowledge_base.json"
LATERALITIES = ("left", "right", "midline", "bilateral", "none")
KINDS = ("anatomy", "finding")
SIDES = ("left", "right")
_SIDE_WORDS = {
    "left": "left",
    "l": "left",
    "lt": "left",
    "lft": "left",
    "right": "right",
    "r": "right",
    "rt": "right",
    "rgt": "right",
}
_OTHER_SIDE = {"left": "right", "right": "left"}
_VERTEBRA_LEVELS = {"C": 7, "T": 12, "L": 6}
_VERTEBRA_KEY = re.compile(
    r"(?:(?:vertebra|vertebrae|vertebral body|vert)\s*([ctl])\s*(\d{1,2}))|(?:([ctl])\s*(\d{1,2}) (?:vertebra|vertebral body))"
)
_VERTEBRA_TERM = re.compile(r"([CTL])(\d{1,2}) vertebra")
_NON_NAMES = {"background", "bg", "other", "unknown", "unlabeled", "unlabelled", "ignore", "none", "void"}


@dataclass(frozen=True)
class Entry:
    """One knowledge-base entry, possibly specialised to a side (``left kidney``) or a level (``L1 vertebra``).

    Attributes:
        term: canonical display term (``left kidney``).
        base: the stored entry's term (``kidney``).
        kind: ``anatomy`` or ``finding``.
        category: noun used in questions (``organ``, ``vessel``, ``bone``, ``lesion`` ...).
        system: body system (``urinary system``).
        function: third-person verb phrase (``filters the blood to make urine ...``).
        location: prepositional phrase (``in the retroperitoneum beside the spine ...``).
        laterality: one of ``LATERALITIES``; a sided entry has its side here.
        side: ``left``/``right`` for structures on one side of the body, else None.
        paired_with: the counterpart's canonical term, or None.
        regions: body regions where it is seen (``abdomen``, ``head``, ``eye`` ...).
        appearance: modality -> short description of its typical look.
        synonyms: readable alternative names for display (never raw dataset spellings).
        number: ``singular`` or ``plural`` (``retinal vessels``).
    """

    term: str
    base: str
    kind: str
    category: str
    system: str
    function: str
    location: str
    laterality: str
    side: str | None
    paired_with: str | None
    regions: tuple[str, ...]
    appearance: dict[str, str] = field(hash=False, compare=False)
    synonyms: tuple[str, ...] = ()
    number: str = "singular"

    @property
    def is_finding(self) -> bool:
        return self.kind == "finding"

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.appearance)

    @property
    def be(self) -> str:
        """``is`` or ``are``, agreeing with the term."""
        return "are" if self.number == "plural" else "is"


@dataclass
class _KB:
    entries: dict[str, dict]
    index: dict[str, tuple[str, str | None]]
    context: dict[str, dict[str, tuple[str, str | None]]]


def _key(raw: str) -> str:
    """Case/underscore/hyphen-insensitive comparison key: ``Left-Lateral-Ventricle`` -> ``left lateral ventricle``."""
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", raw)
    s = s.lower().replace("'", "")
    return re.sub(r"[^a-z0-9]+", " ", s).strip()


def _add(index: dict, key: str, value: tuple[str, str | None], where: str) -> None:
    if not key:
        return
    old = index.get(key)
    if old is not None and old != value:
        raise ValueError(
            f"{KB_FILE}: name {key!r} ({where}) is claimed by both {old[0]!r} and {value[0]!r}; "
            "expected every alias to name one entry"
        )
    index[key] = value


def _validate_entry(i: int, raw: dict) -> None:
    required = (
        "term",
        "kind",
        "category",
        "system",
        "function",
        "location",
        "laterality",
        "regions",
        "appearance",
    )
    for name in required:
        if name not in raw:
            raise ValueError(f"{KB_FILE}: entries[{i}] lacks field {name!r}")
    if raw["laterality"] not in LATERALITIES:
        raise ValueError(
            f"{KB_FILE}: entries[{i}] ({raw['term']}): laterality {raw['laterality']!r}, expected one of {LATERALITIES}"
        )
    if raw["kind"] not in KINDS:
        raise ValueError(
            f"{KB_FILE}: entries[{i}] ({raw['term']}): kind {raw['kind']!r}, expected one of {KINDS}"
        )


@lru_cache(maxsize=1)
def _load() -> _KB:
    text = resources.files("mimo.data").joinpath(KB_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    entries: dict[str, dict] = {}
    index: dict[str, tuple[str, str | None]] = {}
    context: dict[str, dict[str, tuple[str, str | None]]] = {}
    for i, raw in enumerate(data["entries"]):
        _validate_entry(i, raw)
        term = raw["term"]
        if term in entries:
            raise ValueError(f"{KB_FILE}: entries[{i}]: term {term!r} appears twice")
        entries[term] = raw
        for name in [term, *raw.get("synonyms", []), *raw.get("aliases", [])]:
            _add(index, _key(name), (term, None), f"alias of {term}")
        for side, names in raw.get("sided_aliases", {}).items():
            for name in names:
                _add(index, _key(name), (term, side), f"{side} alias of {term}")
        for modality, names in raw.get("context", {}).items():
            for name in names:
                _add(
                    context.setdefault(modality, {}), _key(name), (term, None), f"{modality} alias of {term}"
                )
    return _KB(entries, index, context)


def _display(hit: tuple[str, str | None]) -> str:
    term, side = hit
    return f"{side} {term}" if side else term


def _find(key: str, modality: str | None) -> tuple[str, str | None] | None:
    kb = _load()
    for k in (key, key[:-1] if key.endswith("s") and len(key) > 3 else None):
        if not k:
            continue
        hit = kb.context.get(modality or "", {}).get(k) or kb.index.get(k)
        if hit is not None:
            return hit
    return None


def _resolve(key: str, modality: str | None) -> str | None:
    hit = _find(key, modality)
    if hit is not None:
        return _display(hit)
    m = _VERTEBRA_KEY.fullmatch(key)
    if m:
        level = (m.group(1) or m.group(3)).upper()
        num = int(m.group(2) or m.group(4))
        if 1 <= num <= _VERTEBRA_LEVELS[level]:
            return f"{level}{num} vertebra"
        return None
    tokens = key.split()
    if len(tokens) < 2:
        return None
    if tokens[0] in _SIDE_WORDS:
        side, rest = _SIDE_WORDS[tokens[0]], " ".join(tokens[1:])
    elif tokens[-1] in _SIDE_WORDS:
        side, rest = _SIDE_WORDS[tokens[-1]], " ".join(tokens[:-1])
    else:
        return None
    # a natively sided entry spelled with the side moved ("atrium left" -> "left atrium")
    for cand in (f"{side} {rest}", f"{rest} {side}"):
        hit = _find(cand, modality)
        if hit is not None:
            return _display(hit)
    hit = _find(rest, modality)
    if hit is None:
        return None
    term, hit_side = hit
    if hit_side is not None:
        return _display(hit) if hit_side == side else None
    laterality = _load().entries[term]["laterality"]
    if laterality == "bilateral":
        return f"{side} {term}"
    if laterality == side:
        return term
    return None  # a side on a structure that has none: do not guess


def normalize_label(raw: str, modality: str | None = None) -> str | None:
    """Map a dataset's raw label name to the knowledge base's canonical term.

    Matching ignores case, underscores, hyphens and camel case; left/right prefixes and
    suffixes (``left``, ``_L``, ``lt``, ``Left-``, ``_right``) make a sided term of a paired
    structure (``kidney_left`` -> ``left kidney``); trailing instance numbers are dropped
    (``lesion_2`` -> ``lesion``); ``vertebrae_L1`` -> ``L1 vertebra``. ``modality`` enables
    modality-specific names (``vessel`` in fundus photographs -> ``retinal vessels``).

    Returns:
        The canonical term, or None for an unknown name, a purely numeric label (``3``; the
        reader must resolve it through the dataset's label table), or a background label.
    """
    if not isinstance(raw, str):
        return None
    key = _key(raw)
    if not key or key.replace(" ", "").isdigit() or key in _NON_NAMES:
        return None
    found = _resolve(key, modality)
    if found is None:
        stripped = re.sub(r"(\s+\d+)+$", "", key)
        if stripped != key and stripped and not stripped.replace(" ", "").isdigit():
            found = _resolve(stripped, modality)
    return found


def _entry_from(raw: dict) -> Entry:
    lat = raw["laterality"]
    return Entry(
        term=raw["term"],
        base=raw["term"],
        kind=raw["kind"],
        category=raw["category"],
        system=raw["system"],
        function=raw["function"],
        location=raw["location"],
        laterality=lat,
        side=lat if lat in SIDES else None,
        paired_with=raw.get("paired_with"),
        regions=tuple(raw["regions"]),
        appearance=dict(raw["appearance"]),
        synonyms=tuple(raw.get("synonyms", [])),
        number=raw.get("number", "singular"),
    )


def _sided(entry: Entry, side: str) -> Entry:
    other = _OTHER_SIDE[side]
    paired = entry.paired_with
    if paired == entry.base:
        paired = f"{other} {entry.base}"
    return replace(
        entry,
        term=f"{side} {entry.base}",
        laterality=side,
        side=side,
        paired_with=paired,
        location=f"on the {side} side of the body, {entry.location}",
        synonyms=tuple(f"{side} {s}" for s in entry.synonyms),
    )


def lookup(term: str, modality: str | None = None) -> Entry:
    """The ``Entry`` for a canonical term (or any name ``normalize_label`` resolves).

    Raises:
        KeyError: naming the term when the knowledge base has no entry for it.
    """
    canon = normalize_label(term, modality)
    if canon is None:
        raise KeyError(f"{KB_FILE}: no entry for {term!r}")
    kb = _load()
    if canon in kb.entries:
        return _entry_from(kb.entries[canon])
    m = _VERTEBRA_TERM.fullmatch(canon)
    if m:
        base = _entry_from(kb.entries["vertebra"])
        return replace(base, term=canon, synonyms=(f"{m.group(1)}{m.group(2)} vertebral body",))
    side, _, rest = canon.partition(" ")
    if side in SIDES and rest in kb.entries:
        return _sided(_entry_from(kb.entries[rest]), side)
    raise KeyError(f"{KB_FILE}: no entry for {term!r} (resolved to {canon!r})")


def entries() -> list[Entry]:
    """All stored entries (paired structures once, unsided), in file order."""
    return [_entry_from(raw) for raw in _load().entries.values()]


def plausible_terms(modality: str, regions: set[str] | None = None, kind: str | None = None) -> list[str]:
    """Canonical terms of entries seen in ``modality`` (and one of ``regions`` when given)."""
    out = []
    for entry in entries():
        if modality not in entry.appearance:
            continue
        if regions and not regions.intersection(entry.regions):
            continue
        if kind and entry.kind != kind:
            continue
        out.append(entry.term)
    return out
