"""COCO JSON instance segmentation (polygons, uncompressed or compressed RLE).

All annotations of one category on one image are merged into one mask named after the
category. Images are looked up relative to ``image_root`` (default: the JSON's folder,
then its ``images/`` sub-folder).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mimo.core.errors import MimoDataError
from mimo.data.case import MODALITIES, Case
from mimo.data.interop.common import resolve_under
from mimo.data.readers.base import CaseRef, Listing, iter_listing, load_json, patient_id_from
from mimo.data.readers.folder2d import load_image


def list_coco(
    path: str | Path,
    *,
    image_root: str | None = None,
    modality: str = "other",
    patient_regex: str | None = None,
    kind: str = "coco",
) -> Listing:
    """List the annotated images of a COCO JSON file.

    A patient id is taken from ``images[].patient_id`` when present, else from the file
    name (``patient_regex``, default the file stem).
    """
    jp = Path(path)
    data = load_json(jp, "COCO annotation file")
    if not isinstance(data, dict):
        raise MimoDataError(f"expected a JSON object, got {type(data).__name__}", jp)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise MimoDataError(f"missing or non-list field {key!r}", jp)
    if modality not in MODALITIES:
        raise MimoDataError(f"option modality={modality!r}: expected one of {', '.join(MODALITIES)}")
    cats = {}
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise MimoDataError(f"field 'categories'[{i}]: expected an object with 'id' and 'name'", jp)
        cats[c["id"]] = str(c["name"])
    anns_by_image: dict[object, list[dict]] = {}
    for i, a in enumerate(data["annotations"]):
        if (
            not isinstance(a, dict)
            or "image_id" not in a
            or "category_id" not in a
            or "segmentation" not in a
        ):
            raise MimoDataError(
                f"field 'annotations'[{i}]: expected 'image_id', 'category_id' and 'segmentation'", jp
            )
        if a["category_id"] not in cats:
            raise MimoDataError(
                f"field 'annotations'[{i}].category_id: {a['category_id']!r} is not in 'categories'", jp
            )
        anns_by_image.setdefault(a["image_id"], []).append(a)
    roots = [Path(image_root)] if image_root else [jp.parent, jp.parent / "images"]
    refs = []
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise MimoDataError(f"field 'images'[{i}]: expected an object with 'id' and 'file_name'", jp)
        anns = anns_by_image.get(im["id"])
        if not anns:
            continue
        where = f"{jp}: field 'images'[{i}]"
        candidates = [resolve_under(r, im["file_name"], where, "file_name", must_exist=False) for r in roots]
        fp = next((c for c in candidates if c.is_file()), candidates[0])
        stem = Path(im["file_name"]).stem
        pid = str(im.get("patient_id") or patient_id_from(stem, patient_regex))
        load = functools.partial(
            _load_case,
            case_id=stem,
            patient_id=pid,
            image_path=str(fp),
            image_info={k: im.get(k) for k in ("height", "width")},
            anns=[{k: a[k] for k in ("segmentation", "category_id")} for a in anns],
            cats=cats,
            modality=modality,
            source=f"{kind}:{jp.stem}",
            json_path=str(jp),
        )
        refs.append(CaseRef(stem, pid, (str(fp),), load))
    if not refs:
        raise MimoDataError("empty dataset: no image has annotations", jp)
    return Listing(refs=refs)


def _ann_mask(seg: object, h: int, w: int, where: str) -> np.ndarray:
    from pycocotools import mask as mask_utils

    try:
        if isinstance(seg, list):  # polygons
            polys = [p for p in seg if isinstance(p, list) and len(p) >= 6]
            if not polys:
                raise ValueError("no polygon with at least 3 points")
            rles = mask_utils.frPyObjects(polys, h, w)
            rle = mask_utils.merge(rles)
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, h, w)
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), str):
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
            if list(seg["size"]) != [h, w]:
                raise ValueError(f"RLE size {seg['size']} but image is {[h, w]} (HxW)")
        else:
            raise ValueError("expected polygons or an RLE object")
        return mask_utils.decode(rle).astype(bool)
    except Exception as exc:  # pycocotools raises several types
        raise MimoDataError(f"{where}: segmentation not readable ({exc})") from None


def _load_case(
    *,
    case_id: str,
    patient_id: str,
    image_path: str,
    image_info: dict,
    anns: list[dict],
    cats: dict,
    modality: str,
    source: str,
    json_path: str,
) -> Case:
    image = load_image(Path(image_path))
    h, w = image.shape[:2]
    if image_info.get("height") not in (None, h) or image_info.get("width") not in (None, w):
        raise MimoDataError(
            f"image {Path(image_path).name} is {w}x{h} but the JSON says "
            f"{image_info.get('width')}x{image_info.get('height')} (WxH)",
            json_path,
        )
    labels: dict[str, np.ndarray] = {}
    for a in anns:
        name = cats[a["category_id"]]
        m = _ann_mask(a["segmentation"], h, w, f"{json_path}: annotation on {Path(image_path).name}")
        labels[name] = labels[name] | m if name in labels else m
    return Case(
        case_id=case_id,
        patient_id=patient_id,
        image=image,
        labels=labels,
        spacing=(1.0, 1.0),
        modality=modality,
        source=source,
        meta={"image_file": image_path},
    )


def read_coco(path: str | Path, **options) -> Iterator[Case]:
    """Yield one case per annotated image of a COCO JSON file (see ``list_coco``)."""
    return iter_listing(list_coco(path, **options))
