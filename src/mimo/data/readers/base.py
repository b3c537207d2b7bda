"""What readers share: lazy case references, JSON/label-file loading, patient ids."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimo.core.errors import MimoDataError
from mimo.data.case import MODALITIES, Case


@dataclass(frozen=True)
class CaseRef:
    """A case found by a reader's listing, not loaded yet.

    ``load`` must be picklable (a module-level function or ``functools.partial`` of one)
    so that the builder can load cases inside worker processes: memory then scales with
    the cases in flight, not with the dataset.

    Attributes:
        case_id: unique within the source.
        patient_id: the patient the case belongs to.
        files: the files the case is read from (for error messages).
        load: ``() -> Case``.
    """

    case_id: str
    patient_id: str
    files: tuple[str, ...]
    load: Callable[[], Case]


@dataclass
class Listing:
    """A reader's listing of a source: its case references plus source-wide facts.

    Attributes:
        refs: the cases, in a deterministic order.
        declared_labels: ``{label_file: {raw name: id or None}}`` the names a label file
            declares; after the build every one must have been present in some case.
        absent_labels_warn: a declared name that no case holds is a warning, not an error
            (nnU-Net/MSD: ``dataset.json`` names every structure of the whole dataset).
    """

    refs: list[CaseRef]
    declared_labels: dict[str, dict[str, object]] = field(default_factory=dict)
    absent_labels_warn: bool = False


def iter_listing(listing: Listing) -> Iterator[Case]:
    """Load the cases of a listing one by one."""
    for ref in listing.refs:
        yield ref.load()


def load_json(path: Path, what: str = "JSON file") -> object:
    """Load a JSON file; errors name the file, line and column."""
    if not path.is_file():
        raise MimoDataError(f"{what} not found", path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MimoDataError(
            f"malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", path
        ) from None
    except UnicodeDecodeError as exc:
        raise MimoDataError(f"not UTF-8 text ({exc})", path) from None


def patient_id_from(name: str, regex: str | None) -> str:
    """The patient id of a case name: group ``patient`` (or group 1, or the whole match) of
    ``regex`` searched in ``name``; the name itself without a regex or on no match."""
    if not regex:
        return name
    m = re.search(regex, name)
    if not m:
        return name
    if "patient" in m.groupdict():
        return m.group("patient")
    return m.group(1) if m.groups() else m.group(0)


def normalise_modality(raw: str | None, default: str = "other") -> str:
    """Map a dataset's channel/modality name (``CT``, ``T2``, ``FLAIR``, ``MRI`` ...) to ``MODALITIES``."""
    if raw is None:
        return default
    s = str(raw).strip()
    for m in MODALITIES:
        if s.lower() == m.lower():
            return m
    up = s.upper()
    if up in {"CT", "CTA", "NCCT", "CECT"}:
        return "CT"
    if up.startswith("MR") or any(
        t in up for t in ("T1", "T2", "FLAIR", "ADC", "DWI", "PD", "SWI", "BOLD", "CINE", "DIXON")
    ):
        return "MR"
    if up in {"PT", "PET", "SUV"}:
        return "PET"
    if up in {"XR", "CR", "DX", "X-RAY", "XRAY"}:
        return "XR"
    if up in {"US", "ULTRASOUND"}:
        return "US"
    return default


def parse_label_map(obj: object, path: Path, field_name: str = "labels") -> dict[str, list[int]]:
    """Parse a label map into ``{name: [ids]}`` (background dropped).

    Accepts MSD's ``{"0": "background", "1": "liver"}`` (id -> name), nnU-Net v2's
    ``{"background": 0, "liver": 1}`` (name -> id) and nnU-Net v2 region labels
    ``{"whole tumor": [1, 2, 3]}`` (name -> ids).
    """
    if not isinstance(obj, dict) or not obj:
        raise MimoDataError(
            f"field {field_name!r}: expected a non-empty object mapping names to ids "
            f"(nnU-Net v2) or ids to names (MSD), got {type(obj).__name__}",
            path,
        )
    out: dict[str, list[int]] = {}
    id_to_name = all(_is_int(k) for k in obj) and all(isinstance(v, str) for v in obj.values())
    for k, v in obj.items():
        if id_to_name:
            name, ids = v, [int(k)]
        else:
            name = str(k)
            vals = v if isinstance(v, list | tuple) else [v]
            if not vals or not all(_is_int(x) for x in vals):
                raise MimoDataError(
                    f"field {field_name!r}: label {k!r} maps to {v!r}; expected an integer id or a list of ids",
                    path,
                )
            ids = [int(x) for x in vals]
        if name.lower() in {"background", "bg", "_background_", "clear label"} or ids == [0]:
            continue
        if any(i < 0 for i in ids):
            raise MimoDataError(f"field {field_name!r}: label {name!r} has a negative id {ids}", path)
        out[name] = ids
    if not out:
        raise MimoDataError(f"field {field_name!r}: no foreground labels (only background)", path)
    return out


def _is_int(x: object) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    return isinstance(x, str) and x.strip().lstrip("-").isdigit()


def read_label_file(path: Path) -> dict[str, list[int]]:
    """A label file for label-map masks: JSON (any ``parse_label_map`` form, optionally under
    a ``labels`` key) or text with one ``id name`` / ``id: name`` / ``id,name`` per line."""
    if path.suffix.lower() == ".json":
        obj = load_json(path, "label file")
        if isinstance(obj, dict) and "labels" in obj and isinstance(obj["labels"], dict):
            obj = obj["labels"]
        return parse_label_map(obj, path)
    if not path.is_file():
        raise MimoDataError("label file not found", path)
    mapping: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^(-?\d+)\s*[:,=\t ]\s*(.+)$", line)
        if not m:
            raise MimoDataError(f"line {lineno}: expected 'id name' (e.g. '1 liver'), got {line!r}", path)
        mapping[m.group(1)] = m.group(2).strip()
    return parse_label_map(mapping, path)


def masks_from_label_map(
    label_map: np.ndarray,
    labels: dict[str, list[int]],
    *,
    label_path: str | Path,
    labels_source: str | Path,
) -> dict[str, np.ndarray]:
    """Split an integer label map into one boolean mask per named label.

    Raises:
        MimoDataError: naming the label file when it holds a value that ``labels_source``
            does not name (or a non-integer value).
    """
    arr = np.asarray(label_map)
    if arr.dtype.kind == "f":
        rounded = np.rint(arr)
        if not np.allclose(arr, rounded, atol=1e-3):
            raise MimoDataError("label map holds non-integer values; expected integer label ids", label_path)
        arr = rounded.astype(np.int64)
    values = set(np.unique(arr).tolist())
    known = {i for ids in labels.values() for i in ids} | {0}
    unknown = sorted(values - known)
    if unknown:
        raise MimoDataError(
            f"contains label value(s) {unknown} that {Path(labels_source).name} does not name "
            f"(it names {sorted(known - {0})})",
            label_path,
        )
    return {name: np.isin(arr, ids) for name, ids in labels.items()}


def check_declared_present(
    declared: dict[str, dict[str, object]], present: Iterable[str]
) -> list[MimoDataError]:
    """Errors for every declared label name that no case contained."""
    seen = set(present)
    errors = []
    for label_file, names in declared.items():
        missing = [n for n in names if n not in seen]
        if missing:
            desc = ", ".join(f"{n!r} (id {names[n]})" if names[n] is not None else repr(n) for n in missing)
            errors.append(
                MimoDataError(
                    f"names label(s) {desc} that no label volume of this source contains", label_file
                )
            )
    return errors


class VolumeCase(Case):
    """A ``Case`` that is known to hold a 3D volume (it has an affine).

    ``Case.is_volume`` guesses from the shape and takes a volume with exactly three slices
    on its last axis for an RGB image; volume readers use this subclass so that thin
    volumes (e.g. a three-frame DICOM SEG) are not mistaken for colour images.
    """

    @property
    def is_volume(self) -> bool:
        return self.image.ndim == 3 and (self.affine is not None or self.image.shape[-1] != 3)
