"""Volumes: RAS+ canonical orientation, display slices, NIfTI files (see ``mimo.core.images``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimo.core.dicom import check_dicom_size, dicom_window, read_dicom
from mimo.core.errors import ImageError, describe
from mimo.core.intensity import finite_min, to_uint8
from mimo.core.limits import LIMITS, ImageLimits

NIFTI_SUFFIXES = (".nii", ".nii.gz")

# Display orientation of a slice along each canonical axis: (image_right, image_down).
DISPLAY_DIRECTIONS: dict[int, tuple[str, str]] = {0: ("P", "I"), 1: ("L", "I"), 2: ("L", "P")}


def is_nifti(path: str | Path) -> bool:
    return Path(path).name.lower().endswith(NIFTI_SUFFIXES)


def canonicalize(img):
    """Reorient a nibabel image to the closest RAS+ canonical orientation (no resampling)."""
    import nibabel as nib

    return nib.as_closest_canonical(img)


def slice_to_display(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """One slice of a RAS+ volume in display orientation (see the module rules).

    Works for any array whose first three axes are the RAS+ spatial axes (extra trailing
    axes, e.g. channels, are kept).
    """
    if axis == 2:  # axial: rows P (j descending), cols L (i descending)
        sl = volume[::-1, ::-1, index]
    elif axis == 1:  # coronal: rows I (k descending), cols L (i descending)
        sl = volume[::-1, index, ::-1]
    elif axis == 0:  # sagittal: rows I (k descending), cols P (j descending)
        sl = volume[index, ::-1, ::-1]
    else:
        raise ValueError(f"slice axis must be 0, 1 or 2, got {axis}")
    return np.ascontiguousarray(np.swapaxes(sl, 0, 1))


def display_spacing(zooms: tuple[float, ...], axis: int) -> tuple[float, float]:
    """``(row_mm, col_mm)`` of a displayed slice along ``axis`` (see ``slice_to_display``)."""
    remaining = [a for a in range(3) if a != axis]
    # display rows run along the second remaining axis, columns along the first
    return float(zooms[remaining[1]]), float(zooms[remaining[0]])


# ---------------------------------------------------------------- NIfTI


def open_nifti(path: str | Path, *, what: str = "image", limits: ImageLimits = LIMITS):
    """A nibabel image whose header passed ``limits`` (no voxel read yet)."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{what} file not found", path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for truncated/corrupt files
        raise ImageError(f"not a valid NIfTI file ({describe(exc)})", path) from None
    limits.check_volume(img.shape, path)
    return img


def nifti_voxels(img, path) -> np.ndarray:
    """The voxel array of a nibabel image opened by ``open_nifti`` (scaling applied)."""
    try:
        return np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated data, bad compression ...
        raise ImageError(f"not a valid NIfTI file ({describe(exc)})", path) from None


def load_nifti(
    path: str | Path, *, what: str = "image", limits: ImageLimits = LIMITS
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """A NIfTI file in RAS+ canonical orientation: ``(data, affine, zooms)`` (4D kept, channels
    last; zooms of the three spatial axes in mm)."""
    import nibabel as nib

    path = Path(path)
    img = open_nifti(path, what=what, limits=limits)
    try:
        if img.ndim > 3:  # as_closest_canonical reorients the three spatial axes only
            img = nib.Nifti1Image(nifti_voxels(img, path), img.affine, img.header)
        img = canonicalize(img)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"not a valid NIfTI file ({describe(exc)})", path) from None
    data = nifti_voxels(img, path)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return data, np.asarray(img.affine, dtype=float), zooms


# ---------------------------------------------------------------- whole volumes, with the way back


@dataclass
class Volume:
    """A volume in RAS+ canonical order, 8-bit, with what is needed to go back.

    ``data``: ``uint8`` ``(X, Y, Z)`` canonical; ``affine``: the input's own affine (of its
    voxel order, ``original_shape``); ``to_canonical``: the nibabel orientation transform
    from the input's voxel order to canonical. ``dicom``: the series' datasets (DICOM input)
    and ``dicom_volume`` the highdicom volume they make.
    """

    data: np.ndarray
    affine: np.ndarray
    original_shape: tuple[int, ...]
    to_canonical: np.ndarray
    source: Path
    modality: str
    dicom: list = field(default_factory=list)
    dicom_volume: object | None = None

    @property
    def n_slices(self) -> int:
        return int(self.data.shape[2])

    def slice(self, index: int) -> np.ndarray:
        """Axial slice ``index`` as the data builder displays it."""
        return slice_to_display(self.data, 2, index)

    def from_display(self, masks: np.ndarray) -> np.ndarray:
        """``(Z, H, W)`` displayed axial slices back to a canonical ``(X, Y, Z)`` array."""
        # slice_to_display: image[r, c] = volume[X-1-c, Y-1-r, k]
        canonical = np.transpose(masks, (2, 1, 0))[::-1, ::-1, :]
        return np.ascontiguousarray(canonical)

    def to_original(self, canonical: np.ndarray) -> np.ndarray:
        """A canonical ``(X, Y, Z)`` array back in the input's own voxel order."""
        import nibabel.orientations as no

        back = no.ornt_transform(no.axcodes2ornt(("R", "A", "S")), self.original_ornt)
        out = no.apply_orientation(canonical, back)
        if out.shape != tuple(self.original_shape[:3]):  # pragma: no cover - guards the algebra
            raise AssertionError(f"reorientation gave {out.shape}, expected {self.original_shape}")
        return np.ascontiguousarray(out)

    @property
    def original_ornt(self) -> np.ndarray:
        import nibabel.orientations as no

        return no.io_orientation(self.affine)


def load_volume(
    path: str | Path,
    *,
    window: tuple[float, float] | None = None,
    modality: str | None = None,
    limits: ImageLimits = LIMITS,
) -> Volume:
    """A NIfTI file or a folder holding one DICOM series, as a canonical 8-bit ``Volume``.

    ``modality`` (``CT``, ``MR`` ...) chooses the intensity mapping; by default a DICOM
    series' ``Modality``, and for NIfTI ``CT`` when the volume's finite values reach -500 or
    below (air in Hounsfield units), else percentiles. ``uint8`` volumes are used as they are.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError("not found; expected a NIfTI file or a DICOM series folder", path)
    if path.is_dir():
        return _load_dicom_series(path, window=window, modality=modality, limits=limits)
    if not is_nifti(path):
        raise ImageError("expected a NIfTI volume (.nii, .nii.gz) or a DICOM series folder", path)
    img = open_nifti(path, limits=limits)
    raw = nifti_voxels(img, path)
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    if raw.ndim != 3:
        raise ImageError(f"expected a 3D volume, got shape {raw.shape}", path)
    return _from_array(raw, np.asarray(img.affine, dtype=float), path, window, modality)


def _from_array(raw, affine, path: Path, window, modality) -> Volume:
    import nibabel.orientations as no

    try:
        ornt = no.io_orientation(affine)
    except Exception as exc:  # a singular or non-finite affine
        raise ImageError(f"the affine does not give an orientation ({describe(exc)})", path) from None
    to_canonical = no.ornt_transform(ornt, no.axcodes2ornt(("R", "A", "S")))
    canonical = no.apply_orientation(raw, to_canonical)
    if modality is None:
        modality = "CT" if raw.dtype != np.uint8 and finite_min(raw) <= -500 else "other"
    modality = modality.upper() if modality.upper() == "CT" else modality
    data = to_uint8(np.asarray(canonical), modality, window=window, where=path)
    return Volume(
        data=np.ascontiguousarray(data),
        affine=affine,
        original_shape=tuple(raw.shape),
        to_canonical=to_canonical,
        source=path,
        modality=modality,
    )


def _series_datasets(folder: Path, limits: ImageLimits) -> list:
    datasets = []
    for p in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            ds = read_dicom(p)
        except ImageError:
            continue  # notes, thumbnails ...
        if "PixelData" in ds and "ImagePositionPatient" in ds:
            check_dicom_size(ds, p, limits)
            datasets.append(ds)
    if not datasets:
        raise ImageError("no DICOM image with pixel data and a position found", folder)
    limits.check_volume((len(datasets), int(datasets[0].Rows), int(datasets[0].Columns)), folder)
    return datasets


def _load_dicom_series(folder: Path, *, window=None, modality: str | None = None, limits=LIMITS) -> Volume:
    import highdicom as hd

    datasets = _series_datasets(folder, limits)
    series = {str(ds.SeriesInstanceUID) for ds in datasets}
    if len(series) > 1:
        raise ImageError(f"holds {len(series)} DICOM series; expected exactly one", folder)
    try:
        vol = hd.get_volume_from_series(datasets, dtype=np.float32, apply_voi_transform=False)
    except Exception as exc:
        raise ImageError(f"the DICOM series is not a regular volume ({describe(exc)})", folder) from None
    nib_img = vol.to_nibabel()
    mod = modality or str(getattr(datasets[0], "Modality", "") or "other")
    if mod.upper() == "CT":
        window = dicom_window(datasets[0], window, folder)
    volume = _from_array(
        np.asarray(nib_img.dataobj), np.asarray(nib_img.affine, dtype=float), folder, window, mod
    )
    volume.dicom = datasets
    volume.dicom_volume = vol
    return volume
