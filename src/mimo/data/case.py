"""The unit every reader yields: one patient's image (2D or 3D) with named label masks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODALITIES = ("CT", "MR", "XR", "US", "PET", "fundus", "dermoscopy", "endoscopy", "pathology", "OCT", "other")


@dataclass
class Case:
    """A readable case: an image with named binary masks.

    Attributes:
        case_id: unique within its source (e.g. ``amos_0001``).
        patient_id: the patient it belongs to; splits are made on this.
        image: ``(H, W)`` gray, ``(H, W, 3)`` RGB, or a ``(X, Y, Z)`` volume in RAS+
            canonical orientation (first axis runs patient-right to patient-left...
            see ``mimo.data.imaging.canonicalize``).
        labels: raw label name as the dataset spells it -> boolean mask with the image's
            spatial shape. Raw names are mapped to clinical terms by the knowledge base.
        spacing: pixel/voxel size in mm, one value per spatial axis.
        modality: one of ``MODALITIES``.
        source: where it came from, e.g. ``nnunet:Dataset218_AMOS``.
        body_region: hint for CT windowing (``abdomen``, ``chest``, ``head``, ``pelvis`` ...).
        affine: the 4x4 voxel-to-RAS affine for volumes (None for 2D images).
    """

    case_id: str
    patient_id: str
    image: np.ndarray
    labels: dict[str, np.ndarray]
    spacing: tuple[float, ...]
    modality: str
    source: str
    body_region: str | None = None
    affine: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def is_volume(self) -> bool:
        """A 3D volume (an ``affine`` says so; else a last axis of 3 is read as RGB)."""
        return self.image.ndim == 3 and (self.affine is not None or self.image.shape[-1] != 3)

    def __post_init__(self) -> None:
        spatial = self.image.shape[:2] if not self.is_volume else self.image.shape
        for name, mask in self.labels.items():
            if mask.shape != spatial:
                raise ValueError(
                    f"case {self.case_id!r} ({self.source}): label {name!r} has shape {mask.shape}, "
                    f"expected the image's spatial shape {spatial}"
                )


@dataclass
class SliceSample:
    """One display-ready 2D image with its masks: what the perspective generators consume.

    Attributes:
        case_id, patient_id, modality, source: copied from the ``Case``.
        image: ``(H, W)`` or ``(H, W, 3)`` uint8, already windowed/normalised.
        labels: raw label name -> boolean ``(H, W)`` mask; only non-empty structures are kept
            in ``labels``; ``absent`` lists raw names of the case's structures that are not
            in this slice (candidates for negatives).
        spacing: ``(row_mm, col_mm)`` pixel size.
        image_path: path of the PNG the records will reference, relative to the output dir.
        slice: ``(axis, index)`` in the canonical volume, or None for 2D sources.
        image_right / image_down: the patient direction (one of ``L R A P S I``) toward which
            the image's +x (columns) and +y (rows) axes point, or None where unknown
            (fundus, dermoscopy, ...). Geometry questions about laterality use these.
        instances: raw label name -> number of object instances the dataset annotated for it
            (SA-Med2D-20M: one mask file per instance); counting questions use it instead of
            connected components, which merge touching instances. Empty where unknown.
        reference_measurements: published measurements of the image (e.g. HC18's
            ``{"head circumference": 172.4}`` in mm), from the case's ``meta``; 2D sources only.
    """

    case_id: str
    patient_id: str
    modality: str
    source: str
    image: np.ndarray
    labels: dict[str, np.ndarray]
    spacing: tuple[float, float]
    image_path: str
    slice: tuple[int, int] | None = None
    absent: list[str] = field(default_factory=list)
    image_right: str | None = None
    image_down: str | None = None
    instances: dict[str, int] = field(default_factory=dict)
    reference_measurements: dict[str, float] = field(default_factory=dict)
