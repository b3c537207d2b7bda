"""Loading what a user points the predictor at: arrays, PNG/JPG, DICOM files, NIfTI slices,
and whole volumes (NIfTI files or DICOM series folders).

Images come out the way the data builder shows them to the model (``mimo.data.imaging``):

* PNG/JPG/arrays: as they are (gray or RGB).
* DICOM files: the modality LUT (``RescaleSlope``/``RescaleIntercept``) is applied, then a
  window: the one asked for, else the file's own ``WindowCenter``/``WindowWidth``, else
  for CT the abdominal soft-tissue window; other modalities use the 0.5-99.5 percentiles.
  ``MONOCHROME1`` is inverted. Multi-frame files need a frame (``slice_index``).
* Volumes: reoriented to RAS+ canonical (no resampling), intensities through the same
  windows over the whole volume, and axial slices in the builder's display orientation
  (``imaging.slice_to_display``). ``Volume.to_original`` undoes both exactly.

Every failure a user can cause raises ``ImageInputError`` naming the file and what was
expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimo.data import imaging
from mimo.data.errors import MimoDataError

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class ImageInputError(ValueError):
    """An image, volume or prompt the user gave cannot be used; the message says why."""


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def parse_window(text: str | None) -> tuple[float, float] | None:
    """``"level,width"`` (HU) -> ``(level, width)``."""
    if text is None:
        return None
    try:
        level, width = (float(v) for v in text.split(","))
    except ValueError:
        raise ImageInputError(f"--window {text!r}: expected LEVEL,WIDTH in HU, e.g. 40,400") from None
    if width <= 0:
        raise ImageInputError(f"--window {text!r}: the width must be positive")
    return level, width


# ---------------------------------------------------------------- 2D images


def load_image(
    source: str | Path | np.ndarray,
    slice_index: int | None = None,
    *,
    window: tuple[float, float] | None = None,
    modality: str | None = None,
) -> np.ndarray:
    """An image as a ``uint8`` ``(H, W)`` or ``(H, W, 3)`` array, ready for the predictor.

    ``source``: an array (returned as is when 2D gray or RGB), a PNG/JPG path, a DICOM file
    or a NIfTI volume (then ``slice_index``, an axial slice of the canonical volume, is
    required). ``window``: ``(level, width)`` in HU for CT data; ``modality`` overrides the
    file's (``CT`` windows, anything else is percentile-scaled).
    """
    if isinstance(source, np.ndarray):
        return _check_array(source, "image array")
    path = Path(source)
    if not path.exists():
        raise ImageInputError(f"{path}: file not found")
    if path.is_dir():
        raise ImageInputError(f"{path}: is a folder; expected an image file (PNG, JPG, DICOM or NIfTI)")
    if _is_nifti(path):
        volume = load_volume(path, window=window, modality=modality)
        return volume.slice(_check_slice(slice_index, volume.n_slices, path))
    if path.suffix.lower() in RASTER_SUFFIXES:
        return _load_raster(path)
    return _load_dicom_image(path, slice_index, window=window, modality=modality)


def _check_array(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (1, 4):
        array = array[..., :3] if array.shape[-1] == 4 else array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)) or min(array.shape[:2]) < 1:
        raise ImageInputError(f"{what}: expected a 2D gray (H, W) or RGB (H, W, 3) image, got {array.shape}")
    return array


def _check_slice(slice_index: int | None, n: int, path: Path) -> int:
    if slice_index is None:
        raise ImageInputError(f"{path}: a volume; give the axial slice to use (--slice N, 0 <= N < {n})")
    if not 0 <= slice_index < n:
        raise ImageInputError(f"{path}: slice {slice_index} out of range; the volume has {n} axial slices")
    return int(slice_index)


def _load_raster(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "RGB"):
                img = img.convert("RGB" if img.mode in ("RGBA", "P", "CMYK", "LA") else "L")
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageInputError(f"{path}: not a readable image ({exc})") from None
    if array.dtype != np.uint8:
        lo, hi = float(array.min()), float(array.max())
        array = imaging.rescale_to_uint8(array, lo, hi)
    return _check_array(array, str(path))


def _read_dicom(path: Path, *, pixels: bool = True):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise ImageInputError(
            f"{path}: not a readable image; expected PNG/JPG, DICOM or NIfTI (.nii/.nii.gz) ({exc})"
        ) from None


def _dicom_window(ds, window, modality: str) -> tuple[float, float] | None:
    if window is not None:
        return window
    if modality != "CT":
        return None
    if "WindowCenter" in ds and "WindowWidth" in ds:
        from pydicom.multival import MultiValue

        def first(value) -> float:
            return float(value[0] if isinstance(value, MultiValue) else value)

        try:
            return first(ds.WindowCenter), first(ds.WindowWidth)
        except (TypeError, ValueError, IndexError):
            pass
    return imaging.ct_window(None)


def _load_dicom_image(
    path: Path, slice_index: int | None, *, window=None, modality: str | None = None
) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    ds = _read_dicom(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageInputError(f"{path}: a DICOM file without pixel data (PixelData is missing)")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # unsupported transfer syntax, truncated data ...
        raise ImageInputError(
            f"{path}: DICOM pixel data not decodable ({type(exc).__name__}: {exc})"
        ) from None
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if frames > 1:
        pixels = pixels[_check_slice(slice_index, frames, path)]
    if photometric.startswith("MONOCHROME"):
        values = apply_modality_lut(pixels, ds).astype(np.float32)
        mod = (modality or str(getattr(ds, "Modality", "") or "other")).upper()
        mod = "CT" if mod == "CT" else "other"
        chosen = _dicom_window(ds, window, mod)
        if chosen is not None:
            image = imaging.window_ct(values, *chosen)
        else:
            image = imaging.rescale_to_uint8(values, *imaging.percentile_range(values, ignore_zero=False))
        if photometric == "MONOCHROME1":
            image = 255 - image
        return _check_array(image, str(path))
    if pixels.dtype != np.uint8:
        pixels = imaging.rescale_to_uint8(pixels, float(pixels.min()), float(pixels.max()))
    return _check_array(pixels, str(path))


# ---------------------------------------------------------------- volumes


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
        return imaging.slice_to_display(self.data, 2, index)

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
    path: str | Path, *, window: tuple[float, float] | None = None, modality: str | None = None
) -> Volume:
    """A NIfTI file or a folder holding one DICOM series, as a canonical 8-bit ``Volume``.

    ``modality`` (``CT``, ``MR`` ...) chooses the intensity mapping; by default a DICOM
    series' ``Modality``, and for NIfTI ``CT`` when the volume reaches -500 or below (air in
    Hounsfield units), else percentiles. ``uint8`` volumes are used as they are.
    """
    path = Path(path)
    if not path.exists():
        raise ImageInputError(f"{path}: not found; expected a NIfTI file or a DICOM series folder")
    if path.is_dir():
        return _load_dicom_series(path, window=window, modality=modality)
    if not _is_nifti(path):
        raise ImageInputError(f"{path}: expected a NIfTI volume (.nii, .nii.gz) or a DICOM series folder")
    import nibabel as nib

    try:
        img = nib.load(str(path))
        raw = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise ImageInputError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    if raw.ndim != 3:
        raise ImageInputError(f"{path}: expected a 3D volume, got shape {raw.shape}")
    return _from_nifti_array(raw, np.asarray(img.affine, dtype=float), path, window, modality)


def _from_nifti_array(raw, affine, path: Path, window, modality) -> Volume:
    import nibabel.orientations as no

    ornt = no.io_orientation(affine)
    to_canonical = no.ornt_transform(ornt, no.axcodes2ornt(("R", "A", "S")))
    canonical = no.apply_orientation(raw, to_canonical)
    if modality is None:
        modality = "CT" if raw.dtype != np.uint8 and float(np.min(raw)) <= -500 else "other"
    modality = modality.upper() if modality.upper() == "CT" else modality
    try:
        data = imaging.to_uint8(np.asarray(canonical), modality, window=window)
    except MimoDataError as exc:
        raise ImageInputError(f"{path}: {exc}") from None
    return Volume(
        data=np.ascontiguousarray(data),
        affine=affine,
        original_shape=tuple(raw.shape),
        to_canonical=to_canonical,
        source=path,
        modality=modality,
    )


def _load_dicom_series(folder: Path, *, window=None, modality: str | None = None) -> Volume:
    import highdicom as hd

    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    datasets = []
    for p in files:
        try:
            ds = _read_dicom(p)
        except ImageInputError:
            continue  # notes, thumbnails ...
        if "PixelData" in ds and "ImagePositionPatient" in ds:
            datasets.append(ds)
    if not datasets:
        raise ImageInputError(f"{folder}: no DICOM image with pixel data and a position found")
    series = {str(ds.SeriesInstanceUID) for ds in datasets}
    if len(series) > 1:
        raise ImageInputError(f"{folder}: holds {len(series)} DICOM series; expected exactly one")
    try:
        vol = hd.get_volume_from_series(datasets, dtype=np.float32, apply_voi_transform=False)
    except Exception as exc:
        raise ImageInputError(
            f"{folder}: the DICOM series is not a regular volume ({type(exc).__name__}: {exc})"
        ) from None
    nib_img = vol.to_nibabel()
    mod = modality or str(getattr(datasets[0], "Modality", "") or "other")
    if window is None and mod.upper() == "CT":
        window = _dicom_window(datasets[0], None, "CT")
    volume = _from_nifti_array(
        np.asarray(nib_img.dataobj), np.asarray(nib_img.affine, dtype=float), folder, window, mod
    )
    volume.dicom = datasets
    volume.dicom_volume = vol
    return volume
