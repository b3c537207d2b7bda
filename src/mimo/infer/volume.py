"""Segmenting a whole volume slice by slice: every axial slice of the canonical volume (shown
as the data builder shows slices) is asked the same question, in batches; the masks go back
to the input's own voxel order and affine, as NIfTI and, for DICOM input, as DICOM SEG.

Labels: each distinct grounded phrase (lower-cased) gets the next label value (1, 2, ...) in
the order the phrases first appear, slice by slice; ``<SEG>`` without a phrase is label
"segment". Where masks of two phrases overlap, the later phrase wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimo.core.files import atomic_save, atomic_write_text
from mimo.infer.images import ImageInputError, Volume
from mimo.infer.predictor import Predictor


@dataclass
class VolumeResult:
    """``labels``: ``(X, Y, Z)`` uint8 in the input's own voxel order; ``names``: label value ->
    phrase; ``answers``: the answer of every slice (index in the canonical volume)."""

    labels: np.ndarray
    names: dict[int, str]
    answers: list[str] = field(default_factory=list)


def segment_volume(
    predictor: Predictor,
    volume: Volume,
    question: str,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> VolumeResult:
    """Ask ``question`` about every axial slice; return the label volume in the input's order."""
    n = volume.n_slices
    height, width = volume.slice(0).shape[:2]
    display = np.zeros((n, height, width), dtype=np.uint8)
    names: dict[str, int] = {}
    answers: list[str] = []
    for start in range(0, n, batch_size):
        indices = range(start, min(n, start + batch_size))
        items = [{"image": volume.slice(k), "question": question} for k in indices]
        for k, prediction in zip(indices, predictor.predict_batch(items, batch_size=batch_size), strict=True):
            answers.append(prediction.answer)
            for segment in prediction.segments:
                name = (segment.phrase or "segment").strip().lower()
                label = names.setdefault(name, len(names) + 1)
                if label > 255:
                    raise ImageInputError("more than 255 distinct phrases; cannot store them as uint8 labels")
                display[k][segment.mask] = label
        if progress is not None:
            progress(min(n, start + batch_size), n)
    canonical = volume.from_display(display)
    return VolumeResult(volume.to_original(canonical), {v: k for k, v in names.items()}, answers)


def write_nifti(path: str | Path, result: VolumeResult, volume: Volume) -> Path:
    """The label volume as NIfTI with the input's affine; label names in the header's
    ``descrip`` is too short, so they go to ``<path>.json`` beside it."""
    import json

    import nibabel as nib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(result.labels.astype(np.uint8), volume.affine)
    img.set_qform(volume.affine, code=1)
    img.set_sform(volume.affine, code=1)
    atomic_save(path, lambda partial: nib.save(img, str(partial)))
    atomic_write_text(
        labels_sidecar(path), json.dumps({str(k): v for k, v in result.names.items()}, indent=2) + "\n"
    )
    return path


def labels_sidecar(path: Path) -> Path:
    """The JSON of label names written beside a label-map NIfTI."""
    return path.with_name(path.name.removesuffix(".gz").removesuffix(".nii") + ".labels.json")


def write_dicom_seg(path: str | Path, result: VolumeResult, volume: Volume) -> Path:
    """A DICOM SEG (highdicom, binary, one segment per label) referencing the input series."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    import mimo

    if not volume.dicom:
        raise ImageInputError(f"{volume.source}: not a DICOM series; a DICOM SEG needs its source images")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = result.names or {1: "segment"}
    algorithm = hd.AlgorithmIdentificationSequence(
        name="MIMO",
        version=getattr(mimo, "__version__", "0.1.0"),
        family=codes.cid7162.ArtificialIntelligence,
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=label,
            segment_label=name[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for label, name in sorted(names.items())
    ]
    # back from the nibabel voxel order of the highdicom volume to its own array
    labels = result.labels.astype(np.uint8)
    stack = np.stack([labels == label for label in sorted(names)], axis=-1).astype(np.uint8)
    seg_volume = volume.dicom_volume.with_array(stack, channels={"SegmentNumber": sorted(names)})
    seg = hd.seg.Segmentation(
        source_images=volume.dicom,
        pixel_array=seg_volume,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="MIMO-Med",
        manufacturer_model_name="MIMO",
        software_versions=getattr(mimo, "__version__", "0.1.0"),
        device_serial_number="0",
        series_description="MIMO segmentation",
        omit_empty_frames=bool(labels.any()),
    )
    atomic_save(Path(path), lambda partial: seg.save_as(str(partial)))
    return path


def volume_dice(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Dice of foreground (label > 0) of two same-shaped volumes (1.0 when both are empty)."""
    pred, ref = np.asarray(predicted) > 0, np.asarray(reference) > 0
    total = int(pred.sum()) + int(ref.sum())
    return 1.0 if total == 0 else 2.0 * int((pred & ref).sum()) / total


def read_reference(path: str | Path, volume: Volume) -> np.ndarray:
    """A reference mask NIfTI on the input's voxel grid (same shape; affine checked)."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"{path}: reference mask not found")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise ImageInputError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.shape != tuple(volume.original_shape[:3]):
        raise ImageInputError(
            f"{path}: reference shape {data.shape} differs from the input volume's {volume.original_shape[:3]}"
        )
    if not np.allclose(img.affine, volume.affine, atol=1e-3):
        raise ImageInputError(
            f"{path}: reference affine differs from the input volume's; expected the same grid"
        )
    return data
