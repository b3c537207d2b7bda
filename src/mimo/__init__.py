"""MIMO-Med: a medical vision-language model with visual-referring input and pixel-grounding output.

The names transformers users type first are here, imported on first use (so ``import mimo``
and the ``mimo`` command stay quick)::

    from mimo import MimoForConditionalGeneration, MimoConfig, MimoProcessor, Predictor
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "MimoConfig": "mimo.model.configuration_mimo",
    "MimoForConditionalGeneration": "mimo.model.modeling_mimo",
    "MimoProcessor": "mimo.model.processing_mimo",
    "Predictor": "mimo.infer.predictor",
    "ChatSession": "mimo.infer.predictor",
    "Prediction": "mimo.core.results",
    "Segment": "mimo.core.results",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'mimo' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
