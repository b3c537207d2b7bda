"""Parsing of grounded answers: the one place that knows the ``<p>term</p> <SEG>`` syntax.

A MIMO answer (see ``mimo.core.markup``) wraps each grounded medical term as
``<p>term</p> <SEG>``; the n-th ``<SEG>`` of an answer yields the n-th mask. This module
turns such a string into:

- its plain text, with the markup removed (for display, BLEU and ROUGE-L), and
- the ordered list of phrase items, each telling which ``<SEG>`` (if any) belongs to it.

Rules, in the order they are applied while scanning left to right:

- ``<p>term</p>`` followed by nothing but whitespace and then ``<SEG>`` is a *grounded*
  phrase: ``PhraseItem(phrase="term", seg_index=n)``.
- ``<SEG>`` with no phrase just before it is a mask tied to no phrase:
  ``PhraseItem(phrase=None, seg_index=n)``.
- ``<p>term</p>`` not followed by a ``<SEG>`` is an *ungrounded* phrase:
  ``PhraseItem(phrase="term", seg_index=None)``.

Generated text can be malformed. In the default lenient mode an unclosed ``<p>`` is closed
by the next ``<SEG>`` (which then grounds it) or by the end of the answer; a stray ``</p>``
and a ``<p>`` inside a phrase are dropped. With ``strict=True`` these raise ``ValueError``
instead, which is what a data validator wants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mimo.core.markup import PHRASE_END, PHRASE_START, SEG_TOKEN

_MARKUP = re.compile("(" + "|".join(re.escape(t) for t in (PHRASE_START, PHRASE_END, SEG_TOKEN)) + ")")
_SPACE_RUN = re.compile(r"[ \t]+")
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.,;:!?)])")


@dataclass(frozen=True)
class PhraseItem:
    """One phrase and/or mask of an answer.

    Attributes:
        phrase: the text between ``<p>`` and ``</p>`` (whitespace-stripped), or None for a
            ``<SEG>`` that follows no phrase.
        seg_index: which ``<SEG>`` of the answer (0-based, in order of appearance) grounds
            this phrase; this is also the index of its mask. None for an ungrounded phrase.
        start, end: character span of the phrase in ``ParsedAnswer.text`` (``start == end``
            for a bare ``<SEG>``), for highlighting in a display.
    """

    phrase: str | None
    seg_index: int | None
    start: int
    end: int

    @property
    def grounded(self) -> bool:
        return self.seg_index is not None


@dataclass(frozen=True)
class ParsedAnswer:
    """An answer split into display text and its phrase items (in order of appearance)."""

    raw: str
    text: str
    items: tuple[PhraseItem, ...]

    @property
    def num_segs(self) -> int:
        """Number of ``<SEG>`` tokens, i.e. of masks the answer asks for."""
        return sum(1 for item in self.items if item.seg_index is not None)

    @property
    def segments(self) -> tuple[PhraseItem, ...]:
        """Items that own a ``<SEG>``, ordered by ``seg_index``."""
        return tuple(item for item in self.items if item.seg_index is not None)

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every named phrase, grounded or not, in order."""
        return tuple(item.phrase for item in self.items if item.phrase is not None)

    @property
    def grounded_phrases(self) -> tuple[str, ...]:
        return tuple(item.phrase for item in self.items if item.phrase is not None and item.grounded)

    @property
    def ungrounded_phrases(self) -> tuple[str, ...]:
        return tuple(item.phrase for item in self.items if item.phrase is not None and not item.grounded)

    def phrase_for_seg(self, seg_index: int) -> str | None:
        """The phrase that the ``seg_index``-th ``<SEG>`` grounds (None if it follows no phrase)."""
        for item in self.items:
            if item.seg_index == seg_index:
                return item.phrase
        raise IndexError(f"answer has {self.num_segs} <SEG> token(s); no <SEG> number {seg_index}")


class _Builder:
    """Accumulates display text while the scanner walks the answer."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)


def parse_answer(answer: str, *, strict: bool = False) -> ParsedAnswer:
    """Parse ``answer`` into display text and ordered phrase items (see the module docstring).

    Raises:
        ValueError: with ``strict=True``, on an unclosed ``<p>``, a nested ``<p>``, a stray
            ``</p>`` or a ``<SEG>`` inside a phrase.
    """
    out = _Builder()
    items: list[PhraseItem] = []
    n_seg = 0
    open_start: int | None = None  # display offset where the open phrase began
    # A phrase just closed, waiting to see whether a <SEG> follows: (phrase, start, end).
    pending: tuple[str | None, int, int] | None = None

    def flush_pending() -> None:
        nonlocal pending
        if pending is not None:
            items.append(PhraseItem(pending[0], None, pending[1], pending[2]))
            pending = None

    def close_phrase() -> tuple[str | None, int, int]:
        assert open_start is not None
        text = "".join(out.parts)[open_start:]
        stripped = text.strip()
        lead = len(text) - len(text.lstrip())
        start = open_start + lead
        return (" ".join(stripped.split()) or None, start, start + len(stripped))

    for piece in _MARKUP.split(answer):
        if not piece:
            continue
        if piece == PHRASE_START:
            if open_start is not None:
                if strict:
                    raise ValueError(f"answer {answer!r}: '<p>' inside an open phrase")
                continue
            flush_pending()
            open_start = out.length
        elif piece == PHRASE_END:
            if open_start is None:
                if strict:
                    raise ValueError(f"answer {answer!r}: '</p>' without an opening '<p>'")
                continue
            pending = close_phrase()
            open_start = None
        elif piece == SEG_TOKEN:
            if open_start is not None:
                if strict:
                    raise ValueError(f"answer {answer!r}: '<SEG>' inside an unclosed phrase")
                pending = close_phrase()
                open_start = None
            if pending is not None:
                items.append(PhraseItem(pending[0], n_seg, pending[1], pending[2]))
                pending = None
            else:
                items.append(PhraseItem(None, n_seg, out.length, out.length))
            n_seg += 1
        else:
            if pending is not None and piece.strip():
                flush_pending()
            out.add(piece)
    if open_start is not None:
        if strict:
            raise ValueError(f"answer {answer!r}: '<p>' is never closed")
        pending = close_phrase()
    flush_pending()
    text, items = _tidy("".join(out.parts), items)
    return ParsedAnswer(raw=answer, text=text, items=tuple(items))


def _tidy(text: str, items: list[PhraseItem]) -> tuple[str, list[PhraseItem]]:
    """Collapse the spaces left where ``<SEG>`` was removed, keeping item spans valid."""
    # Map each old offset to a new one while removing redundant spaces.
    keep = [True] * len(text)
    for match in _SPACE_RUN.finditer(text):
        for i in range(match.start() + 1, match.end()):
            keep[i] = False
    for match in _SPACE_BEFORE_PUNCT.finditer(text):
        for i in range(match.start(), match.start(1)):
            keep[i] = False
    # Leading and trailing whitespace.
    stripped_left = len(text) - len(text.lstrip())
    stripped_right = len(text.rstrip())
    for i in range(len(text)):
        if i < stripped_left or i >= stripped_right:
            keep[i] = False
    new_offset = [0] * (len(text) + 1)
    count = 0
    for i, k in enumerate(keep):
        new_offset[i] = count
        count += k
    new_offset[len(text)] = count
    new_text = "".join(c for c, k in zip(text, keep, strict=True) if k)
    new_items = [
        PhraseItem(item.phrase, item.seg_index, new_offset[item.start], new_offset[item.end])
        for item in items
    ]
    return new_text, new_items


def strip_markup(answer: str) -> str:
    """The answer's display text: ``<p>``, ``</p>`` and ``<SEG>`` removed, spaces tidied.

    >>> strip_markup("It is the <p>left kidney</p> <SEG>.")
    'It is the left kidney.'
    """
    return parse_answer(answer).text
