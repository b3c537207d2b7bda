"""VQA passthrough: import an existing LLaVA-format VQA set (VQA-RAD, SLAKE, PathVQA ...) as
records of perspective ``vqa``, copying its images under ``out_dir/images/vqa/<set>/``.

Input: a JSON list of ``{"id", "image", "conversations": [{"from", "value"}, ...]}``; optional
``answer_type`` (normalised to ``open``/``closed``), ``modality`` and ``question_type`` are kept in ``meta``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pydantic import ValidationError

from mimo.core.errors import MimoDataError
from mimo.core.files import safe_name
from mimo.core.schema import IMAGE_TOKEN, REGION_TOKEN, SEG_TOKEN, Record
from mimo.data.interop.common import answer_type_of, resolve_under

_KEEP_META = ("answer_type", "question_type", "modality", "content_type", "location")


def _error(msg: str, path: Path) -> MimoDataError:
    return MimoDataError(msg, path)


def import_llava_vqa(
    json_path: str | Path,
    image_root: str | Path | None,
    out_dir: str | Path,
    name: str | None = None,
    copy_images: bool = True,
) -> list[Record]:
    """Read a LLaVA-format VQA JSON file and return validated ``vqa`` records.

    Args:
        json_path: the JSON file (a list of samples).
        image_root: folder that the samples' ``image`` paths are relative to (default: the
            JSON file's folder); a path that is absolute or leaves it (``../``) is refused.
        out_dir: the build's output folder; images are copied to ``images/vqa/<name>/`` under
            it and ``record.image`` is that path relative to ``out_dir``.
        name: the set's name in ids and paths (default: the JSON file's stem).
        copy_images: copy the image files (False only checks that they exist).

    Raises:
        MimoDataError: naming the file, the sample index and the field for malformed input,
            a missing image, or text that uses the reserved tokens ``<region>``/``<SEG>``.
    """
    json_path = Path(json_path)
    root = Path(image_root) if image_root else json_path.parent
    out_dir = Path(out_dir)
    name = safe_name(name or json_path.stem, trim="_", fallback="vqa")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _error("VQA file not found", json_path) from None
    except json.JSONDecodeError as exc:
        raise _error(f"malformed JSON ({exc.msg} at line {exc.lineno})", json_path) from None
    if not isinstance(data, list):
        raise _error(f"expected a JSON list of samples, got {type(data).__name__}", json_path)
    records: list[Record] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        where = f"sample {i}"
        if not isinstance(item, dict):
            raise _error(f"{where}: expected an object with 'id', 'image', 'conversations'", json_path)
        for key in ("id", "conversations"):
            if key not in item:
                raise _error(f"{where}: missing field {key!r}", json_path)
        sample_id = safe_name(item["id"], trim="_", fallback="vqa")
        record_id = f"vqa_{name}_{sample_id}"
        if record_id in seen:
            raise _error(f"{where}: duplicate id {item['id']!r}", json_path)
        seen.add(record_id)
        turns = _turns(item["conversations"], json_path, where)
        image_rel = None
        if item.get("image"):
            # resolved under the image root: absolute paths and ``..`` escapes are refused
            src = resolve_under(root, item["image"], f"{json_path}: {where}", "image")
            rel = Path("images") / "vqa" / name / Path(str(item["image"]).strip())
            if copy_images:
                dst = out_dir / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if not dst.exists():
                    shutil.copyfile(src, dst)
            image_rel = rel.as_posix()
            if IMAGE_TOKEN not in turns[0]["value"]:
                turns[0]["value"] = f"{IMAGE_TOKEN}\n{turns[0]['value']}"
        meta = {k: item[k] for k in _KEEP_META if k in item}
        if answer_type_of(item.get("answer_type")):  # "CLOSED " -> "closed", as the other readers
            meta["answer_type"] = answer_type_of(item["answer_type"])
        meta["vqa_set"] = name
        obj = {
            "id": record_id,
            "image": image_rel,
            "perspective": "vqa",
            "source": f"vqa:{name}",
            "conversations": turns,
            "meta": meta,
        }
        if isinstance(item.get("modality"), str):
            obj["modality"] = item["modality"]
        try:
            records.append(Record.model_validate(obj))
        except ValidationError as exc:
            raise _error(f"{where}: not a valid record ({exc.errors()[0]['msg']})", json_path) from None
    return records


def _turns(conversations: object, path: Path, where: str) -> list[dict]:
    if not isinstance(conversations, list) or not conversations:
        raise _error(f"{where}: 'conversations' must be a non-empty list", path)
    turns = []
    for j, turn in enumerate(conversations):
        if (
            not isinstance(turn, dict)
            or turn.get("from") not in ("human", "gpt")
            or not isinstance(turn.get("value"), str)
        ):
            raise _error(f"{where}: conversations[{j}] must be {{'from': 'human'|'gpt', 'value': str}}", path)
        value = turn["value"]
        for token in (REGION_TOKEN, SEG_TOKEN):
            if token in value:
                raise _error(f"{where}: conversations[{j}] uses the reserved token {token}", path)
        turns.append({"from": turn["from"], "value": value})
    if turns[0]["from"] != "human":
        raise _error(f"{where}: conversations[0] must be a human turn", path)
    return turns
