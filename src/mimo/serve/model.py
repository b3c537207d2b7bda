"""Which model the page serves: ``--model DIR``, else the packaged ``mimo-tiny`` checkpoint
(``mimo/assets/mimo-tiny``) when it is installed; one model in memory for all users."""

from __future__ import annotations

from pathlib import Path


class ServeModelError(ValueError):
    """No usable model directory."""


def default_model_dir() -> Path:
    from importlib.resources import files

    return Path(str(files("mimo"))) / "assets" / "mimo-tiny"


def resolve_model_dir(model: str | Path | None) -> Path:
    """``model``, or the packaged default; raises ``ServeModelError`` saying what to pass."""
    from mimo.infer.predictor import check_model_dir

    if model is not None:
        return check_model_dir(model)
    default = default_model_dir()
    if not (default / "config.json").is_file():
        raise ServeModelError(
            f"no --model given and the packaged mimo-tiny checkpoint is not installed ({default}); "
            "pass --model DIR (a directory written by save_pretrained, e.g. from `mimo train`)"
        )
    return check_model_dir(default)


def load_predictor(model_dir: Path, device: str | None = None, max_new_tokens: int = 128):
    from transformers.utils import logging

    from mimo.infer.predictor import Predictor

    logging.disable_progress_bar()
    return Predictor.from_pretrained(model_dir, device=device, max_new_tokens=max_new_tokens)
