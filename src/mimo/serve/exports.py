"""Downloads of an answer's masks: the overlay and one PNG per mask, a JSON with the answer and
COCO RLE per mask (``mimo.infer.render.write_prediction``), and a NIfTI label map.

The NIfTI holds label ``n`` for the n-th mask (a later mask wins where two overlap). For a
slice of a NIfTI volume it is the whole volume, in the input's own voxel order and affine,
with the masks on that slice (open it over the input in any viewer); for a 2D image or DICOM
file it is ``(W, H, 1)``: x along columns, y along rows, identity affine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mimo.core import rle
from mimo.core.files import atomic_save, atomic_write_text
from mimo.infer.images import Volume
from mimo.infer.predictor import Prediction
from mimo.infer.render import write_prediction
from mimo.serve.view import hex_color


def label_map(prediction: Prediction, shape: tuple[int, int]) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    for i, segment in enumerate(prediction.segments):
        labels[np.asarray(segment.mask, bool)] = min(i + 1, 255)
    return labels


def result_json(prediction: Prediction, image_shape: tuple[int, ...]) -> dict:
    """The answer and its masks as the HTTP API returns them."""
    segments = []
    for i, segment in enumerate(prediction.segments):
        encoded = rle.encode(np.asarray(segment.mask, bool))
        segments.append(
            {
                "index": i + 1,
                "phrase": segment.phrase,
                "score": float(segment.score),
                "area": int(np.asarray(segment.mask).sum()),
                "color": hex_color(i),
                "rle": {"size": list(encoded.size), "counts": encoded.counts},
            }
        )
    return {
        "answer": prediction.answer,
        "text": prediction.text,
        "image_size": [int(v) for v in image_shape[:2]],
        "segments": segments,
    }


def write_nifti(
    path: Path,
    prediction: Prediction,
    image_shape: tuple[int, ...],
    volume: Volume | None,
    slice_index: int | None,
) -> Path:
    import nibabel as nib

    labels = label_map(prediction, tuple(image_shape[:2]))
    if volume is not None and slice_index is not None:
        display = np.zeros((volume.n_slices, *labels.shape), np.uint8)
        display[slice_index] = labels
        data = volume.to_original(volume.from_display(display))
        affine = volume.affine
    else:
        data, affine = np.ascontiguousarray(labels.T[:, :, None]), np.eye(4)
    img = nib.Nifti1Image(data.astype(np.uint8), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    atomic_save(Path(path), lambda p: nib.save(img, str(p)))
    return path


def write_downloads(
    out_dir: Path,
    image: np.ndarray,
    prediction: Prediction,
    stem: str,
    volume: Volume | None = None,
    slice_index: int | None = None,
) -> list[Path]:
    """Write the downloads of one answer into ``out_dir``; returns their paths (JSON first)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = write_prediction(out_dir, image, prediction, stem=stem)
    data = result_json(prediction, image.shape)
    data["overlay"] = written["overlay"]
    for segment, saved in zip(data["segments"], written["segments"], strict=True):
        segment["mask_file"] = saved["mask_file"]
    if slice_index is not None:
        data["slice"] = int(slice_index)
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(data, indent=2) + "\n")
    paths = [out_dir / f"{stem}.json"]
    if prediction.segments:
        paths.append(
            write_nifti(out_dir / f"{stem}_labels.nii.gz", prediction, image.shape, volume, slice_index)
        )
        paths += [out_dir / s["mask_file"] for s in data["segments"]]
    paths.append(out_dir / written["overlay"])
    return paths
