"""The registry of source kinds (``READERS``) and the readers' common entry points.

A source is written ``KIND:PATH[,key=value...]`` on the command line, e.g.
``nnunet:/data/Dataset218_AMOS,body_region=abdomen``. Each KIND is a ``SourceKind`` of one
of two kinds:

- ``case`` sources hold images with masks. Their reader is ``read_xxx(path, **options) ->
  Iterator[Case]``; readers of on-disk datasets also have ``list_xxx(path, **options) ->
  Listing`` (lazy, picklable case references) so that the builder can load cases inside
  worker processes, where the perspective generator turns each slice into records.
- ``record`` sources are published question/answer (or caption) sets whose samples already
  are records: ``read_xxx(root, out_dir, **options) -> InteropSource`` (``mimo.data.interop``),
  passed through by ``mimo.data.interop.build``.

The builder asks the registry which kind a source is; options are checked against the
reader's signature in one place (``reader_options``). ``vqa:FILE`` is an alias of
``llava-med:`` (``ALIASES``), kept for the builds written before the two importers were one.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mimo.core.errors import MimoDataError
from mimo.data.case import Case
from mimo.data.readers.base import CaseRef, Listing, load_json

CASE = "case"
RECORD = "record"


@dataclass(frozen=True)
class SourceKind:
    """One source KIND: where its reader (and optional lister) live, as ``module:function``
    strings, and what the builder does with it.

    Attributes:
        kind: ``"case"`` (cases through the perspective generator) or ``"record"`` (samples
            that already are records, passed through).
        needs_path: False for the bundled sources (``phantom:``, ``mni152:``).
        mixed: whether its records take part in the I:II:III:IV:VQA mix (caption records do not).
        help: one line for ``mimo data build --help`` (with ``(options: ...)``).
    """

    reader: str
    lister: str | None = None
    kind: str = CASE
    needs_path: bool = True
    mixed: bool = True
    help: str = ""

    def function(self) -> Callable:
        """The lister if there is one, else the reader."""
        return _resolve(self.lister or self.reader)


READERS: dict[str, SourceKind] = {
    "nnunet": SourceKind(
        "mimo.data.readers.nnunet:read_nnunet",
        "mimo.data.readers.nnunet:list_nnunet",
        help="nnU-Net v2 folder: dataset.json, imagesTr/, labelsTr/ (options: patient_regex, modality, body_region, channel)",
    ),
    "msd": SourceKind(
        "mimo.data.readers.nnunet:read_nnunet",
        "mimo.data.readers.nnunet:list_nnunet",
        help="Medical Segmentation Decathlon task folder, read as nnunet (options: patient_regex, modality, body_region, channel)",
    ),
    "per-structure": SourceKind(
        "mimo.data.readers.per_structure:read_per_structure",
        "mimo.data.readers.per_structure:list_per_structure",
        help="one mask per structure: CASE/ct.nii.gz + CASE/segmentations/NAME.nii.gz "
        "(options: image, masks_dir, patient_regex, modality, body_region)",
    ),
    "dicom": SourceKind(
        "mimo.data.readers.dicom:read_dicom",
        "mimo.data.readers.dicom:list_dicom",
        help="DICOM series + DICOM SEG files (folder, searched recursively) or one SEG file "
        "(options: patient_regex, modality, body_region)",
    ),
    "folder2d": SourceKind(
        "mimo.data.readers.folder2d:read_folder2d",
        "mimo.data.readers.folder2d:list_folder2d",
        help="images/ + masks/ (PNG/JPG), a mask per structure or label maps + a labels file (options: images, "
        "masks, labels, structure, modality, spacing, spacing_csv, mask_suffix, fill_holes, patient_regex, "
        "image_right, image_down)",
    ),
    "coco": SourceKind(
        "mimo.data.readers.coco:read_coco",
        "mimo.data.readers.coco:list_coco",
        help="COCO JSON with polygon or RLE segmentations (options: image_root, modality, patient_regex)",
    ),
    "samed2d": SourceKind(
        "mimo.data.interop.samed2d:read_samed2d",
        "mimo.data.interop.samed2d:list_samed2d",
        help="SA-Med2D-20M: images/, masks/, SAMed2D_v1.json, SAMed2D_v1_class_mapping_id.json (options: json, classes, spacing)",
    ),
    # public question/answer formats, passed through as records (mimo.data.interop)
    "mecovqa": SourceKind(
        "mimo.data.interop.mecovqa:read_mecovqa",
        kind=RECORD,
        help="MeCoVQA / -G / -G+ (MedPLIB) JSON; PATH is the SAMed2Dv1 image folder (options: json)",
    ),
    "llava-med": SourceKind(
        "mimo.data.interop.vqa_sets:read_llava_med",
        kind=RECORD,
        help="LLaVA-Med instruction / eval JSON(L), LLaVA-format VQA test files; PATH is the image folder (options: json)",
    ),
    "vqa-rad": SourceKind(
        "mimo.data.interop.vqa_sets:read_vqa_rad",
        kind=RECORD,
        help="VQA-RAD folder with 'VQA_RAD Dataset Public.json' (options: json, images)",
    ),
    "slake": SourceKind(
        "mimo.data.interop.vqa_sets:read_slake",
        kind=RECORD,
        help="SLAKE folder: train/validate/test.json + imgs/ (options: json, lang)",
    ),
    "pathvqa": SourceKind(
        "mimo.data.interop.vqa_sets:read_pathvqa",
        kind=RECORD,
        help="PathVQA CSV/JSON/parquet tables + images/<split>/, pickles refused (options: json)",
    ),
    "caption": SourceKind(
        "mimo.data.interop.captions:read_captions",
        kind=RECORD,
        mixed=False,
        help="image-caption pairs for stage-1 alignment: LLaVA / LLaVA-Med alignment JSON or an "
        "image,caption CSV/JSONL; PATH is the image folder (options: file, prompt, split, name)",
    ),
    "mni152": SourceKind(
        "mimo.data.sources.mni152:read_mni152",
        needs_path=False,
        help="bundled MNI152 T1 template, brain / grey / white matter masks (options: lesions, seed, resolution, slices)",
    ),
    "phantom": SourceKind(
        "mimo.data.sources.phantom:read_phantom",
        needs_path=False,
        help="bundled seeded phantoms: abdominal CT, chest X-ray, brain MRI (options: n, kinds, size, seed)",
    ),
}


ALIASES = {"vqa": "llava-med"}  # old name -> kind; see ``_vqa_alias``

COMMON_OPTIONS = (
    "every kind: name=, split=; segmentation kinds also max_slices=, stride=, max_side=, label_names=FILE"
)
RESERVED_OPTIONS = ("root", "out_dir", "kind")  # set by the builder, never by an option
TEXT_OPTIONS = ("json", "name", "split", "images")  # kept as text even when they look like numbers


def kinds_help() -> str:
    """The source kinds and their options, one line each (``mimo data build --help``)."""
    width = max(len(k) for k in READERS)
    lines = [f"{kind:<{width}}  {spec.help}" for kind, spec in READERS.items()]
    lines.append(
        f"{'vqa':<{width}}  alias of llava-med: vqa:FILE.json is llava-med:FOLDER,json=FILE.json with the "
        "images under image_root (default the file's folder), everything in split (default train) "
        "(options: image_root, name, split)"
    )
    return "Source kinds (KIND:PATH[,key=value...]; " + COMMON_OPTIONS + "):\n\n" + "\n".join(lines)


def _resolve(target: str) -> Callable:
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise MimoDataError(f"reader {target} is not available ({exc})") from None


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``KIND:PATH[,key=value...]`` source."""

    kind: str
    path: str | None
    options: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """A short file-system-safe name: ``kind-<folder name>``."""
        base = (
            str(self.options["name"])
            if self.options.get("name")
            else Path(self.path).name
            if self.path
            else ""
        )
        base = base.removesuffix(".json") or "default"
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in base)
        return f"{self.kind}-{safe}"

    @property
    def source_kind(self) -> SourceKind:
        """Its entry in the registry."""
        return READERS[self.kind]


def _coerce(value: str) -> object:
    low = value.lower()
    if low in {"true", "yes"}:
        return True
    if low in {"false", "no"}:
        return False
    if low in {"none", "null"}:
        return None
    for typ in (int, float):
        try:
            return typ(value)
        except ValueError:
            pass
    return value


def _parse_options(text: str, parts: list[str]) -> dict:
    opts = {}
    for part in parts:
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise MimoDataError(f"source {text!r}: option {part!r} is not key=value")
        opts[key.strip()] = _coerce(value.strip())
    return opts


def parse_source(text: str) -> SourceSpec:
    """Parse ``KIND:PATH[,key=value...]`` (or ``KIND[:,key=value...]`` for bundled sources).

    Raises:
        MimoDataError: for an unknown KIND or a malformed option.
    """
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in READERS and kind not in ALIASES:
        known = ", ".join([*READERS, *ALIASES])
        raise MimoDataError(
            f"source {text!r}: unknown kind {kind!r}; expected one of {known} (KIND:PATH[,key=value...])"
        )
    parts = rest.split(",") if sep else []
    has_path = bool(parts) and "=" not in parts[0]
    path = (parts[0].strip() or None) if has_path else None
    opts = _parse_options(text, parts[1 if has_path else 0 :])
    if (kind in ALIASES or READERS[kind].needs_path) and not path:
        raise MimoDataError(f"source {text!r}: kind {kind!r} needs a path (KIND:PATH)")
    if kind == "vqa":
        return _vqa_alias(text, path, opts)
    return SourceSpec(kind=kind, path=path, options=opts)


def _vqa_alias(text: str, path: str, opts: dict) -> SourceSpec:
    """``vqa:FILE[,image_root=DIR,name=NAME,split=SPLIT]`` read as ``llava-med:DIR,json=FILE``:
    the images are under ``image_root`` (default the file's folder), the source is named after
    the file, and all its records go to ``split`` (default train), as ``vqa:`` always did."""
    unknown = sorted(set(opts) - {"image_root", "name", "split"})
    if unknown:
        raise MimoDataError(
            f"source {text!r}: unknown option(s) {unknown}; vqa accepts ['image_root', 'name', 'split']"
        )
    file = Path(path)
    image_root = opts.get("image_root")
    root = Path(str(image_root)) if image_root else file.parent
    options = {
        "json": str(file.absolute()) if image_root else file.name,
        "name": str(opts.get("name") or file.stem),
        "split": str(opts.get("split") or "train"),
    }
    return SourceSpec(kind=ALIASES["vqa"], path=str(root), options=options)


def reader_options(spec: SourceSpec, fn: Callable | None = None) -> dict:
    """The options of ``spec`` for its reader (``fn``, default the kind's lister or reader),
    checked against the reader's signature: the one place where a source's options are
    validated. An option the reader does not take is a one-line error listing those it does."""
    fn = fn or spec.source_kind.function()
    params = inspect.signature(fn).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in spec.options if k in RESERVED_OPTIONS or (k not in params and not accepts_any)]
    if unknown:
        allowed = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "kind"]
        raise MimoDataError(
            f"source {spec.kind}:{spec.path or ''}: unknown option(s) {unknown}; {spec.kind} accepts {allowed}"
        )
    return {k: str(v) if k in TEXT_OPTIONS else v for k, v in spec.options.items()}


def _call(fn: Callable, spec: SourceSpec, *, kind_kw: bool):
    kwargs = reader_options(spec, fn)
    if kind_kw and "kind" in inspect.signature(fn).parameters:
        kwargs["kind"] = spec.kind
    try:
        if READERS[spec.kind].needs_path:
            return fn(spec.path, **kwargs)
        return fn(**kwargs) if spec.path is None else fn(spec.path, **kwargs)
    except TypeError as exc:
        raise MimoDataError(f"source {spec.kind}:{spec.path or ''}: bad options ({exc})") from None


def load_label_names(path: str | Path) -> dict[str, str]:
    """A ``label_names`` file: JSON ``{raw label name: name to use}``, e.g. ``{"3": "liver"}``."""
    p = Path(path)
    obj = load_json(p, "label_names file")
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        raise MimoDataError('expected a JSON object {"raw name": "name to use"}', p)
    return {str(k): v for k, v in obj.items()}


def _renamed(load: Callable[[], Case], names: dict[str, str]) -> Case:
    case = load()
    renamed: dict = {}
    for raw, mask in case.labels.items():
        new = names.get(raw, raw)
        renamed[new] = renamed[new] | mask if new in renamed else mask
    case.labels = renamed
    return case


def _split_label_names(spec: SourceSpec) -> tuple[SourceSpec, dict[str, str] | None]:
    if "label_names" not in spec.options:
        return spec, None
    opts = dict(spec.options)
    names = load_label_names(opts.pop("label_names"))
    return SourceSpec(spec.kind, spec.path, opts), names


def list_source(spec: SourceSpec) -> Listing | None:
    """The source's ``Listing`` if its reader can list lazily, else None.

    The option ``label_names=FILE`` (any kind) renames raw labels through a JSON map, for
    datasets whose labels are bare numbers or cryptic codes.
    """
    entry = READERS[spec.kind]
    if entry.lister is None:
        return None
    spec, names = _split_label_names(spec)
    listing = _call(_resolve(entry.lister), spec, kind_kw=True)
    if names:
        listing = Listing(
            refs=[
                CaseRef(r.case_id, r.patient_id, r.files, functools.partial(_renamed, r.load, names))
                for r in listing.refs
            ],
            declared_labels={
                f: {names.get(n, n): v for n, v in d.items()} for f, d in listing.declared_labels.items()
            },
            absent_labels_warn=listing.absent_labels_warn,
        )
    return listing


def read_source(spec: SourceSpec | str) -> Iterator[Case]:
    """Iterate the cases of a source (``SourceSpec`` or ``KIND:PATH[,...]`` string)."""
    if isinstance(spec, str):
        spec = parse_source(spec)
    entry = READERS[spec.kind]
    if entry.lister is not None:
        listing = list_source(spec)
        return (ref.load() for ref in listing.refs)
    spec, names = _split_label_names(spec)
    fn = _resolve(entry.reader)
    if names:
        return (_renamed(lambda c=c: c, names) for c in read_source(spec))
    if not entry.needs_path:
        # bundled sources take an options object or keywords; pass what the function accepts
        params = inspect.signature(fn).parameters
        if "options" in params and len(params) == 1:
            return fn(dict(spec.options, **({"path": spec.path} if spec.path else {})))
    return _call(fn, spec, kind_kw=False)


__all__ = [
    "ALIASES",
    "CASE",
    "READERS",
    "RECORD",
    "CaseRef",
    "Listing",
    "SourceKind",
    "SourceSpec",
    "list_source",
    "parse_source",
    "read_source",
    "reader_options",
]
