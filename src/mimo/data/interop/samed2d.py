"""SA-Med2D-20M (Ye et al., OpenGVLab/SAM-Med2D): a segmentation source read as cases.

The published form: 2D PNG slices named ``<modality>_<nn>--<dataset>--<case>--<axis>_<index>.png``
(``ct_00--AbdomenCT1K--Case_00001--x_0061.png``; 2D sources end in ``--2d_none``) under
``images/``, one binary PNG per object under ``masks/`` named ``<image stem>--<label>_<id>.png``
(``..._x_0061--liver_000.png``), and a JSON mapping each image path to the list of its mask
paths (``SAMed2D_v1.json``, "image2label"); paths are relative to the dataset root. The
inverse "label2image" JSON (mask path -> image path) of the repository's demo is read too,
as are demo names joined by ``_`` (``amos_0004_75_liver_000.png``).

Each image is one ``Case`` (label = the mask name without the image stem and the ``_<id>``
instance suffix; several instances of a label are merged), so the builder's perspective
generator makes I-IV records from it, split by patient (``<dataset>--<case>``). The
modality comes from the name's prefix.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from mimo.data.case import Case
from mimo.data.errors import MimoDataError
from mimo.data.interop.common import parse_samed2d_name, resolve_under
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


def _find_json(root: Path, json_opt: str | None) -> Path:
    if json_opt:
        p = Path(json_opt)
        return p if p.is_absolute() or p.exists() else root / p
    for candidate in ("SAMed2D_v1.json", "image2label_train.json", "image2label.json"):
        if (root / candidate).is_file():
            return root / candidate
    files = sorted(root.glob("*.json"))
    if len(files) == 1:
        return files[0]
    raise MimoDataError("expected json=FILE (the image -> masks JSON, e.g. SAMed2D_v1.json)", root)


def list_samed2d(
    path: str | Path,
    *,
    json: str | None = None,
    kind: str = "samed2d",
    spacing: float = 1.0,  # noqa: A002
) -> Listing:
    """List the images of an SA-Med2D-20M root (see the module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise MimoDataError("SA-Med2D root folder not found", root)
    json_path = _find_json(root, json)
    data = load_json(json_path, "SA-Med2D JSON")
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
        )
        refs.append(CaseRef(case_id, parsed.patient or stem, (str(json_path),), load))
    return Listing(refs=refs)


def _load_case(*, root, json_path, image, masks, case_id, patient_id, modality, source, spacing) -> Case:
    from mimo.data.readers.folder2d import load_image

    root = Path(root)
    where = f"{json_path}: entry {image!r}"
    img = load_image(resolve_under(root, image, where, "image"))
    labels: dict[str, np.ndarray] = {}
    stem = Path(image).stem
    for mp in masks:
        label, _ = label_of(mp, stem)
        m = load_image(resolve_under(root, mp, where, "mask"), mask=True) > 0
        if m.shape != img.shape[:2]:
            raise MimoDataError(
                f"{where}: mask {mp!r} is {m.shape[1]}x{m.shape[0]} but the image is {img.shape[1]}x{img.shape[0]} (WxH)"
            )
        labels[label] = labels[label] | m if label in labels else m
    return Case(
        case_id=case_id,
        patient_id=patient_id,
        image=img,
        labels=labels,
        spacing=(spacing, spacing),
        modality=modality,
        source=source,
        meta={"image_file": str(root / image)},
    )


def read_samed2d(path: str | Path, **options):
    """Yield the cases of an SA-Med2D-20M root (see ``list_samed2d``)."""
    return iter_listing(list_samed2d(path, **options))
