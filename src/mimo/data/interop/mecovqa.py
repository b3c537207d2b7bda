"""MeCoVQA (MedPLIB, Huang et al.) and its grounding subsets MeCoVQA-G / MeCoVQA-G+: reader
and writer.

The published form (read from MedPLIB's ``datasets/LazySupervisedDataset.py``): a JSON list
of LLaVA samples ``{"id", "image", "conversations": [{"from", "value"}], "answer_type"?}``.
``image`` and every mask path are relative to the image folder (``SAMed2D_v1``), whose
files carry SA-Med2D-20M names (``ct_00--AbdomenCT1K--Case_00001--x_0061.png``: modality,
dataset, case, slice). A visual prompt is written inline in a human turn as
``<region>MASK_PATH</region>``; a ground-truth mask as ``<mask>MASK_PATH</mask>`` in a gpt
turn that contains ``<SEG>``. Masks are PNGs, any value >= 1 is foreground.

MedPLIB's loader accepts one ``<mask>`` per turn; MeCoVQA-G+ (several targets per answer) is
read the same way with several ``<SEG>...<mask>`` pairs in a turn: the n-th ``<mask>`` is
the n-th ``<SEG>``'s mask, and the counts must match.

Records: ``<region>path</region>`` becomes ``<region>`` + a ``mask`` region; ``<mask>path</mask>``
is removed and its mask becomes the turn's n-th mask key. ``meta["mecovqa"]`` keeps what is
needed to write the sample back unchanged (other fields, mask paths and text offsets).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.core.files import atomic_save, atomic_write_text
from mimo.core.schema import IMAGE_TOKEN, REGION_TOKEN, SEG_TOKEN, Record
from mimo.data.interop.common import (
    InteropSource,
    Item,
    answer_type_of,
    copy_image,
    failing,
    image_size,
    iter_json_samples,
    load_binary_mask,
    parse_samed2d_name,
    resolve_image,
    resolve_under,
    safe_name,
    source_files,
)

REGION_RE = re.compile(r"<region>(.*?)</region>", re.S)
MASK_RE = re.compile(r"<mask>(.*?)</mask>", re.S)
KIND = "mecovqa"


def _split_from_name(path: Path) -> str:
    low = path.stem.lower()
    if "test" in low:
        return "test"
    if "val" in low:
        return "val"
    return "train"


def find_json_files(root: Path, json_opt: str | None) -> list[Path]:
    """The JSON file(s) of a source: ``json=`` (relative to ROOT or absolute; several separated
    by ``;``) or every ``*.json``/``*.jsonl`` directly in ROOT."""
    if json_opt:
        return source_files(root, json_opt)
    files = sorted([*root.glob("*.json"), *root.glob("*.jsonl")])
    if not files:
        raise MimoDataError("no JSON file given (json=FILE) and no *.json in the folder", root)
    return files


def sample_image(root: Path, rel: object, where: str) -> tuple[Path, str]:
    """A sample's image file and its path as found. As MedPLIB's loader does, a path whose
    first folder names LLaVA-Med's images (``llavamed/...``) is resolved against the folder
    above the image folder (where MedPLIB keeps ``llavamed/`` beside ``SAMed2Dv1/``)."""
    first = Path(str(rel).strip()).parts[:1] if isinstance(rel, str) else ()
    base = root.parent if first and "llavamed" in first[0].lower() else root
    return resolve_image(base, rel, where, "image")


def read_mecovqa(
    root: str | Path,
    out_dir: str | Path | None = None,
    *,
    json: str | None = None,  # noqa: A002 - the option's published name
    name: str | None = None,
    split: str | None = None,
    kind: str = KIND,
) -> InteropSource:
    """Items of MeCoVQA JSON file(s) under the image folder ``root``.

    Args:
        root: the image folder the samples' paths are relative to (MedPLIB's ``image_folder``).
        out_dir: the build's output folder; images are copied to ``images/<name>/...``
            (None: only checked).
        json: the JSON file(s); default every ``*.json``/``*.jsonl`` in ``root``.
        name: the set's name in ids and paths (default: the first JSON file's stem).
        split: put every sample in this split (default: from the file name: ``test``,
            ``val``, else ``train``).
    """
    root = Path(root)
    if not root.is_dir():
        raise MimoDataError("image folder not found (expected MECOVQA_ROOT with the SA-Med2D images)", root)
    files = find_json_files(root, json)
    name = safe_name(name or files[0].stem)
    source = InteropSource()
    for path in files:
        file_split = split or _split_from_name(path)
        for where, index, sample in iter_json_samples(path, "MeCoVQA JSON"):
            rid = f"{kind}_{name}_{path.stem}_{index:07d}" if len(files) > 1 else f"{kind}_{name}_{index:07d}"
            if isinstance(sample, MimoDataError):
                make = failing(sample)
                group = rid
            else:
                make = _maker(sample, where, root, out_dir, name, rid, kind)
                group = _group(sample, rid)
            source.items.append(Item(where, make, file_split, group))
    return source


def _group(sample: object, rid: str) -> str:
    if isinstance(sample, dict) and isinstance(sample.get("image"), str):
        parsed = parse_samed2d_name(Path(sample["image"]).stem)
        return parsed.patient or Path(sample["image"]).stem
    return rid


def _maker(sample, where, root, out_dir, name, rid, kind):
    def make() -> Record:
        return convert_sample(
            sample, where, root, None if out_dir is None else Path(out_dir), name, rid, kind
        )

    return make


def convert_sample(
    sample: object, where: str, root: Path, out_dir: Path | None, name: str, rid: str, kind: str = KIND
) -> Record:
    """One MeCoVQA sample as a record (see the module docstring)."""
    if not isinstance(sample, dict):
        raise MimoDataError(f"{where}: expected an object with 'image' and 'conversations'")
    convs = sample.get("conversations")
    if not isinstance(convs, list) or not convs:
        raise MimoDataError(f"{where}: field 'conversations' must be a non-empty list of {{'from', 'value'}}")
    hw = None
    image_rel = None
    parsed = None
    if sample.get("image") is not None:
        img_path, found = sample_image(root, sample["image"], where)
        hw = image_size(img_path, where)
        image_rel = copy_image(img_path, out_dir, Path("images") / name / Path(found))
        parsed = parse_samed2d_name(img_path.stem)
    reader = _TurnReader(root, where, hw)
    for j, turn in enumerate(convs):
        reader.read(turn, f"conversations[{j}]")
    if image_rel is not None and IMAGE_TOKEN not in reader.turns[0]["value"]:
        raise MimoDataError(f"{where}: conversations[0] has no <image> although the sample has an image")
    has_masks = any(reader.mask_paths)
    perspective = ("II" if reader.regions else "I") if has_masks else ("II" if reader.regions else "vqa")
    obj = {
        "id": rid,
        "image": image_rel,
        "modality": parsed.modality if parsed else None,
        "source": f"{kind}:{name}",
        "case": parsed.patient if parsed else None,
        "slice": {"axis": parsed.slice[0], "index": parsed.slice[1]} if parsed and parsed.slice else None,
        "perspective": perspective,
        "masks": {k: rle.encode(v) for k, v in reader.masks.items()},
        "regions": reader.regions,
        "conversations": reader.turns,
        "meta": _record_meta(sample, kind, reader, parsed),
    }
    try:
        return Record.model_validate({k: v for k, v in obj.items() if v is not None})
    except ValidationError as exc:
        raise MimoDataError(f"{where}: not a valid record ({exc.errors()[0]['msg']})") from None


def _record_meta(sample: dict, kind: str, reader: _TurnReader, parsed) -> dict:
    """What the record keeps of the sample: its fields and the mask paths in their places, so
    that the writer can give the sample back as it came."""
    extra = {k: v for k, v in sample.items() if k not in ("image", "conversations")}
    meta = {
        "benchmark": kind,
        KIND: {
            "keys": list(sample.keys()),
            "fields": extra,
            "image": sample.get("image"),
            "region_paths": reader.region_paths,
            "mask_paths": reader.mask_paths,
            "mask_at": reader.mask_at,
        },
    }
    answer_type = answer_type_of(sample.get("answer_type"))
    if answer_type:
        meta["answer_type"] = answer_type
    if parsed is not None and parsed.dataset:
        meta["dataset"] = parsed.dataset
    return meta


@dataclass
class _TurnReader:
    """Reads a sample's turns one by one: ``<region>PATH</region>`` in human turns become
    ``<region>`` with mask regions ``r0, r1 ...``; ``<mask>PATH</mask>`` in gpt turns are cut out
    (their paths and character offsets kept) and each ``<SEG>`` gets mask ``m0, m1 ...``."""

    root: Path
    where: str
    hw: tuple[int, int] | None
    masks: dict = dataclasses.field(default_factory=dict)
    regions: list[dict] = dataclasses.field(default_factory=list)
    turns: list[dict] = dataclasses.field(default_factory=list)
    region_paths: list[str] = dataclasses.field(default_factory=list)
    mask_paths: list[list[str]] = dataclasses.field(default_factory=list)
    mask_at: list[list[int]] = dataclasses.field(default_factory=list)

    def read(self, turn: object, field: str) -> None:
        if not isinstance(turn, dict) or turn.get("from") not in ("human", "gpt") or "value" not in turn:
            raise MimoDataError(f"{self.where}: {field} must be {{'from': 'human'|'gpt', 'value': str}}")
        value = str(turn["value"])
        if turn["from"] == "human":
            self._human(value, field)
        else:
            self._gpt(value, field)

    def _human(self, value: str, field: str) -> None:
        where = self.where
        if MASK_RE.search(value) or SEG_TOKEN in value:
            raise MimoDataError(
                f"{where}: {field} is a human turn with <mask> or <SEG>; expected them in gpt turns"
            )
        found = REGION_RE.findall(value)
        if value.count(REGION_TOKEN) != len(found):
            raise MimoDataError(
                f"{where}: {field}: a <region> without '</region>'; expected <region>MASK_PATH</region>"
            )
        for rel in found:
            if not rel.strip():
                raise MimoDataError(f"{where}: {field}: <region></region> names no mask file")
            key = f"r{len(self.region_paths)}"
            self.masks[key] = self._load(rel, f"{field} <region>")
            self.regions.append({"type": "mask", "mask": key})
            self.region_paths.append(rel)
        self.turns.append({"from": "human", "value": REGION_RE.sub(REGION_TOKEN, value)})
        self.mask_paths.append([])
        self.mask_at.append([])

    def _gpt(self, value: str, field: str) -> None:
        where = self.where
        if REGION_TOKEN in value:
            raise MimoDataError(
                f"{where}: {field} is a gpt turn with <region>; expected <region> in human turns"
            )
        text, paths, offsets = _cut_mask_tags(value)
        n_seg = text.count(SEG_TOKEN)
        if n_seg > len(paths):
            raise MimoDataError(
                f"{where}: {field} has {n_seg} <SEG> but {len(paths)} <mask>PATH</mask>; every <SEG> needs a mask"
            )
        if n_seg < len(paths):
            raise MimoDataError(
                f"{where}: {field} has {len(paths)} <mask> but {n_seg} <SEG>; expected one <SEG> per mask"
            )
        keys = []
        for rel in paths:
            if not rel.strip():
                raise MimoDataError(f"{where}: {field}: <mask></mask> names no mask file")
            key = f"m{sum(len(p) for p in self.mask_paths) + len(keys)}"
            self.masks[key] = self._load(rel, f"{field} <mask>")
            keys.append(key)
        turn_obj = {"from": "gpt", "value": text}
        if keys:
            turn_obj["masks"] = keys
        self.turns.append(turn_obj)
        self.mask_paths.append(paths)
        self.mask_at.append(offsets)

    def _load(self, rel: str, field: str) -> np.ndarray:
        path = resolve_under(self.root, rel, self.where, field)
        m = load_binary_mask(path, self.where)
        hw = self.hw
        if hw is not None and m.shape != hw:
            raise MimoDataError(
                f"{self.where}: {field} mask {rel!r} is {m.shape[1]}x{m.shape[0]} but the image is "
                f"{hw[1]}x{hw[0]} (WxH)"
            )
        return m


def _cut_mask_tags(value: str) -> tuple[str, list[str], list[int]]:
    """``value`` without its ``<mask>PATH</mask>`` tags, the paths, and where each tag stood
    in the text that is left."""
    cleaned, paths, offsets, pos = [], [], [], 0
    for m in MASK_RE.finditer(value):
        cleaned.append(value[pos : m.start()])
        offsets.append(sum(len(c) for c in cleaned))
        paths.append(m.group(1))
        pos = m.end()
    cleaned.append(value[pos:])
    return "".join(cleaned), paths, offsets


# ------------------------------------------------------------------------------- writer


def _mask_png(mask: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save)


def record_to_sample(record: Record, out_root: Path, *, records_dir: Path | None = None) -> dict:
    """One record in MeCoVQA form, writing its mask PNGs under ``out_root``.

    Records read by ``read_mecovqa`` are written back as they were read (same fields, mask
    paths and text); others get ``image`` = their image path and masks named
    ``masks/<record id>_<key>.png``, each ``<mask>`` right after its ``<SEG>``. The image
    itself is copied to ``out_root/<image>`` when ``records_dir`` (the folder the record's
    image path is relative to) is given and the file is not there yet.
    """
    info = (record.meta or {}).get(KIND) or {}
    decoded = {k: rle.decode(m) for k, m in record.masks.items()}
    image = info.get("image", record.image)
    if records_dir is not None and record.image and image:
        copy_image(Path(records_dir) / record.image, out_root, Path(image))

    def mask_path(key: str, given: str | None) -> str:
        rel = given or f"masks/{safe_name(record.id)}_{key}.png"
        _mask_png(decoded[key], out_root / rel)
        return rel

    region_paths = list(info.get("region_paths") or [])
    mask_paths = info.get("mask_paths") or []
    mask_at = info.get("mask_at") or []
    convs, region_i = [], 0
    for j, turn in enumerate(record.conversations):
        value = turn.value
        if turn.from_ == "human":
            parts = value.split(REGION_TOKEN)
            out = parts[0]
            for part in parts[1:]:
                region = record.regions[region_i]
                if region.type != "mask":
                    raise MimoDataError(
                        f"record {record.id!r}: regions[{region_i}] is a {region.type} region; "
                        "MeCoVQA stores visual prompts as masks only"
                    )
                given = region_paths[region_i] if region_i < len(region_paths) else None
                out += f"<region>{mask_path(region.mask, given)}</region>" + part
                region_i += 1
            convs.append({"from": "human", "value": out})
            continue
        keys = turn.masks or []
        given = mask_paths[j] if j < len(mask_paths) else []
        offsets = mask_at[j] if j < len(mask_at) and len(mask_at[j]) == len(keys) else None
        if offsets is None:  # default: right after each <SEG>
            offsets, start = [], 0
            for _ in keys:
                start = value.index(SEG_TOKEN, start) + len(SEG_TOKEN)
                offsets.append(start)
        out, pos = "", 0
        for n, (key, at) in enumerate(zip(keys, offsets, strict=True)):
            out += value[pos:at] + f"<mask>{mask_path(key, given[n] if n < len(given) else None)}</mask>"
            pos = at
        convs.append({"from": "gpt", "value": out + value[pos:]})
    fields = dict(info.get("fields") or {"id": record.id})
    if "answer_type" not in fields and (record.meta or {}).get("answer_type"):
        fields["answer_type"] = record.meta["answer_type"]
    obj = {**fields, "image": image, "conversations": convs}
    order = info.get("keys") or ["id", "image", "conversations", *fields]
    ordered = {k: obj[k] for k in order if k in obj and (k != "image" or obj[k] is not None)}
    ordered.update({k: v for k, v in obj.items() if k not in ordered and v is not None})
    return ordered


def write_mecovqa(
    records,
    json_path: str | Path,
    out_root: str | Path,
    *,
    records_dir: str | Path | None = None,
    indent: int | None = 2,
) -> Path:
    """Write records as a MeCoVQA JSON list at ``json_path``, masks under ``out_root``."""
    out_root = Path(out_root)
    samples = [
        record_to_sample(r, out_root, records_dir=None if records_dir is None else Path(records_dir))
        for r in records
    ]
    path = Path(json_path)
    atomic_write_text(path, json.dumps(samples, indent=indent, ensure_ascii=False) + "\n")
    return path
