"""What the page opens: an uploaded PNG/JPG, DICOM file or NIfTI volume, with its slices and,
for CT data, the window presets.

``open_media(path)`` reads the header once and tells what the file is (``Media``);
``Media.image(slice, window)`` gives the 8-bit image the viewer shows and the model sees,
through ``mimo.infer.images`` so the page shows exactly what ``mimo chat`` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimo.core.images import check_dicom_size, read_dicom, sniff_format
from mimo.infer.images import ImageInputError, Volume, load_image, load_volume

# name -> (level, width) in HU; "auto" is the file's own window (DICOM) or the abdomen's.
WINDOW_PRESETS: dict[str, tuple[float, float] | None] = {
    "auto": None,
    "brain 40/80": (40.0, 80.0),
    "abdomen 40/400": (40.0, 400.0),
    "lung -600/1500": (-600.0, 1500.0),
    "bone 400/1800": (400.0, 1800.0),
}
ACCEPTED = "PNG/JPG, a DICOM file (.dcm) or a NIfTI volume (.nii/.nii.gz)"


def window_of(preset: str | None) -> tuple[float, float] | None:
    if not preset:
        return None
    if preset not in WINDOW_PRESETS:
        raise ImageInputError(f"window {preset!r}: expected one of {', '.join(WINDOW_PRESETS)}")
    return WINDOW_PRESETS[preset]


@dataclass
class Media:
    """An opened file: ``kind`` is ``raster``, ``dicom`` or ``nifti``; ``n_slices`` the axial
    slices (NIfTI) or frames (multi-frame DICOM), 1 otherwise; ``is_ct`` whether the window
    presets apply."""

    path: Path
    kind: str
    n_slices: int = 1
    is_ct: bool = False
    name: str = ""
    _volumes: dict = field(default_factory=dict, repr=False)

    @property
    def default_slice(self) -> int:
        return self.n_slices // 2

    def volume(self, window: tuple[float, float] | None) -> Volume:
        """The NIfTI volume at ``window`` (cached per window)."""
        if window not in self._volumes:
            self._volumes[window] = load_volume(self.path, window=window if self.is_ct else None)
        return self._volumes[window]

    def image(self, slice_index: int | None = None, window: tuple[float, float] | None = None) -> np.ndarray:
        """The 8-bit ``(H, W)`` or ``(H, W, 3)`` image of ``slice_index`` (volumes, multi-frame)."""
        if self.kind == "raster":
            return load_image(self.path)
        index = self.default_slice if slice_index is None else int(slice_index)
        if not 0 <= index < self.n_slices:
            raise ImageInputError(f"{self.name}: slice {index} out of range (0 to {self.n_slices - 1})")
        if self.kind == "nifti":
            return self.volume(window).slice(index)
        return load_image(
            self.path, index if self.n_slices > 1 else None, window=window if self.is_ct else None
        )


def open_media(path: str | Path, name: str | None = None) -> Media:
    """Tell what ``path`` holds, or raise ``ImageInputError`` naming the file and ``ACCEPTED``.
    Messages name the file by ``name`` (default: its file name), not by the upload's path."""
    path = Path(path)
    name = name or path.name
    try:
        return _open(path, name)
    except ImageInputError as exc:
        raise ImageInputError(str(exc).replace(str(path), name)) from None


def _open(path: Path, name: str) -> Media:
    kind = sniff_format(path)  # by content: a GIF or PDF is named, not "missing DICOM header"
    if kind == "nifti":
        volume = load_volume(path)
        media = Media(path, "nifti", volume.n_slices, volume.modality == "CT", name)
        media._volumes[None] = volume
        return media
    if kind not in ("dicom", "unknown"):
        load_image(path)  # raises a clear error on a corrupt image or one beyond the size limits
        return Media(path, "raster", name=name)
    return _open_dicom(path, name)


def _open_dicom(path: Path, name: str) -> Media:
    ds = read_dicom(path, pixels=False)
    frames = check_dicom_size(ds, path)
    is_ct = str(getattr(ds, "Modality", "") or "").upper() == "CT"
    media = Media(path, "dicom", frames, is_ct, name)
    media.image(media.default_slice)  # decode once now: a corrupt file fails at upload, not at ask
    return media
