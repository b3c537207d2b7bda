"""The components' own preprocessing, read from their ``preprocessor_config.json``.

A CLIP tower expects CLIP's mean and std, a SigLIP tower ``0.5 / 0.5``, SAM ImageNet's; each
checkpoint says so in its image-processor config (``image_mean``, ``image_std``, ``resample``,
``size`` / ``crop_size``, ``do_normalize``; ``preprocessor_config.json``, or nested in
``processor_config.json`` where transformers 5 saved a whole ``LlavaProcessor``). MIMO keeps its own geometry (pad bottom/right to a
square, then resize: one frame for both towers and the masks) and takes the rest from there.
The result is a dict of :class:`mimo.model.processing_mimo.ProcessorSettings` fields, stored in
``MimoConfig.image_processing`` and saved with the processor.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

PREPROCESSOR_FILE = "preprocessor_config.json"
COMBINED_FILE = "processor_config.json"
# PIL's resampling filters by number (what image-processor configs store) -> torch interpolation
PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic", 1: "bicubic", 4: "bilinear", 5: "bilinear"}


def _side(config: dict, path: Path) -> int | None:
    """The square input side the processor produces: crop size if it crops, else its size."""
    raw = config.get("crop_size") if config.get("do_center_crop") else config.get("size")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, dict):
        for key in ("height", "shortest_edge", "longest_edge"):
            if isinstance(raw.get(key), int):
                return raw[key]
    if raw is None:
        return None
    raise ValueError(f"{path}: 'size'/'crop_size' {raw!r} is not an int or a height/edge mapping")


def _triple(config: dict, key: str, path: Path) -> tuple[float, float, float]:
    value = config[key]
    if isinstance(value, (int, float)):
        value = [value] * 3
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
        raise ValueError(f"{path}: {key!r} must be three numbers (one per RGB channel), got {value!r}")
    return tuple(float(v) for v in value)


def _load_json(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON image-processor config ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def _processor_config(directory: Path) -> tuple[Path, dict] | None:
    """The image-processor config of a checkpoint: ``preprocessor_config.json``, or the
    ``image_processor`` part of ``processor_config.json`` (how transformers 5 saves a
    ``LlavaProcessor``)."""
    if (directory / PREPROCESSOR_FILE).is_file():
        return directory / PREPROCESSOR_FILE, _load_json(directory / PREPROCESSOR_FILE)
    path = directory / COMBINED_FILE
    if path.is_file():
        nested = _load_json(path).get("image_processor")
        if not isinstance(nested, dict):
            raise ValueError(f"{path}: has no 'image_processor' object")
        return path, nested
    return None


def read_component(directory: str | Path, role: str, expected_side: int) -> dict | None:
    """``{"size", "mean", "std", "resample"}`` of one component, or None without a config file.

    Raises ``ValueError`` naming the file when it is unreadable or its size differs from the
    component's own input size (``expected_side``, from the model config).
    """
    found = _processor_config(Path(directory))
    if found is None:
        warnings.warn(
            f"{role}: {Path(directory) / PREPROCESSOR_FILE} is missing; using MIMO's default {role} preprocessing",
            stacklevel=3,
        )
        return None
    path, config = found
    side = _side(config, path)
    if side is not None and side != expected_side:
        raise ValueError(
            f"{path}: the {role} processor makes {side}px inputs but the {role} model takes {expected_side}px"
        )
    normalize = config.get("do_normalize", True)
    mean = _triple(config, "image_mean", path) if normalize else (0.0, 0.0, 0.0)
    std = _triple(config, "image_std", path) if normalize else (1.0, 1.0, 1.0)
    if any(s <= 0 for s in std):
        raise ValueError(f"{path}: 'image_std' must be positive, got {list(std)}")
    resample = config.get("resample", 2)
    if resample not in PIL_RESAMPLE:
        raise ValueError(f"{path}: 'resample' {resample!r} is not a PIL filter number 0-5")
    return {"mean": mean, "std": std, "resample": PIL_RESAMPLE[resample]}


def component_image_processing(
    vision_dir: str | Path, sam_dir: str | Path, vision_side: int, sam_side: int
) -> dict:
    """``ProcessorSettings`` fields from the vision tower's and SAM's processor configs."""
    settings: dict = {}
    for role, directory, side in (("vision", vision_dir, vision_side), ("sam", sam_dir, sam_side)):
        found = read_component(directory, role, side)
        if found is not None:
            settings.update({f"{role}_{key}": value for key, value in found.items()})
    if settings:
        settings["antialias"] = True  # PIL (the processors' backend) filters when it shrinks
    return settings
