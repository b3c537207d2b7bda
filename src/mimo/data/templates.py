"""Template banks for MIMOSeg questions and answers, many phrasings per question and answer type.

Fields used by the templates:

* ``{t}``, ``{t1}``, ``{t2}``: a structure's name as shown in a question (canonical term or a
  readable synonym, never a raw dataset label);
* ``{P}``, ``{P1}``, ``{P2}``: a grounded phrase ``<p>term</p> <SEG>`` in an answer;
* ``{mod}``: the modality's image noun (``CT image``), ``{modname}`` its name (``CT``);
* task fields: ``{function}``, ``{location}``, ``{appearance}``, ``{system}``, ``{category}``,
  ``{side}``, ``{side1}``, ``{side2}``, ``{rel}``, ``{dir}``, ``{area}``, ``{cm2}``, ``{n}``,
  ``{regions}``, ``{be}``, ``{names}``.

The banks live in ``templates.json`` (bank name -> list of templates, e.g. ``I.q`` for
perspective I questions, ``III.side.a`` for side answers). Human templates carry ``<region>`` where a visual prompt is referenced; answers never do.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from mimo.core.schema import PHRASE_END, PHRASE_START, SEG_TOKEN
from mimo.data.knowledge import Entry

MODALITY_NOUN = {
    "CT": "CT image",
    "MR": "MR image",
    "XR": "radiograph",
    "US": "ultrasound image",
    "PET": "PET image",
    "fundus": "fundus photograph",
    "dermoscopy": "dermoscopic image",
    "endoscopy": "endoscopic image",
    "pathology": "pathology image",
    "OCT": "OCT scan",
    "other": "image",
}
MODALITY_NAME = {
    "CT": "CT",
    "MR": "MRI",
    "XR": "X-ray",
    "US": "ultrasound",
    "PET": "PET",
    "fundus": "fundus photography",
    "dermoscopy": "dermoscopy",
    "endoscopy": "endoscopy",
    "pathology": "histopathology",
    "OCT": "OCT",
    "other": "imaging",
}

TEMPLATES_FILE = "templates.json"


def _load_banks() -> dict[str, tuple[str, ...]]:
    text = resources.files("mimo.data").joinpath(TEMPLATES_FILE).read_text(encoding="utf-8")
    banks = json.loads(text)["banks"]
    for name, options in banks.items():
        if not options or not all(isinstance(o, str) and o for o in options):
            raise ValueError(
                f"{TEMPLATES_FILE}: bank {name!r}: expected a non-empty list of template strings"
            )
    return {name: tuple(options) for name, options in banks.items()}


BANKS: dict[str, tuple[str, ...]] = _load_banks()


def phrase(term: str) -> str:
    """The grounded phrase ``<p>term</p> <SEG>`` of one mask."""
    return f"{PHRASE_START}{term}{PHRASE_END} {SEG_TOKEN}"


def render(bank: str, rng: np.random.Generator, **fields: object) -> str:
    """Fill a random template of ``bank`` with ``fields``.

    Raises:
        KeyError: naming the bank (unknown) or the missing field.
    """
    try:
        options = BANKS[bank]
    except KeyError:
        raise KeyError(f"templates: unknown bank {bank!r}") from None
    template = options[int(rng.integers(len(options)))]
    try:
        text = template.format(**fields)
    except KeyError as exc:
        raise KeyError(f"templates: bank {bank!r} template {template!r} needs field {exc}") from None
    return text[0].upper() + text[1:] if text else text


def display_name(entry: Entry, rng: np.random.Generator, synonym_prob: float = 0.25) -> str:
    """The entry's canonical term, or with probability ``synonym_prob`` one of its readable synonyms."""
    if entry.synonyms and rng.random() < synonym_prob:
        return entry.synonyms[int(rng.integers(len(entry.synonyms)))]
    return entry.term


def join_names(names: list[str]) -> str:
    """``the a, the b and the c``."""
    items = [f"the {n}" for n in names]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
