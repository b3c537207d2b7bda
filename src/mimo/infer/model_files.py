"""Checks of a model directory's files before anything is loaded from them.

A broken folder (an empty, truncated or corrupt ``model.safetensors``, a ``config.json`` that is
not JSON or holds a wrongly typed field, a bad ``processor_config.json``, an index that names a
pickle or a path outside the folder) is reported as one ``ModelDirError`` naming the file and
the problem, instead of a traceback from deep inside transformers or safetensors.

Only safetensors weights are read (never pickles), and no code from the folder is ever run.
"""

from __future__ import annotations

import json
import struct
from dataclasses import fields
from pathlib import Path

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit on its JSON header
NUMBER_FIELDS = (
    "vision_feature_layer",
    "aligner_num_queries",
    "aligner_hidden_size",
    "aligner_num_layers",
    "aligner_num_heads",
    "prompt_num_frequencies",
    "seg_hidden_size",
    "loss_ce_weight",
    "loss_bce_weight",
    "loss_dice_weight",
    "loss_iou_weight",
)


class ModelDirError(ValueError):
    """A model directory is missing, incomplete or holds a broken file."""


def _json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelDirError(f"{path}: not UTF-8 text (expected {what} as JSON)") from None
    except json.JSONDecodeError as exc:
        raise ModelDirError(
            f"{path}: not valid JSON at line {exc.lineno} ({exc.msg}); expected {what}"
        ) from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{path}: expected a JSON object ({what}), got {type(data).__name__}")
    return data


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_config(path: Path) -> None:
    """``config.json``: a MIMO config whose sub-configs are objects and numbers are numbers."""
    data = _json(path, "the model's configuration")
    if data.get("model_type") != "mimo":
        raise ModelDirError(f"{path}: model_type is {data.get('model_type')!r}; expected 'mimo'")
    for key in ("vision_config", "text_config", "sam_config"):
        if not isinstance(data.get(key), dict):
            raise ModelDirError(f"{path}: {key} must be an object, got {type(data.get(key)).__name__}")
    for key in NUMBER_FIELDS:
        if key in data and not _is_number(data[key]):
            raise ModelDirError(f"{path}: {key} must be a number, got {data[key]!r}")
    for key in ("use_aligner", "seg_region_prompts"):
        if key in data and not isinstance(data[key], bool):
            raise ModelDirError(f"{path}: {key} must be true or false, got {data[key]!r}")


def check_processor_config(path: Path) -> None:
    """``processor_config.json``: the ``ProcessorSettings`` fields with values of their type."""
    from mimo.model.processing_mimo import ProcessorSettings

    data = _json(path, "the processor settings")
    known = {f.name: f for f in fields(ProcessorSettings)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ModelDirError(f"{path}: unknown field(s) {unknown}; expected {sorted(known)}")
    for name in ("image_seq_length", "vision_size", "sam_size"):
        value = data.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelDirError(f"{path}: {name} must be a whole number >= 1, got {value!r}")
    for name in ("vision_mean", "vision_std", "sam_mean", "sam_std"):
        value = data.get(name, (0, 1, 1))
        if not isinstance(value, list | tuple) or len(value) != 3 or not all(map(_is_number, value)):
            raise ModelDirError(f"{path}: {name} must be three numbers, got {value!r}")
    if not isinstance(data.get("system_prompt", ""), str):
        raise ModelDirError(f"{path}: system_prompt must be text")
    for name in ("scribble_width", "point_radius"):
        if name in data and not _is_number(data[name]):
            raise ModelDirError(f"{path}: {name} must be a number, got {data[name]!r}")


def check_safetensors(path: Path) -> None:
    """A safetensors file: an 8-byte header length, a JSON header, and every tensor's bytes present."""
    size = path.stat().st_size
    if size == 0:
        raise ModelDirError(f"{path}: empty file (0 bytes); expected safetensors weights")
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelDirError(f"{path}: truncated ({size} bytes); not a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise ModelDirError(
                f"{path}: not a safetensors file, or truncated (header of {n} bytes, file {size})"
            )
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelDirError(f"{path}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise ModelDirError(f"{path}: corrupt safetensors header (not a JSON object)")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(v, int) for v in offsets)):
            raise ModelDirError(f"{path}: corrupt safetensors header (tensor {name!r} has no data_offsets)")
        end = max(end, offsets[1])
    if 8 + n + end > size:
        raise ModelDirError(
            f"{path}: truncated: the header describes {8 + n + end} bytes, the file holds {size}"
        )


def check_index(path: Path) -> None:
    """A sharded checkpoint's index: every shard a ``.safetensors`` file inside the folder."""
    data = _json(path, "a safetensors index with a weight_map")
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelDirError(f"{path}: weight_map must be a non-empty object of tensor name -> shard file")
    folder = path.parent.resolve()
    for shard in sorted(set(map(str, weight_map.values()))):
        target = (folder / shard).resolve()
        if Path(shard).is_absolute() or target.parent != folder:
            raise ModelDirError(
                f"{path}: shard {shard!r} is outside the model folder; expected a file name in it"
            )
        if not shard.endswith(".safetensors"):
            raise ModelDirError(
                f"{path}: shard {shard!r} is not a .safetensors file (pickles are not loaded)"
            )
        if not target.is_file():
            raise ModelDirError(f"{path}: shard {shard!r} not found in {folder}")
        check_safetensors(target)


def check_tokenizer(directory: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (directory / name).is_file():
            _json(directory / name, "the tokenizer")


def check_model_files(directory: Path) -> None:
    """Raise ``ModelDirError`` naming the first broken file of ``directory``."""
    check_config(directory / "config.json")
    check_processor_config(directory / "processor_config.json")
    if (directory / WEIGHTS).is_file():
        check_safetensors(directory / WEIGHTS)
    else:
        check_index(directory / INDEX)
    check_tokenizer(directory)
