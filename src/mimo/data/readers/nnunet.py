"""nnU-Net v2 and Medical Segmentation Decathlon (MSD) datasets.

Layout: ``dataset.json``, ``imagesTr/``, ``labelsTr/`` (NIfTI). The two flavours differ in
``dataset.json``:

* nnU-Net v2: ``labels`` name -> id (``{"background": 0, "liver": 1}``) or, for region
  labels, name -> list of ids (``{"whole tumor": [1, 2, 3]}``); ``channel_names``
  (``{"0": "CT"}``); ``file_ending`` (``.nii.gz``); images ``imagesTr/<case>_0000.nii.gz``.
* MSD: ``labels`` id -> name (``{"0": "background", "1": "liver"}``); ``modality``;
  ``training``: ``[{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}]``;
  multi-channel images are 4D (channels last).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mimo.core.errors import MimoDataError
from mimo.data.case import Case
from mimo.data.imaging import load_nifti
from mimo.data.interop.common import resolve_under
from mimo.data.readers.base import (
    CaseRef,
    Listing,
    VolumeCase,
    iter_listing,
    load_json,
    masks_from_label_map,
    normalise_modality,
    parse_label_map,
    patient_id_from,
)


def _strip_ending(name: str, ending: str) -> str:
    return name[: -len(ending)] if name.endswith(ending) else name.split(".", 1)[0]


def list_nnunet(
    path: str | Path,
    *,
    patient_regex: str | None = None,
    modality: str | None = None,
    body_region: str | None = None,
    channel: int = 0,
    kind: str = "nnunet",
) -> Listing:
    """List the labelled training cases of an nnU-Net v2 or MSD dataset folder.

    Args:
        path: the dataset folder (holding ``dataset.json``).
        patient_regex: regex applied to the case id to get the patient id (group
            ``patient`` or group 1); default: the case id.
        modality: override the modality read from ``channel_names``/``modality``.
        body_region: CT windowing hint (``abdomen``, ``chest``, ``head`` ...).
        channel: which input channel to use as the image (default 0).

    Raises:
        MimoDataError: naming ``dataset.json`` when it is missing, malformed, or lacks
            ``labels``; naming the dataset when it has no labelled cases.
    """
    root = Path(path)
    if not root.is_dir():
        raise MimoDataError("dataset folder not found", root)
    ds_path = root / "dataset.json"
    ds = _read_dataset_json(ds_path)
    labels = parse_label_map(ds["labels"], ds_path)
    channel_modality = _channel_modality(ds, channel, ds_path)  # checks the channel exists
    mod = modality or channel_modality
    is_msd = isinstance(ds.get("training"), list) and "file_ending" not in ds
    pairs = _msd_pairs(ds, root, ds_path) if is_msd else _nnunet_pairs(ds, root, channel)
    refs = []
    for cid, img, lab, msd in sorted(pairs, key=lambda p: p[0]):
        load = functools.partial(
            _load_case,
            case_id=cid,
            patient_id=patient_id_from(cid, patient_regex),
            image_path=str(img),
            label_path=str(lab),
            labels=labels,
            labels_source=str(ds_path),
            modality=mod,
            body_region=body_region,
            channel=channel if msd else None,
            source=f"{kind}:{root.name}",
            root=str(root),
        )
        refs.append(CaseRef(cid, patient_id_from(cid, patient_regex), (str(img), str(lab)), load))
    declared = {str(ds_path): {name: ids[0] if len(ids) == 1 else ids for name, ids in labels.items()}}
    # dataset.json names the labels of the whole dataset; a subset of its cases may lack some
    return Listing(refs=refs, declared_labels=declared, absent_labels_warn=True)


def _read_dataset_json(ds_path: Path) -> dict:
    """``dataset.json`` as an object with ``labels``."""
    ds = load_json(ds_path, "dataset.json (nnU-Net v2 / MSD dataset description)")
    if not isinstance(ds, dict):
        raise MimoDataError(f"expected a JSON object, got {type(ds).__name__}", ds_path)
    if "labels" not in ds:
        raise MimoDataError("missing field 'labels' (label names and ids)", ds_path)
    return ds


def _channel_modality(ds: dict, channel: int, ds_path: Path) -> str:
    """The modality of input ``channel`` from ``channel_names`` (nnU-Net v2) or ``modality`` (MSD)."""
    channels = ds.get("channel_names") or ds.get("modality") or {}
    if not isinstance(channels, dict):
        raise MimoDataError("field 'channel_names'/'modality': expected an object {\"0\": \"CT\"}", ds_path)
    raw_mod = channels.get(str(channel))
    if channels and raw_mod is None:
        raise MimoDataError(
            f"channel {channel} requested but 'channel_names'/'modality' lists {sorted(channels)}", ds_path
        )
    return normalise_modality(raw_mod, default="other")


Pair = tuple[str, Path, Path, bool]  # case id, image, label, image is 4D-channel (MSD)


def _msd_pairs(ds: dict, root: Path, ds_path: Path) -> list[Pair]:
    """MSD: the cases listed in ``training``; paths resolved under the dataset folder."""
    pairs = []
    for i, entry in enumerate(ds["training"]):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise MimoDataError(
                f"field 'training'[{i}]: expected an object with 'image' and 'label'", ds_path
            )
        where = f"{ds_path}: field 'training'[{i}]"
        img = resolve_under(root, entry["image"], where, "image", must_exist=False)
        lab = resolve_under(root, entry["label"], where, "label", must_exist=False)
        pairs.append((_strip_ending(lab.name, ".nii.gz"), img, lab, True))
    if not pairs:
        raise MimoDataError("empty dataset: no labelled cases (labelsTr/*.nii.gz)", root)
    return pairs


def _nnunet_pairs(ds: dict, root: Path, channel: int) -> list[Pair]:
    """nnU-Net v2: every ``labelsTr/<case><file_ending>`` with ``imagesTr/<case>_<channel>``."""
    ending = ds.get("file_ending", ".nii.gz")
    lab_dir = root / "labelsTr"
    if not lab_dir.is_dir():
        raise MimoDataError("labelsTr/ folder not found (expected nnU-Net v2 / MSD layout)", root)
    pairs = []
    for lab in sorted(lab_dir.iterdir()):
        if lab.name.startswith(".") or not lab.name.endswith(ending):
            continue
        cid = _strip_ending(lab.name, ending)
        pairs.append((cid, root / "imagesTr" / f"{cid}_{channel:04d}{ending}", lab, False))
    if not pairs:
        raise MimoDataError(f"empty dataset: no labelled cases (labelsTr/*{ending})", root)
    return pairs


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _load_case(
    *,
    case_id: str,
    patient_id: str,
    image_path: str,
    label_path: str,
    labels: dict[str, list[int]],
    labels_source: str,
    modality: str,
    body_region: str | None,
    channel: int | None,
    source: str,
    root: str,
) -> Case:
    img_p, lab_p, root_p = Path(image_path), Path(label_path), Path(root)
    try:
        image, affine, zooms = load_nifti(img_p, what="image")
        lab, _, _ = load_nifti(lab_p, what="label")
    except MimoDataError as exc:
        raise MimoDataError(exc.detail, _rel(Path(exc.path), root_p)) from None
    if image.ndim == 4:
        c = channel or 0
        if c >= image.shape[3]:
            raise MimoDataError(
                f"has {image.shape[3]} channel(s); channel {c} requested", _rel(img_p, root_p)
            )
        image = image[..., c]
    if image.ndim != 3:
        raise MimoDataError(f"expected a 3D volume, got shape {image.shape}", _rel(img_p, root_p))
    if lab.ndim == 4 and lab.shape[3] == 1:
        lab = lab[..., 0]
    if lab.shape != image.shape:
        raise MimoDataError(
            f"label shape {tuple(lab.shape)} does not match image {_rel(img_p, root_p)} shape {tuple(image.shape)}",
            _rel(lab_p, root_p),
        )
    masks = masks_from_label_map(
        lab, labels, label_path=_rel(lab_p, root_p), labels_source=_rel(Path(labels_source), root_p)
    )
    return VolumeCase(
        case_id=case_id,
        patient_id=patient_id,
        image=np.asarray(image, dtype=np.float32),
        labels=masks,
        spacing=zooms,
        modality=modality,
        source=source,
        body_region=body_region,
        affine=affine,
        meta={"image_file": _rel(img_p, root_p), "label_file": _rel(lab_p, root_p)},
    )


def read_nnunet(path: str | Path, **options) -> Iterator[Case]:
    """Yield the labelled cases of an nnU-Net v2 or MSD dataset (see ``list_nnunet``)."""
    return iter_listing(list_nnunet(path, **options))
