"""One way to turn a file or an array into pixels, for every entry point (data readers, the
training dataset, the ``Predictor``, ``mimo serve``, ``mimo eval``).

Rules, the same everywhere:

* **Formats** are told by their content, not their name: PNG, JPEG, BMP, TIFF, DICOM, and
  NIfTI (``.nii``/``.nii.gz``). Anything else (GIF, WebP, PDF, ...) is named and refused.
* **Size limits** (``ImageLimits``) are checked from the header, before any pixel array is
  made: side length, pixel count and aspect ratio of 2D images, voxel count of volumes.
* **8-bit** images are used as they are: gray ``(H, W)``, RGB ``(H, W, 3)``; palette, CMYK
  and alpha images become RGB (gray + alpha becomes gray); 1-bit becomes 0/255.
  **16-bit and float** images are rescaled from their own (finite) minimum..maximum to 0..255.
* **Intensities** of volumes and DICOM: CT through a ``(level, width)`` HU window (the one
  asked for, else the file's ``WindowCenter``/``WindowWidth``, else the body region's);
  other modalities through the 0.5-99.5 percentiles. NaN/Inf voxels are left out of every
  range, shown as 0 and reported (``ImageWarning``); an image whose values are all the same
  cannot be rescaled and is refused. Invalid windows are errors naming the tag or option.
* **Orientation**: volumes are held in RAS+ canonical voxel order (``nibabel``'s
  ``as_closest_canonical``); slices are displayed in the radiological convention
  (``slice_to_display``): axial +x to patient ``L``, +y to ``P``; coronal +x ``L``, +y ``I``;
  sagittal +x ``P``, +y ``I``.

Every failure a user can cause raises ``ImageError`` (a ``MimoDataError``, so every command
prints one line and exits with code 2), naming the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimo.core.dicom import SUPPORTED, check_dicom_size, dicom_window, read_dicom
from mimo.core.errors import ImageError, ImageWarning, MimoDataError, describe
from mimo.core.intensity import (
    CT_WINDOWS,
    DEFAULT_CT_WINDOW,
    check_window,
    ct_window,
    finite_min,
    finite_range,
    parse_window,
    percentile_range,
    rescale_to_uint8,
    to_uint8,
    window_ct,
)
from mimo.core.limits import LIMITS, ImageLimits
from mimo.core.volumes import (
    DISPLAY_DIRECTIONS,
    NIFTI_SUFFIXES,
    Volume,
    canonicalize,
    display_spacing,
    is_nifti,
    load_nifti,
    load_volume,
    nifti_voxels,
    open_nifti,
    slice_to_display,
)

__all__ = [
    "CT_WINDOWS",
    "DEFAULT_CT_WINDOW",
    "DISPLAY_DIRECTIONS",
    "LIMITS",
    "NIFTI_SUFFIXES",
    "RASTER_SUFFIXES",
    "SUPPORTED",
    "ImageError",
    "ImageLimits",
    "ImageWarning",
    "MimoDataError",
    "Volume",
    "array_to_uint8",
    "canonicalize",
    "check_array",
    "check_dicom_size",
    "check_index",
    "check_window",
    "ct_window",
    "dicom_window",
    "display_spacing",
    "finite_min",
    "finite_range",
    "image_header",
    "is_nifti",
    "load_nifti",
    "load_volume",
    "nifti_voxels",
    "open_nifti",
    "parse_window",
    "percentile_range",
    "read_dicom",
    "read_dicom_image",
    "read_image",
    "read_raster",
    "rescale_to_uint8",
    "slice_to_display",
    "sniff_format",
    "to_uint8",
    "window_ct",
]

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# File signatures (first bytes). Readable rasters, then formats named when refused.
_RASTER_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
)
_REFUSED_SIGNATURES = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip file (a NIfTI volume must be named .nii.gz)"),
)


# ---------------------------------------------------------------- formats


def sniff_format(path: str | Path) -> str:
    """``"png"``, ``"jpeg"``, ``"tiff"``, ``"bmp"``, ``"nifti"``, ``"dicom"`` (the ``DICM``
    prefix) or ``"unknown"`` (tried as DICOM: old files lack the prefix). Raises ``ImageError``
    for a missing file, a folder, or a format recognised but not supported (named)."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"is a folder; expected an image file ({SUPPORTED})", path)
    if not path.is_file():
        raise ImageError("file not found", path)
    if is_nifti(path):
        return "nifti"
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise ImageError(f"cannot be read ({exc.strerror})", path) from None
    if not head:
        raise ImageError(f"the file is empty; expected {SUPPORTED}", path)
    if head[128:132] == b"DICM":  # before the rasters: a DICOM preamble may hold a TIFF header
        return "dicom"
    for signature, name in _RASTER_SIGNATURES:
        if head.startswith(signature):
            return name
    for signature, name in _REFUSED_SIGNATURES:
        if head.startswith(signature):
            raise ImageError(f"{name}, not a supported format; expected {SUPPORTED}", path)
    return "unknown"


# ---------------------------------------------------------------- 2D arrays


def check_array(array, what: str, limits: ImageLimits = LIMITS) -> np.ndarray:
    """An array as a 2D gray ``(H, W)`` or RGB ``(H, W, 3)`` image (1 channel squeezed, alpha
    dropped), within ``limits``."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (1, 4):
        array = array[..., :3] if array.shape[-1] == 4 else array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)) or array.size == 0:
        raise ImageError(f"{what}: expected a 2D gray (H, W) or RGB (H, W, 3) image, got {array.shape}")
    limits.check_image(array.shape[0], array.shape[1], what)
    return array


def array_to_uint8(array: np.ndarray, where) -> np.ndarray:
    """``uint8`` as is; anything else rescaled from its finite min..max (see the module rules)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    lo, hi = finite_range(array, where)
    return rescale_to_uint8(array, lo, hi)


# ---------------------------------------------------------------- raster files


def image_header(path: str | Path, limits: ImageLimits = LIMITS) -> tuple[int, int]:
    """``(height, width)`` of a PNG/JPEG/BMP/TIFF file from its header, within ``limits``."""
    with _open_raster(path, limits) as im:
        return im.height, im.width


def read_raster(path: str | Path, *, mask: bool = False, limits: ImageLimits = LIMITS) -> np.ndarray:
    """A PNG/JPEG/BMP/TIFF file as ``uint8`` gray ``(H, W)`` or RGB ``(H, W, 3)`` (module rules);
    with ``mask``, its values as an ``(H, W)`` integer array (first channel; palette indices)."""
    with _open_raster(path, limits) as im:
        try:
            im.load()
            return _mask_values(im) if mask else _display_pixels(im, path)
        except ImageError:
            raise
        except Exception as exc:  # Pillow raises many types for corrupt data
            raise ImageError(f"not a readable image ({describe(exc)})", path) from None


class _open_raster:
    """``with _open_raster(path, limits) as im``: a Pillow image whose header passed the limits."""

    def __init__(self, path, limits: ImageLimits) -> None:
        self.path, self.limits, self.image = Path(path), limits, None

    def __enter__(self):
        from PIL import Image

        kind = sniff_format(self.path)
        if kind not in ("png", "jpeg", "tiff", "bmp"):
            what = "a DICOM file" if kind == "dicom" else "not a readable image"
            raise ImageError(f"{what}; expected a PNG, JPEG, BMP or TIFF image", self.path)
        try:  # ours first, so that Pillow's bomb check neither warns nor raises before it
            self.limits.check_image(*_header_size(self.path, kind), self.path)
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"not a readable image ({describe(exc)})", self.path) from None
        try:
            self.image = Image.open(self.path)
        except Image.DecompressionBombError:  # only with limits above Pillow's
            raise ImageError(
                f"image refused by Pillow as a possible decompression bomb (over {2 * Image.MAX_IMAGE_PIXELS} "
                "pixels); lower the image's size",
                self.path,
            ) from None
        except Exception as exc:
            raise ImageError(f"not a readable image ({describe(exc)})", self.path) from None
        return self.image

    def __exit__(self, *exc_info) -> None:
        if self.image is not None:
            self.image.close()


def _header_size(path: Path, kind: str) -> tuple[int, int]:
    """``(height, width)`` from the header, read by the format's own Pillow plugin (which,
    unlike ``Image.open``, runs no decompression-bomb check)."""
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin

    plugin = {
        "png": PngImagePlugin.PngImageFile,
        "jpeg": JpegImagePlugin.JpegImageFile,
        "tiff": TiffImagePlugin.TiffImageFile,
        "bmp": BmpImagePlugin.BmpImageFile,
    }[kind]
    with plugin(str(path)) as im:
        return im.height, im.width


def _display_pixels(im, path) -> np.ndarray:
    if im.mode in ("L", "RGB"):
        return np.asarray(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return array_to_uint8(np.asarray(im), path)
    if im.mode in ("1", "LA", "La"):
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))  # P, PA, RGBA, RGBa, CMYK, YCbCr, LAB, HSV ...


def _mask_values(im) -> np.ndarray:
    if im.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
        im = im.convert("L")
    array = np.asarray(im)
    return array if array.ndim == 2 else array[..., 0]


# ---------------------------------------------------------------- DICOM


def read_dicom_image(
    path: str | Path,
    frame: int | None = None,
    *,
    window: tuple[float, float] | None = None,
    modality: str | None = None,
    limits: ImageLimits = LIMITS,
) -> np.ndarray:
    """A DICOM file (one frame of a multi-frame file) as ``uint8``: modality LUT, then a CT
    window or percentiles (module rules); ``MONOCHROME1`` inverted."""
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    ds = read_dicom(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageError("a DICOM file without pixel data (PixelData is missing)", path)
    frames = check_dicom_size(ds, path, limits)
    if frames > 1:
        frame = check_index(frame, frames, path, "frame", "multi-frame DICOM")
    try:
        pixels = ds.pixel_array
        if frames > 1:
            pixels = pixels[frame]
        photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
        values = apply_modality_lut(pixels, ds) if photometric.startswith("MONOCHROME") else pixels
    except Exception as exc:  # unsupported transfer syntax, truncated data ...
        raise ImageError(f"DICOM pixel data not decodable ({describe(exc)})", path) from None
    if not photometric.startswith("MONOCHROME"):
        return check_array(array_to_uint8(np.asarray(values), path), str(path), limits)
    mod = (modality or str(getattr(ds, "Modality", "") or "other")).upper()
    if mod == "CT" or window is not None:  # an explicit window applies to any modality
        image = window_ct(values, *dicom_window(ds, window, path), where=path)
    else:
        image = rescale_to_uint8(values, *percentile_range(values, ignore_zero=False, where=path))
    if photometric == "MONOCHROME1":
        image = 255 - image
    return check_array(image, str(path), limits)


def check_index(index: int | None, n: int, path, what: str = "slice", holder: str = "volume") -> int:
    """``index`` within ``0..n-1``, or ``ImageError`` naming the file and the range."""
    if index is None:
        raise ImageError(f"a {holder}; give the {what} to use (--slice N, 0 <= N < {n})", path)
    if not 0 <= index < n:
        raise ImageError(f"{what} {index} out of range; the {holder} has {n} {what}s", path)
    return int(index)


# ---------------------------------------------------------------- the entry point


def read_image(
    source: str | Path | np.ndarray,
    slice_index: int | None = None,
    *,
    window: tuple[float, float] | None = None,
    modality: str | None = None,
    limits: ImageLimits = LIMITS,
) -> np.ndarray:
    """An array or an image file as ``uint8`` gray ``(H, W)`` or RGB ``(H, W, 3)``.

    ``source``: an array (kept as it is: the processor scales any dtype), a PNG/JPEG/BMP/TIFF file, a DICOM file (``slice_index``: the frame
    of a multi-frame file) or a NIfTI volume (``slice_index``: an axial slice of the canonical
    volume, required). ``window``: ``(level, width)`` in HU for CT; ``modality`` overrides
    the file's (``CT`` windows, anything else percentiles).
    """
    if isinstance(source, np.ndarray):
        return check_array(source, "image array", limits)  # the processor scales any dtype
    path = Path(source)
    kind = sniff_format(path)
    if kind == "nifti":
        volume = load_volume(path, window=window, modality=modality, limits=limits)
        return volume.slice(check_index(slice_index, volume.n_slices, path, "axial slice"))
    if kind in ("dicom", "unknown"):
        return read_dicom_image(path, slice_index, window=window, modality=modality, limits=limits)
    return check_array(read_raster(path, limits=limits), str(path), limits)
