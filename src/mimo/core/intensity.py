"""Intensities to 8 bits, the same for every reader (see ``mimo.core.images`` for the rules):
CT windows, NaN/Inf-aware percentile and min..max ranges, constant images refused."""

from __future__ import annotations

import math
import warnings

import numpy as np

from mimo.core.errors import ImageError, ImageWarning

# (level, width) in HU. Standard radiology windows (e.g. Radiopaedia "Windowing (CT)").
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "abdomen": (40.0, 400.0),  # soft tissue, abdominal organs
    "pelvis": (40.0, 400.0),  # soft tissue
    "soft_tissue": (40.0, 400.0),
    "chest": (-600.0, 1500.0),  # lung parenchyma
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "head": (40.0, 80.0),  # brain
    "brain": (40.0, 80.0),
    "neck": (40.0, 400.0),
}
DEFAULT_CT_WINDOW = "abdomen"


def finite_range(data: np.ndarray, where=None) -> tuple[float, float]:
    """``(min, max)`` of the finite values; non-finite ones reported; a constant image refused."""
    values = _finite_values(data, where)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise ImageError(f"every pixel has the value {lo:g}; a constant image shows nothing", where)
    return lo, hi


def _finite_values(data: np.ndarray, where) -> np.ndarray:
    values = np.asarray(data)
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        n_bad = int(values.size - np.count_nonzero(finite))
        if n_bad:
            if n_bad == values.size:
                raise ImageError(f"all {values.size} values are NaN or infinite", where)
            _report_nonfinite(n_bad, values.size, where)
            values = values[finite]
    if values.size == 0:
        raise ImageError("the image has no pixels", where)
    return values.ravel()


def _report_nonfinite(n_bad: int, n: int, where) -> None:
    prefix = f"{where}: " if where else ""
    warnings.warn(
        f"{prefix}{n_bad} of {n} values are NaN or infinite; they are left out of the intensity "
        "range and shown as 0",
        ImageWarning,
        stacklevel=4,
    )


def percentile_range(
    data: np.ndarray, lower: float = 0.5, upper: float = 99.5, *, ignore_zero: bool = True, where=None
) -> tuple[float, float]:
    """Percentiles of the finite values, over non-zero ones when they are at least 1% of them.

    When the percentiles coincide (e.g. a binary volume), the full finite range is used; a
    constant image is refused (``ImageError``)."""
    values = _finite_values(data, where).astype(np.float32, copy=False)
    chosen = values
    if ignore_zero:
        nz = values[values != 0]
        if nz.size >= max(1, values.size // 100):
            chosen = nz
    lo, hi = (float(v) for v in np.percentile(chosen, [lower, upper]))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise ImageError(f"every voxel has the value {lo:g}; a constant image shows nothing", where)
    return lo, hi


def rescale_to_uint8(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linearly map ``[lo, hi]`` to ``[0, 255]`` (clipped; NaN and infinities to 0)."""
    if hi <= lo:
        hi = lo + 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        out = (np.asarray(data, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return _unit_to_uint8(out)


def _unit_to_uint8(out: np.ndarray) -> np.ndarray:
    out = np.where(np.isfinite(out), out, 0.0)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def check_window(level, width, what: str = "--window") -> tuple[float, float]:
    """A ``(level, width)`` window with finite numbers and a positive width, else ``ImageError``
    naming ``what`` (an option, or the DICOM tags the values came from)."""
    try:
        level, width = float(level), float(width)
    except (TypeError, ValueError):
        raise ImageError(f"{what}: expected numbers LEVEL,WIDTH, got {level!r}, {width!r}") from None
    if not (math.isfinite(level) and math.isfinite(width)):
        raise ImageError(f"{what} {level:g},{width:g}: level and width must be finite numbers")
    if width <= 0:
        raise ImageError(f"{what} {level:g},{width:g}: the width must be positive")
    return level, width


def parse_window(text: str | None) -> tuple[float, float] | None:
    """``"level,width"`` (HU, as typed after ``--window``) -> ``(level, width)``."""
    if text is None:
        return None
    try:
        level, width = (float(v) for v in text.split(","))
    except ValueError:
        raise ImageError(f"--window {text!r}: expected LEVEL,WIDTH in HU, e.g. 40,400") from None
    return check_window(level, width, f"--window {text!r}:")


def ct_window(body_region: str | None) -> tuple[float, float]:
    """The ``(level, width)`` HU window for a body region (default: abdomen soft tissue)."""
    key = (body_region or DEFAULT_CT_WINDOW).lower().replace("-", "_").replace(" ", "_")
    if key not in CT_WINDOWS:
        raise ImageError(
            f"unknown CT body region {body_region!r}; expected one of {', '.join(sorted(CT_WINDOWS))}"
        )
    return CT_WINDOWS[key]


def window_ct(hu: np.ndarray, level: float, width: float, where=None) -> np.ndarray:
    """Map Hounsfield units through a ``(level, width)`` window to ``uint8`` (NaN/Inf reported, 0)."""
    level, width = check_window(level, width, "window")
    hu = np.asarray(hu)
    if hu.dtype.kind == "f":
        n_bad = int(hu.size - np.count_nonzero(np.isfinite(hu)))
        if n_bad:
            _report_nonfinite(n_bad, hu.size, where)
    with np.errstate(invalid="ignore", over="ignore"):
        out = (hu.astype(np.float32) - np.float32(level - width / 2.0)) / np.float32(width)
    return _unit_to_uint8(out)


def to_uint8(
    data: np.ndarray,
    modality: str,
    body_region: str | None = None,
    *,
    window: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
    where=None,
) -> np.ndarray:
    """Intensities of a whole volume (or image) to ``uint8``.

    CT: the body region's HU window (or ``window``). ``uint8`` input of any modality is
    returned as is. Everything else (MR, PET, ...): the finite values' 0.5-99.5 percentiles.
    """
    if data.dtype == np.uint8:
        return data
    if modality == "CT":
        level, width = window if window is not None else ct_window(body_region)
        return window_ct(data, level, width, where)
    lo, hi = percentile_range(data, *percentiles, where=where)
    return rescale_to_uint8(data, lo, hi)


def finite_min(data: np.ndarray) -> float:
    """The smallest finite value (``inf`` when there is none)."""
    values = np.asarray(data)
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    return float(values.min()) if values.size else math.inf
