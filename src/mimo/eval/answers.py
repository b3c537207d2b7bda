"""Answer parsing, kept importable here; it lives in ``mimo.core.answers`` (``MimoProcessor.post_process_answer``
turns a generated answer into a ``Prediction`` with it)."""

from mimo.core.answers import ParsedAnswer, PhraseItem, parse_answer, strip_markup

__all__ = ["ParsedAnswer", "PhraseItem", "parse_answer", "strip_markup"]
