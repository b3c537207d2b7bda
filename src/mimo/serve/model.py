"""Which model the page serves: ``--model DIR``, else the packaged ``mimo-tiny`` checkpoint
(``mimo/assets/mimo-tiny``); one model in memory for all users."""

from __future__ import annotations

from mimo.infer.cli import load_predictor
from mimo.infer.predictor import ModelDirError, packaged_model_dir, resolve_model_dir

__all__ = ["ModelDirError", "load_predictor", "packaged_model_dir", "resolve_model_dir"]
