"""From a ``Case`` to display-ready ``SliceSample``s with their PNG files written."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mimo.core.errors import MimoDataError
from mimo.core.files import safe_name
from mimo.data import imaging
from mimo.data.case import Case, SliceSample


class SliceConfig(BaseModel):
    """How slices are chosen and prepared (see ``mimo.data.imaging``)."""

    model_config = ConfigDict(extra="forbid")

    axis: int = Field(2, ge=0, le=2, description="canonical axis to slice along (2 = axial)")
    stride: int = Field(3, ge=1, description="minimum distance between chosen slices")
    max_slices: int = Field(24, ge=1, description="at most this many slices per case")
    min_pixels: int = Field(16, ge=1, description="a structure counts as present from this many pixels")
    square_pixels: bool = True
    max_side: int | None = Field(
        None, ge=8, description="downsample images whose longer side exceeds this (pixel size grows)"
    )
    ct_window: tuple[float, float] | None = Field(
        None, description="(level, width) HU; default per body region"
    )

    @field_validator("ct_window")
    @classmethod
    def _window_is_usable(cls, window):
        return None if window is None else imaging.check_window(*window, "ct_window")


def _where(case: Case) -> str:
    """What names a case's image in a message: its file when known, else its id."""
    return str(case.meta.get("image_file") or case.case_id)


def slice_seed(seed: int, source: str, case_id: str, slice_key: str) -> np.random.SeedSequence:
    """A seed for one slice that depends only on ``(seed, source, case, slice)``, not on
    worker scheduling or on which other cases are built."""
    digest = hashlib.sha256(f"{source}\x00{case_id}\x00{slice_key}".encode()).digest()
    return np.random.SeedSequence([int(seed), int.from_bytes(digest[:16], "little")])


def iter_slice_samples(
    case: Case, config: SliceConfig, out_dir: str | Path, source_name: str, *, write_images: bool = True
) -> Iterator[SliceSample]:
    """Yield the case's chosen slices as ``SliceSample``s, writing each PNG under
    ``out_dir/images/<source_name>/``.

    Raises:
        MimoDataError: when the case has no image (e.g. a lone DICOM SEG) or no labels.
    """
    if case.meta.get("image_missing"):
        raise MimoDataError(
            "no image: the series this segmentation references was not found, so no training "
            "data can be made from it",
            case.meta.get("seg_file") or case.case_id,
        )
    out_dir = Path(out_dir)
    rel_dir = Path("images") / safe_name(source_name)
    cid = safe_name(case.case_id)
    if case.is_volume:
        img8 = imaging.to_uint8(
            case.image, case.modality, case.body_region, window=config.ct_window, where=_where(case)
        )
        indices = imaging.select_slices(
            case.labels,
            config.axis,
            stride=config.stride,
            max_slices=config.max_slices,
            min_pixels=config.min_pixels,
        )
        right, down = imaging.DISPLAY_DIRECTIONS[config.axis]
        spacing = imaging.display_spacing(tuple(case.spacing), config.axis)
        for k in indices:
            image = imaging.slice_to_display(img8, config.axis, k)
            masks = {n: imaging.slice_to_display(m, config.axis, k) for n, m in case.labels.items()}
            rel = rel_dir / f"{cid}_{'xyz'[config.axis]}{k:03d}.png"
            yield _sample(
                case, image, masks, spacing, rel, (config.axis, k), right, down, config, out_dir, write_images
            )
    else:
        image = case.image
        if image.ndim == 3 and image.shape[-1] == 4:
            image = image[..., :3]
        image = imaging.to_uint8(
            image, case.modality, case.body_region, window=config.ct_window, where=_where(case)
        )
        present = {n: m for n, m in case.labels.items() if np.count_nonzero(m) >= 1}
        if not present:
            return
        spacing = (float(case.spacing[0]), float(case.spacing[-1]))
        rel = rel_dir / f"{cid}.png"
        yield _sample(
            case,
            image,
            dict(case.labels),
            spacing,
            rel,
            None,
            case.meta.get("image_right"),
            case.meta.get("image_down"),
            config,
            out_dir,
            write_images,
        )


def _sample(
    case, image, masks, spacing, rel, slice_ref, right, down, config, out_dir, write_images
) -> SliceSample:
    if config.square_pixels:
        image, masks, spacing = imaging.square_pixels(image, masks, spacing)
    if config.max_side is not None:
        image, masks, spacing = imaging.limit_side(image, masks, spacing, config.max_side)
    labels = {n: m for n, m in masks.items() if m.any()}
    absent = [n for n in masks if n not in labels]
    if write_images:
        imaging.write_png(out_dir / rel, image)
    return SliceSample(
        case_id=case.case_id,
        patient_id=case.patient_id,
        modality=case.modality,
        source=case.source,
        image=image,
        labels=labels,
        spacing=(float(spacing[0]), float(spacing[1])),
        image_path=rel.as_posix(),
        slice=slice_ref,
        absent=absent,
        image_right=right,
        image_down=down,
        instances={n: int(k) for n, k in (case.meta.get("instances") or {}).items() if n in labels}
        if slice_ref is None
        else {},
        reference_measurements=dict(case.meta.get("reference_measurements") or {})
        if slice_ref is None
        else {},
    )
