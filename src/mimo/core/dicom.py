"""DICOM headers: reading a file's dataset, its size against the limits and its CT window
(``mimo.core.images`` reads DICOM pixels with them, ``mimo.core.volumes`` DICOM series)."""

from __future__ import annotations

from pathlib import Path

from mimo.core.errors import ImageError, describe
from mimo.core.intensity import check_window, ct_window
from mimo.core.limits import LIMITS, ImageLimits

SUPPORTED = "PNG, JPEG, BMP, TIFF, DICOM or NIfTI (.nii, .nii.gz)"
"""The formats ``mimo.core.images`` reads, as every refusal names them."""


def read_dicom(path: str | Path, *, pixels: bool = True):
    """A pydicom dataset, or ``ImageError`` naming the file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ImageError(
            f"not a readable image; expected {SUPPORTED} ({' '.join(str(exc).split())})", path
        ) from None
    except Exception as exc:  # pydicom raises many types on corrupt headers
        raise ImageError(f"not a readable DICOM file ({describe(exc)})", path) from None


def dicom_window(ds, window, path) -> tuple[float, float]:
    """The window to use for a CT dataset: ``window`` if given, else the file's own
    ``WindowCenter``/``WindowWidth`` (checked, naming the tags), else the default CT window."""
    if window is not None:
        return check_window(*window, "window")
    if "WindowCenter" in ds and "WindowWidth" in ds:
        level, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        if level is None or width is None:
            return ct_window(None)
        try:
            return check_window(level, width, "WindowCenter/WindowWidth (0028,1050)/(0028,1051)")
        except ImageError as exc:
            raise ImageError(f"{exc}; give --window LEVEL,WIDTH to override", path) from None
    return ct_window(None)


def _first(value) -> float | None:
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def check_dicom_size(ds, path, limits: ImageLimits = LIMITS) -> int:
    """Check ``Rows``/``Columns``/``NumberOfFrames`` against ``limits``; the number of frames."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ImageError(
            f"DICOM Rows/Columns/NumberOfFrames missing or invalid ({describe(exc)})", path
        ) from None
    limits.check_image(rows, cols, path)
    limits.check_volume((frames, rows, cols), path)
    return frames
