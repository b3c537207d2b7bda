"""One mask file per structure per case, as TotalSegmentator writes it::

    root/
      s0001/ct.nii.gz
      s0001/segmentations/liver.nii.gz
      s0001/segmentations/kidney_left.nii.gz
      ...

The structure name is the mask file's name without ``.nii.gz``; the image is ``ct.nii.gz``
(or ``image=...``, or the only NIfTI file at the top of the case folder).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mimo.core.errors import MimoDataError
from mimo.data.case import Case
from mimo.data.imaging import load_nifti
from mimo.data.readers.base import (
    CaseRef,
    Listing,
    VolumeCase,
    iter_listing,
    normalise_modality,
    patient_id_from,
)

NIFTI_ENDINGS = (".nii.gz", ".nii")


def _stem(name: str) -> str:
    for e in NIFTI_ENDINGS:
        if name.endswith(e):
            return name[: -len(e)]
    return name


def _is_nifti(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.name.endswith(NIFTI_ENDINGS)


def list_per_structure(
    path: str | Path,
    *,
    image: str | None = None,
    masks_dir: str = "segmentations",
    patient_regex: str | None = None,
    modality: str | None = None,
    body_region: str | None = None,
    kind: str = "per-structure",
) -> Listing:
    """List the cases (sub-folders with a ``masks_dir``) under ``path``.

    ``path`` may also be a single case folder. The modality defaults to CT when the image
    is called ``ct.nii.gz``, MR for ``mr``/``t1``/``t2`` names, else ``other``.
    """
    root = Path(path)
    if not root.is_dir():
        raise MimoDataError("folder not found", root)
    case_dirs = (
        [root]
        if (root / masks_dir).is_dir()
        else sorted(d for d in root.iterdir() if d.is_dir() and (d / masks_dir).is_dir())
    )
    if not case_dirs:
        raise MimoDataError(f"empty dataset: no case folder with a {masks_dir}/ sub-folder", root)
    refs = []
    for d in case_dirs:
        if image is not None:
            img = d / image
        else:
            cands = sorted(p for p in d.iterdir() if _is_nifti(p))
            named = [p for p in cands if _stem(p.name).lower() in {"ct", "image", "img", "mr", "t1", "t2"}]
            if len(named) == 1:
                img = named[0]
            elif len(cands) == 1:
                img = cands[0]
            else:
                raise MimoDataError(
                    f"cannot tell which NIfTI file is the image ({[p.name for p in cands] or 'none'}); "
                    "pass image=NAME",
                    d,
                )
        mask_files = sorted(p for p in (d / masks_dir).iterdir() if _is_nifti(p))
        if not mask_files:
            raise MimoDataError("no mask files (*.nii.gz)", d / masks_dir)
        mod = modality or normalise_modality(_stem(img.name), default="other")
        pid = patient_id_from(d.name, patient_regex)
        load = functools.partial(
            _load_case,
            case_id=d.name,
            patient_id=pid,
            image_path=str(img),
            mask_paths=tuple(str(p) for p in mask_files),
            modality=mod,
            body_region=body_region,
            source=f"{kind}:{root.name}",
            root=str(root),
        )
        refs.append(CaseRef(d.name, pid, (str(img), *(str(p) for p in mask_files)), load))
    return Listing(refs=refs)


def _load_case(
    *,
    case_id: str,
    patient_id: str,
    image_path: str,
    mask_paths: tuple[str, ...],
    modality: str,
    body_region: str | None,
    source: str,
    root: str,
) -> Case:
    root_p = Path(root)

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(root_p))
        except ValueError:
            return str(p)

    try:
        image, affine, zooms = load_nifti(Path(image_path), what="image")
    except MimoDataError as exc:
        raise MimoDataError(exc.detail, rel(Path(image_path))) from None
    if image.ndim != 3:
        raise MimoDataError(f"expected a 3D volume, got shape {image.shape}", rel(Path(image_path)))
    labels: dict[str, np.ndarray] = {}
    for mp in map(Path, mask_paths):
        try:
            m, _, _ = load_nifti(mp, what="mask")
        except MimoDataError as exc:
            raise MimoDataError(exc.detail, rel(mp)) from None
        if m.shape != image.shape:
            raise MimoDataError(
                f"mask shape {tuple(m.shape)} does not match image {rel(Path(image_path))} shape {tuple(image.shape)}",
                rel(mp),
            )
        labels[_stem(mp.name)] = np.asarray(m) > 0
    return VolumeCase(
        case_id=case_id,
        patient_id=patient_id,
        image=np.asarray(image, dtype=np.float32),
        labels=labels,
        spacing=zooms,
        modality=modality,
        source=source,
        body_region=body_region,
        affine=affine,
        meta={"image_file": rel(Path(image_path))},
    )


def read_per_structure(path: str | Path, **options) -> Iterator[Case]:
    """Yield the cases of a one-mask-file-per-structure dataset (see ``list_per_structure``)."""
    return iter_listing(list_per_structure(path, **options))
