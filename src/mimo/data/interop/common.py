"""What the public-format readers share: sample items, JSON/JSONL reading with line numbers,
safe path resolution under a user-given root, mask and image loading, image copying.

A record reader returns an ``InteropSource``: one ``Item`` per published sample, each a
zero-argument ``make`` that converts the sample (copying its image into the build's output
folder) and raises ``MimoDataError`` naming the file and sample for bad input. The builder
(``mimo.data.interop.build``) calls them one by one, so ``--on-error skip`` skips one sample.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimo.core import files
from mimo.core.errors import MimoDataError
from mimo.core.images import ImageError, image_header, read_raster
from mimo.core.schema import Record


@dataclass
class Item:
    """One published sample, not converted yet.

    Attributes:
        where: ``file:line`` or ``file: sample i``, for messages and the build report.
        make: ``() -> Record`` (raises ``MimoDataError``).
        split: the split the publisher put it in (``train``/``val``/``test``), or None to
            split by patient.
        group: the patient (or other unit never split across splits).
    """

    where: str
    make: Callable[[], Record]
    split: str | None = None
    group: str = ""


@dataclass
class InteropSource:
    """The items of one source, in a deterministic order."""

    items: list[Item] = field(default_factory=list)


class UnusableSample(MimoDataError):
    """A well-formed published sample that cannot become a training/evaluation record (an
    empty answer). The builder drops it and counts it per ``reason`` in the build report,
    whatever ``--on-error`` says; structural problems stay plain ``MimoDataError``s."""

    def __init__(self, reason: str, where: str) -> None:
        self.reason = reason
        super().__init__(f"{where}: {reason}")


def source_file(root: Path, option: object) -> Path:
    """A file named by a source option (``json=``): absolute, or relative to the source's PATH
    (never to the current directory)."""
    p = Path(str(option).strip())
    return p if p.is_absolute() else Path(root) / p


def source_files(root: Path, option: object) -> list[Path]:
    """``source_file`` for each of several files separated by ``;``."""
    return [source_file(root, part) for part in str(option).split(";") if part.strip()]


def answer_type_of(raw: object) -> str | None:
    """A published answer type as ``open``/``closed`` (``"CLOSED "``, ``yes/no`` ...), else None."""
    low = str(raw if raw is not None else "").strip().lower()
    if low in ("open", "open-ended"):
        return "open"
    if low in ("closed", "closed-ended", "yes/no", "yes_no"):
        return "closed"
    return None


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".dcm")


def resolve_image(root: Path, rel: object, where: str, field_name: str = "image") -> tuple[Path, str]:
    """``(file, path as found)`` of a sample's image under ``root``; a name without an image
    suffix that does not exist is tried with ``.png`` (MeCoVQA lists some SA-Med2D images
    without it)."""
    if isinstance(rel, str) and rel.strip() and not rel.strip().lower().endswith(IMAGE_SUFFIXES):
        target = resolve_under(root, rel, where, field_name, must_exist=False)
        if not target.is_file() and (root / (rel.strip() + ".png")).is_file():
            rel = rel.strip() + ".png"
    return resolve_under(root, rel, where, field_name), str(rel).strip()


def safe_name(text: object) -> str:
    """``mimo.core.files.safe_name`` as the importers spell names (leading and trailing dots kept)."""
    return files.safe_name(text, trim="_")


def failing(error: MimoDataError) -> Callable[[], Record]:
    def make() -> Record:
        raise error

    return make


def iter_json_samples(path: Path, what: str = "file") -> Iterator[tuple[str, int, object]]:
    """``(where, index, sample)`` for a JSON list or a JSONL file.

    A malformed JSON file raises at once (naming line and column); a malformed JSONL line
    yields an ``MimoDataError`` as its sample, so the line can be skipped.
    """
    if not path.is_file():
        raise MimoDataError(f"{what} not found", path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        index = 0
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield where, index, json.loads(line)
            except json.JSONDecodeError as exc:
                yield (
                    where,
                    index,
                    MimoDataError(f"line {lineno}: malformed JSON ({exc.msg}, column {exc.colno})", path),
                )
            index += 1
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MimoDataError(
            f"malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", path
        ) from None
    if not isinstance(data, list):
        raise MimoDataError(f"expected a JSON list of samples, got a JSON {type(data).__name__}", path)
    for i, sample in enumerate(data):
        yield f"{path}: sample {i}", i, sample


def resolve_under(root: Path, rel: object, where: str, field_name: str, *, must_exist: bool = True) -> Path:
    """``root / rel``, refusing absolute paths and paths that leave ``root`` (``../``)."""
    if not isinstance(rel, str) or not rel.strip():
        raise MimoDataError(f"{where}: field {field_name!r} must be a non-empty relative path, got {rel!r}")
    rel = rel.strip()
    p = Path(rel)
    root_resolved = root.resolve()
    target = (root / p).resolve()
    if p.is_absolute() or (target != root_resolved and root_resolved not in target.parents):
        raise MimoDataError(
            f"{where}: field {field_name!r} path {rel!r} escapes the root {root}; expected a path inside it"
        )
    if must_exist and not target.is_file():
        raise MimoDataError(f"{where}: field {field_name!r}: file {rel!r} not found under {root}")
    return root / p


def load_binary_mask(path: Path, where: str) -> np.ndarray:
    """A mask PNG as a boolean array (any non-zero value is foreground, as MedPLIB reads it),
    read by ``mimo.core.images`` (formats by content, size limits from the header)."""
    try:
        return read_raster(path, mask=True) > 0
    except ImageError as exc:
        raise MimoDataError(f"{where}: mask {exc}") from None


def image_size(path: Path, where: str) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header, within the size limits."""
    try:
        return image_header(path)
    except ImageError as exc:
        raise MimoDataError(f"{where}: image {exc}") from None


def copy_image(src: Path, out_dir: Path | None, rel: Path) -> str:
    """Copy ``src`` to ``out_dir/rel`` (atomically; kept if already there with the same bytes)
    and return ``rel`` as a POSIX path. Another image already at ``rel`` (two sources whose
    files share a name, e.g. two ``test.json``) is an error, not a silent swap of images."""
    if out_dir is not None:
        dst = Path(out_dir) / rel
        if dst.exists():
            if not filecmp.cmp(src, dst, shallow=False):
                raise MimoDataError(
                    f"{src}: its copy would go to {dst}, which holds another image (two sources with "
                    "the same name? give one of them name=...)"
                )
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            files.atomic_save(dst, lambda partial: shutil.copyfile(src, partial))
    return rel.as_posix()


# SA-Med2D-20M file names: <modality>_<nn>--<dataset>--<case>--<axis>_<index>.png (2D: 2d_none)
MODALITY_PREFIXES = {
    "ct": "CT",
    "mr": "MR",
    "x": "XR",
    "xray": "XR",
    "x_ray": "XR",
    "pet": "PET",
    "ultrasound": "US",
    "us": "US",
    "endoscopy": "endoscopy",
    "dermoscopy": "dermoscopy",
    "fundus": "fundus",
    "fundus_photography": "fundus",
}


@dataclass(frozen=True)
class SAMed2DName:
    """The parts of an SA-Med2D-style file stem."""

    modality_tag: str  # as written, e.g. ct_00, x_ray
    modality: str  # one of mimo.data.case.MODALITIES
    dataset: str | None
    case: str | None
    slice: tuple[int, int] | None  # (axis, index); None for 2d_none

    @property
    def patient(self) -> str | None:
        return f"{self.dataset}--{self.case}" if self.dataset and self.case else None


def parse_samed2d_name(stem: str) -> SAMed2DName:
    """Split an SA-Med2D file stem; names without ``--`` give modality ``other``."""
    parts = stem.split("--")
    tag = parts[0]
    base = re.sub(r"_\d+$", "", tag).lower()
    modality = MODALITY_PREFIXES.get(base) or MODALITY_PREFIXES.get(base.split("_")[0], "other")
    if base.startswith("mr"):
        modality = "MR"
    if len(parts) < 4:
        return SAMed2DName(tag, modality if len(parts) > 1 else "other", None, None, None)
    m = re.fullmatch(r"([xyz])_(\d+)", parts[3])
    sl = ("xyz".index(m.group(1)), int(m.group(2))) if m else None
    return SAMed2DName(tag, modality, parts[1], parts[2], sl)
