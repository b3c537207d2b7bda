"""The data builder's error type; it lives in ``mimo.core.errors`` (kept here for importers)."""

from mimo.core.errors import MimoDataError

__all__ = ["MimoDataError"]
