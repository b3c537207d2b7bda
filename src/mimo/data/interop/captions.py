"""Image-caption pairs for stage-1 alignment (perspective ``caption``): source kind ``caption``.

Two layouts, told apart per sample:

- LLaVA's alignment JSON, as LLaVA (``blip_laion_cc_sbu_558k.json``) and LLaVA-Med
  (``llava_med_alignment_500k.json``) publish it: a JSON list of ``{"id", "image",
  "conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": caption}]}``.
  The human turn is a short instruction ("Render a clear and concise summary of the photo.")
  with ``<image>`` before or after it on its own line; as LLaVA's own loader does, the
  ``<image>`` is moved to the front (``<image>\\n`` + instruction). ``image`` is relative to the
  image folder: sub-folders in LLaVA's (``00453/004539375.jpg``), a flat folder of
  ``<pair_id>.jpg`` in LLaVA-Med's (what its ``download_images.py`` writes).
- Simple tables: CSV (a header row with ``image`` and ``caption`` columns), or JSON / JSONL
  objects ``{"image": ..., "caption": ...}``; the human turn is ``<image>\\n`` + option
  ``prompt`` (default "Describe the image concisely.").

PATH is the image folder; option ``file=`` names the JSON/JSONL/CSV file (relative to PATH or
absolute; default: the one such file in PATH). Records go to split ``split`` (default train).
Mixing by perspective drops ``caption`` records: build them with ``--ratios none``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from mimo.core.errors import MimoDataError
from mimo.core.schema import IMAGE_TOKEN, REGION_TOKEN, SEG_TOKEN, Record
from mimo.data.interop.common import (
    InteropSource,
    Item,
    copy_image,
    failing,
    iter_json_samples,
    resolve_under,
    safe_name,
    source_file,
)

DEFAULT_PROMPT = "Describe the image concisely."
TABLE_SUFFIXES = (".json", ".jsonl", ".csv")
MAX_CAPTION_CHARS = 20000


def read_captions(
    root,
    out_dir=None,
    *,
    file: str | None = None,
    name: str | None = None,  # noqa: A002
    split: str = "train",
    prompt: str = DEFAULT_PROMPT,
) -> InteropSource:
    """Image-caption samples of one file (see the module docstring); images under ``root``."""
    root = Path(root)
    path = _caption_file(root, file)
    name = safe_name(name or path.stem)
    prompt = str(prompt).strip()
    if not prompt or any(t in prompt for t in (IMAGE_TOKEN, REGION_TOKEN, SEG_TOKEN)):
        raise MimoDataError(f"option prompt={prompt!r}: expected a plain instruction without special tokens")
    out = InteropSource()
    for where, i, sample in _samples(path):
        rid = f"caption_{name}_{i:07d}"
        make = (
            failing(sample)
            if isinstance(sample, MimoDataError)
            else _maker(sample, where, root, out_dir, name, rid, prompt)
        )
        out.items.append(Item(where, make, str(split), rid))
    return out


def _caption_file(root: Path, file: str | None) -> Path:
    if file:
        path = source_file(root, file)
    else:
        found = sorted(p for p in root.glob("*") if p.suffix in TABLE_SUFFIXES) if root.is_dir() else []
        if len(found) != 1:
            raise MimoDataError(
                "expected file=FILE (a JSON/JSONL/CSV of image-caption pairs, e.g. blip_laion_cc_sbu_558k.json)",
                root,
            )
        path = found[0]
    if path.suffix not in TABLE_SUFFIXES:
        raise MimoDataError(
            f"expected a .json, .jsonl or .csv file, got {path.suffix or 'no suffix'!r}", path
        )
    if not path.is_file():
        raise MimoDataError("caption file not found", path)
    return path


def _samples(path: Path) -> Iterator[tuple[str, int, object]]:
    if path.suffix != ".csv":
        yield from iter_json_samples(path, "caption file")
        return
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "image" not in columns or "caption" not in columns:
            raise MimoDataError(
                f"expected a header row with 'image' and 'caption' columns, got {columns}", path
            )
        for i, row in enumerate(reader):
            yield f"{path}:{reader.line_num}", i, row


def _turns(sample: dict, where: str, prompt: str) -> list[dict]:
    """The conversation of a sample: LLaVA's as published (``<image>`` moved first), or made
    from a table row's caption."""
    if "conversations" not in sample:
        caption = sample.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            raise MimoDataError(f"{where}: expected a non-empty 'caption' (or LLaVA 'conversations')")
        return [
            {"from": "human", "value": f"{IMAGE_TOKEN}\n{prompt}"},
            {"from": "gpt", "value": caption.strip()},
        ]
    turns = sample["conversations"]
    if not isinstance(turns, list) or len(turns) < 2:
        raise MimoDataError(f"{where}: 'conversations' must list a human turn and the gpt caption")
    out = []
    for j, turn in enumerate(turns):
        expected = "human" if j % 2 == 0 else "gpt"
        if (
            not isinstance(turn, dict)
            or turn.get("from") != expected
            or not isinstance(turn.get("value"), str)
        ):
            raise MimoDataError(f"{where}: conversations[{j}] must be {{'from': {expected!r}, 'value': str}}")
        value = turn["value"]
        if j == 0:
            if value.count(IMAGE_TOKEN) != 1:
                raise MimoDataError(f"{where}: conversations[0] must hold exactly one {IMAGE_TOKEN}")
            value = f"{IMAGE_TOKEN}\n{value.replace(IMAGE_TOKEN, '').strip()}".strip()
        elif IMAGE_TOKEN in value:
            raise MimoDataError(f"{where}: conversations[{j}] holds a second {IMAGE_TOKEN}")
        out.append({"from": expected, "value": value})
    return out


def _maker(sample, where, root, out_dir, name, rid, prompt):
    def make() -> Record:
        if not isinstance(sample, dict):
            raise MimoDataError(f"{where}: expected an object with 'image' and a caption")
        turns = _turns(sample, where, prompt)
        for j, turn in enumerate(turns):
            for token in (REGION_TOKEN, SEG_TOKEN):
                if token in turn["value"]:
                    raise MimoDataError(f"{where}: conversations[{j}] uses the reserved token {token}")
            if len(turn["value"]) > MAX_CAPTION_CHARS:
                raise MimoDataError(
                    f"{where}: conversations[{j}] is longer than {MAX_CAPTION_CHARS} characters"
                )
        src = resolve_under(root, sample.get("image"), where, "image")
        image_rel = copy_image(src, out_dir, Path("images") / name / str(sample["image"]).strip())
        obj = {
            "id": rid,
            "image": image_rel,
            "source": f"caption:{name}",
            "perspective": "caption",
            "conversations": turns,
            "meta": {"caption": {"id": str(sample["id"])} if sample.get("id") is not None else {}},
        }
        try:
            return Record.model_validate(obj)
        except ValidationError as exc:
            raise MimoDataError(f"{where}: not a valid record ({exc.errors()[0]['msg']})") from None

    return make
