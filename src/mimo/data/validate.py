"""``mimo data validate``: every record of a file checked against its image and masks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.core.images import ImageError, read_raster
from mimo.core.records import describe_validation_error, not_utf8, text_lines
from mimo.core.schema import SEG_TOKEN, BoxRegion, MaskRegion, PointRegion, Record, ScribbleRegion


@dataclass
class ValidationReport:
    """What ``validate_records`` found. ``problems`` maps ``"line N (id)"`` to messages."""

    path: str
    n_records: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, key: str, message: str) -> None:
        self.problems.setdefault(key, []).append(message)

    def summary(self) -> str:
        """A human-readable summary, one problem per line."""
        if self.ok:
            return f"{self.path}: {self.n_records} record(s), no problems"
        lines = [f"{self.path}: {self.n_records} record(s), {len(self.problems)} with problems"]
        for key, msgs in self.problems.items():
            lines.extend(f"  {key}: {m}" for m in msgs)
        return "\n".join(lines)


def _image_size(path: Path, cache: dict[Path, tuple[int, int] | str]) -> tuple[int, int] | str:
    """(height, width) of an image file, decoded whole (within the image limits, through
    ``mimo.core.images``) so that a truncated file is found, or an error string; cached per path."""
    if path not in cache:
        if not path.is_file():
            cache[path] = f"image file not found: {path}"
        else:
            try:
                cache[path] = read_raster(path).shape[:2]
            except ImageError as exc:
                cache[path] = f"image file not readable: {exc}"
    return cache[path]


def _check_region(region, j: int, hw: tuple[int, int] | None, key: str, report: ValidationReport) -> None:
    if hw is None:
        return
    h, w = hw

    def inside(x: float, y: float) -> bool:
        return 0 <= x <= w and 0 <= y <= h

    if isinstance(region, PointRegion):
        pts = region.points
    elif isinstance(region, BoxRegion):
        x0, y0, x1, y1 = region.box
        pts = [(x0, y0), (x1, y1)]
    elif isinstance(region, ScribbleRegion):
        pts = [p for stroke in region.strokes for p in stroke]
    else:
        pts = []
    bad = [p for p in pts if not inside(*p)]
    if bad:
        report.add(key, f"regions[{j}] ({region.type}): point {list(bad[0])} outside the image {w}x{h} (WxH)")


def _inside(root: Path, rel: str) -> bool:
    """Whether ``rel`` names a path inside ``root`` (not absolute, no ``..`` escape)."""
    if Path(rel).is_absolute():
        return False
    base = root.resolve()
    target = (root / rel).resolve()
    return target == base or base in target.parents


def validate_records(path: str | Path, image_root: str | Path | None = None) -> ValidationReport:
    """Check every record of a JSONL file against its image and masks.

    For each record: the JSON parses and matches the schema; the image lies inside the
    dataset folder (no absolute path, no ``..`` escape), exists and is readable; every mask decodes and has the image's size; every mask named by a ``<SEG>``
    is non-empty; every region lies inside the image; mask regions name decodable masks.
    Images are resolved relative to ``image_root`` (default: the records file's folder).

    Returns:
        A ``ValidationReport`` listing problems per ``line N (record id)``; never raises for
        problems inside the file (only if the file itself is missing).
    """
    path = Path(path)
    if not path.is_file():
        raise MimoDataError("records file not found", path)
    root = Path(image_root) if image_root is not None else path.parent
    report = ValidationReport(path=str(path))
    size_cache: dict[Path, tuple[int, int] | str] = {}
    seen_ids: dict[str, int] = {}
    with text_lines(path) as fh:
        for lineno, line in fh:
            if not line.strip():
                continue
            report.n_records += 1
            key = f"line {lineno}"
            if isinstance(line, UnicodeDecodeError):
                report.add(key, not_utf8(line))
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                report.add(key, f"malformed JSON ({exc.msg} at column {exc.colno})")
                continue
            rid = obj.get("id") if isinstance(obj, dict) else None
            if rid is not None:
                key = f"line {lineno} ({rid})"
            try:
                rec = Record.model_validate(obj)
            except ValidationError as exc:
                report.add(key, f"schema violation: {describe_validation_error(exc)}")
                continue
            if rec.id in seen_ids:
                report.add(key, f"duplicate id, first seen on line {seen_ids[rec.id]}")
            else:
                seen_ids[rec.id] = lineno
            hw: tuple[int, int] | None = None
            if rec.image is not None and not _inside(root, rec.image):
                report.add(key, f"image {rec.image!r} is outside the dataset folder {root}")
            elif rec.image is not None:
                size = _image_size(root / rec.image, size_cache)
                if isinstance(size, str):
                    report.add(key, size)
                else:
                    hw = size
            elif rec.masks or rec.regions:
                report.add(key, "record has masks or regions but no 'image'")
            decoded: dict[str, np.ndarray] = {}
            for mkey, m in rec.masks.items():
                if hw is not None and tuple(m.size) != hw:
                    report.add(key, f"masks[{mkey!r}]: size {list(m.size)} but image is {list(hw)} (HxW)")
                try:
                    decoded[mkey] = rle.decode(m)
                except Exception as exc:  # pycocotools raises various types
                    report.add(key, f"masks[{mkey!r}]: does not decode as COCO RLE ({exc})")
            for i, turn in enumerate(rec.conversations):
                if turn.from_ != "gpt" or SEG_TOKEN not in turn.value:
                    continue
                for mkey in turn.masks or []:
                    if mkey in decoded and not decoded[mkey].any():
                        report.add(key, f"conversations[{i}]: <SEG> mask {mkey!r} is empty")
            for j, region in enumerate(rec.regions):
                if isinstance(region, MaskRegion):
                    if region.mask in decoded and not decoded[region.mask].any():
                        report.add(key, f"regions[{j}]: mask region {region.mask!r} is empty")
                else:
                    _check_region(region, j, hw, key, report)
    if report.n_records == 0:
        report.add("file", "no records (an empty records file)")
    return report
