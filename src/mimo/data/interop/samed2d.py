"""SA-Med2D-20M (Ye et al., OpenGVLab/SAM-Med2D): a segmentation source read as cases.

The release (``SAMed2Dv1/`` of the Hugging Face / OpenXLab archive): 2D PNG slices named
``<modality>_<nn>--<dataset>--<case>--<axis>_<index>.png`` (``ct_00--AbdomenCT1K--Case_00011--
x_0040.png``; 2D sources end in ``--2d_none``) under ``images/``; one binary PNG per object
instance under ``masks/`` named ``<image stem>--<class id, 4 digits>_<instance, 3 digits>.png``
(``ct_00--AbdomenCT1K--Case_00011--x_0041--0000_001.png``); ``SAMed2D_v1.json`` maps each image
path to the list of its mask paths (paths relative to ``SAMed2Dv1/``); and
``SAMed2D_v1_class_mapping_id.json`` turns class ids into names per source dataset:
``{dataset: {class name: class id}}``. Class names beginning ``union_`` are unions of other
classes of the same dataset (e.g. both kidneys); their masks repeat pixels of their parts and
are skipped. Both JSON files are looked for beside each other, in the root and in
``annotations/`` (where some loaders move them); options ``json=`` / ``classes=`` name them
(relative to PATH or absolute).

The GitHub demo's form (``data_demo/`` of the repository) is read too: masks named
``<image stem>_<label>_<id>.png`` (``amos_0004_75_liver_000.png``) or ``<image stem>--<label>_<id>.png``
with the class name in the file name, ``image2label_train.json`` and the inverse
``label2image_test.json`` (mask path -> image path), whose paths start at the repository root
(``data_demo/images/...``; read with PATH = ``data_demo``).

Each image is one ``Case``: the instances of one class are merged into one structure mask;
their number is kept in ``case.meta["instances"]`` (``{label: count}``) so that "how many"
questions count instances, not touching blobs. The builder's perspective generator makes
I-IV records from it, split by patient (``<dataset>--<case>``); the modality comes from the
name's prefix. Masks whose class maps to no structure the knowledge base knows make the
build fail (``mimo.data.build``), never a build with zero records.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from pathlib import Path

import numpy as np

from mimo.core.errors import MimoDataError
from mimo.data.case import Case
from mimo.data.interop.common import parse_samed2d_name, resolve_under, source_file
from mimo.data.readers.base import CaseRef, Listing, iter_listing, load_json


def label_of(mask_path: str, image_stem: str) -> tuple[str, str]:
    """``(label, instance id)`` of a mask file name, given its image's stem."""
    stem = Path(mask_path).stem
    for sep in ("--", "_"):
        if stem.startswith(image_stem + sep):
            rest = stem[len(image_stem) + len(sep) :]
            break
    else:
        raise MimoDataError(
            f"mask {mask_path!r} is not named after its image {image_stem!r}; expected {image_stem}--<label>_<id>.png"
        )
    m = re.fullmatch(r"(.+?)_(\d+)", rest)
    return (m.group(1), m.group(2)) if m else (rest, "")


INDEX_NAMES = ("SAMed2D_v1.json", "image2label_train.json", "image2label.json")
CLASSES_NAME = "SAMed2D_v1_class_mapping_id.json"


def _find_json(root: Path, json_opt: str | None) -> Path:
    if json_opt:
        return source_file(root, json_opt)
    for folder in (root, root / "annotations"):
        for candidate in INDEX_NAMES:
            if (folder / candidate).is_file():
                return folder / candidate
    files = sorted(p for p in root.glob("*.json") if p.name != CLASSES_NAME)
    if len(files) == 1:
        return files[0]
    raise MimoDataError("expected json=FILE (the image -> masks JSON, e.g. SAMed2D_v1.json)", root)


def load_class_names(path: Path) -> dict[str, dict[int, str]]:
    """``SAMed2D_v1_class_mapping_id.json`` (``{dataset: {class name: class id}}``) as
    ``{dataset: {class id: class name}}``."""
    data = load_json(path, "SA-Med2D class mapping")
    if not isinstance(data, dict):
        raise MimoDataError("expected a JSON object {dataset: {class name: class id}}", path)
    out: dict[str, dict[int, str]] = {}
    for dataset, classes in data.items():
        if not isinstance(classes, dict):
            raise MimoDataError(f"dataset {dataset!r}: expected an object {{class name: class id}}", path)
        ids: dict[int, str] = {}
        for cname, cid in classes.items():
            if isinstance(cid, bool) or not str(cid).strip().isdigit():
                raise MimoDataError(
                    f"dataset {dataset!r}, class {cname!r}: id {cid!r} is not a whole number", path
                )
            ids[int(str(cid))] = str(cname)
        out[str(dataset)] = ids
    return out


def _find_classes(root: Path, json_path: Path, classes_opt: str | None) -> Path | None:
    if classes_opt:
        path = source_file(root, classes_opt)
        if not path.is_file():
            raise MimoDataError("class mapping file (classes=) not found", path)
        return path
    for folder in (json_path.parent, root, root / "annotations"):
        if (folder / CLASSES_NAME).is_file():
            return folder / CLASSES_NAME
    return None


def _mapping(data: object, json_path: Path) -> dict[str, list[str]]:
    """``{image path: [mask paths]}`` from image2label (or the demo's label2image) JSON."""
    if not isinstance(data, dict):
        raise MimoDataError("expected a JSON object {image path: [mask paths]}", json_path)
    mapping: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, list):
            mapping.setdefault(key, []).extend(value)
        elif isinstance(value, str):  # label2image: mask -> image
            mapping.setdefault(value, []).append(key)
        else:
            raise MimoDataError(f"entry {key!r}: expected a list of mask paths (or an image path)", json_path)
    return mapping


def _check_ids_resolvable(mapping: dict[str, list[str]], classes: Path | None, json_path: Path) -> None:
    """Numeric class ids (the release's mask names) need the class mapping: refused before any
    work, judged from the first image that has masks."""
    if classes is not None:
        return
    image, masks = next(((i, m) for i, m in mapping.items() if m), (None, []))
    if image is None:
        return
    label, _ = label_of(masks[0], Path(image).stem)
    if label.isdigit():
        raise MimoDataError(
            f"mask {masks[0]!r} names class id {label} but no {CLASSES_NAME} was found (beside the JSON, "
            "in the root or in annotations/); give classes=FILE",
            json_path,
        )


def list_samed2d(
    path: str | Path,
    *,
    json: str | None = None,  # noqa: A002
    classes: str | None = None,
    kind: str = "samed2d",
    spacing: float = 1.0,
) -> Listing:
    """List the images of an SA-Med2D-20M root (see the module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise MimoDataError("SA-Med2D root folder not found", root)
    json_path = _find_json(root, json)
    mapping = _mapping(load_json(json_path, "SA-Med2D JSON"), json_path)
    classes_path = _find_classes(root, json_path, classes)
    _check_ids_resolvable(mapping, classes_path, json_path)
    class_names = load_class_names(classes_path) if classes_path else {}
    refs = []
    seen: set[str] = set()
    for image, masks in mapping.items():
        stem = Path(image).stem
        parsed = parse_samed2d_name(stem)
        case_id = stem if stem not in seen else f"{stem}_{len(seen)}"
        seen.add(case_id)
        load = functools.partial(
            _load_case,
            root=str(root),
            json_path=str(json_path),
            image=image,
            masks=tuple(masks),
            case_id=case_id,
            patient_id=parsed.patient or stem,
            modality=parsed.modality,
            source=f"{kind}:{root.name}",
            spacing=float(spacing),
            classes=(str(classes_path), parsed.dataset, class_names.get(parsed.dataset or "")),
        )
        refs.append(CaseRef(case_id, parsed.patient or stem, (str(json_path),), load))
    return Listing(refs=refs)


def _under(root: Path, rel: object, where: str, field: str) -> Path:
    """A JSON path under ``root``. The GitHub demo's JSON names paths from the repository root
    (``data_demo/images/x.png``, read with PATH = ``data_demo``): a leading folder equal to
    ``root``'s own name is dropped when the path does not exist as written."""
    if isinstance(rel, str):
        parts = Path(rel.strip()).parts
        if len(parts) > 1 and parts[0] == root.name and not (root / rel.strip()).exists():
            rel = Path(*parts[1:]).as_posix()
    return resolve_under(root, rel, where, field)


def class_name(label: str, classes: tuple[str, str | None, dict[int, str] | None] | None, where: str) -> str:
    """The structure name of a mask's label: a numeric class id through the class mapping
    (``classes`` = (mapping file, dataset, {id: name})), else the label itself."""
    if not label.isdigit():
        return label
    path, dataset, names = classes or (None, None, None)
    if not names or int(label) not in names:
        known = f"it names {sorted(names)}" if names else "it has no entry for this dataset"
        raise MimoDataError(f"{where}: class id {label} of dataset {dataset!r} is not in {path} ({known})")
    return names[int(label)]


def _load_case(
    *, root, json_path, image, masks, case_id, patient_id, modality, source, spacing, classes=None
) -> Case:
    from mimo.data.readers.folder2d import load_image

    root = Path(root)
    where = f"{json_path}: entry {image!r}"
    img = load_image(_under(root, image, where, "image"))
    labels: dict[str, np.ndarray] = {}
    instances: Counter[str] = Counter()
    unions = 0
    stem = Path(image).stem
    for mp in masks:
        raw, _ = label_of(mp, stem)
        label = class_name(raw, classes, f"{where}: mask {mp!r}")
        if label.startswith("union_"):
            unions += 1  # a union of other classes: its parts are masks of their own
            continue
        m = load_image(_under(root, mp, where, "mask"), mask=True) > 0
        if m.shape != img.shape[:2]:
            raise MimoDataError(
                f"{where}: mask {mp!r} is {m.shape[1]}x{m.shape[0]} but the image is {img.shape[1]}x{img.shape[0]} (WxH)"
            )
        labels[label] = labels[label] | m if label in labels else m
        instances[label] += 1
    return Case(
        case_id=case_id,
        patient_id=patient_id,
        image=img,
        labels=labels,
        spacing=(spacing, spacing),
        modality=modality,
        source=source,
        meta={"image_file": str(root / image), "instances": dict(instances), "union_masks_skipped": unions},
    )


def read_samed2d(path: str | Path, **options):
    """Yield the cases of an SA-Med2D-20M root (see ``list_samed2d``)."""
    return iter_listing(list_samed2d(path, **options))
