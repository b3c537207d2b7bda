"""Measurements of a grounded structure from its mask and the image's pixel spacing.

These are deterministic tools, not model outputs: the builder writes the value measured on the
reference mask into training answers, and at inference the number in a measurement answer is
recomputed from the predicted mask by the same function (``ground_measurement``). A small
language model cannot regress millimetres from pixels; a mask and a spacing can.

``spacing`` is always ``(row_mm, col_mm)``, the size of one pixel along the image's rows and
columns. Every function takes a boolean (or 0/1) 2D mask; an empty mask measures 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UNITS = {"head circumference": "mm", "area": "mm²", "longest diameter": "mm"}
# a measurement answer names its kind, then its value and unit: "... head circumference of 172.4 mm"
_KIND_RE = re.compile(
    r"(head circumference|longest diameter|area)\D{0,80}?(\d+(?:\.\d+)?)\s*(mm²|mm2|mm)(?![\w²])"
)


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in mm: centre ``(row, col)``, semi-axes ``a >= b`` and the angle of ``a`` (radians
    from the column axis)."""

    center: tuple[float, float]
    a: float
    b: float
    angle: float

    @property
    def perimeter(self) -> float:
        """Ramanujan's second approximation (error below 1e-4 mm for any head)."""
        a, b = self.a, self.b
        if a + b == 0:
            return 0.0
        h = ((a - b) / (a + b)) ** 2
        return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


def _mask2d(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"expected a 2D mask, got shape {m.shape}")
    return m.astype(bool)


def _check_spacing(spacing: Sequence[float]) -> tuple[float, float]:
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 2 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be two positive (row_mm, col_mm) values, got {tuple(spacing)}")
    return sp


def fit_ellipse(mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0)) -> Ellipse:
    """The ellipse with the mask's area, centroid and second moments (in mm).

    For a filled ellipse this recovers it exactly (up to pixelation); for a predicted blob it is
    the least-squares-like ellipse that HC18-style head measurement takes. Only the largest
    connected component is used, so a stray speck does not pull the fit.
    """
    sp = _check_spacing(spacing)
    m = largest_component(_mask2d(mask))
    rows, cols = np.nonzero(m)
    if rows.size == 0:
        return Ellipse((0.0, 0.0), 0.0, 0.0, 0.0)
    y, x = rows * sp[0], cols * sp[1]
    cy, cx = float(y.mean()), float(x.mean())
    # covariance of a uniform pixel square adds 1/12 pixel^2 per axis
    cov = np.cov(np.stack([x - cx, y - cy]), bias=True) + np.diag([sp[1] ** 2, sp[0] ** 2]) / 12
    evals, evecs = np.linalg.eigh(cov)
    b, a = (2 * math.sqrt(max(float(v), 0.0)) for v in evals)
    major = evecs[:, 1]
    return Ellipse((cy, cx), a, b, math.atan2(float(major[1]), float(major[0])))


def head_circumference_mm(mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0)) -> float:
    """Head circumference: the perimeter of the ellipse fitted to the head mask (HC18's measure)."""
    return fit_ellipse(mask, spacing).perimeter


def area(mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0)) -> float:
    """Area in mm² (pixel count times pixel area)."""
    row_mm, col_mm = _check_spacing(spacing)
    return float(np.count_nonzero(_mask2d(mask))) * float(row_mm) * float(col_mm)


def longest_diameter_mm(mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0)) -> float:
    """Largest distance between two points of the mask (maximum Feret diameter), in mm, measured
    between pixel corners of the largest connected component."""
    sp = _check_spacing(spacing)
    m = largest_component(_mask2d(mask))
    if not m.any():
        return 0.0
    rows, cols = np.nonzero(m)
    corners = np.concatenate(
        [np.stack([(rows + dr) * sp[0], (cols + dc) * sp[1]], 1) for dr in (0, 1) for dc in (0, 1)]
    )
    pts = _hull(corners)
    diff = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((diff**2).sum(-1)).max())


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull vertices (scipy's Qhull); the points themselves when they are collinear."""
    from scipy.spatial import ConvexHull, QhullError

    pts = np.unique(points, axis=0)
    if len(pts) < 3:
        return pts
    try:
        return pts[ConvexHull(pts).vertices]
    except QhullError:
        return pts


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (the mask itself when empty)."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1)


MEASURES = {
    "head circumference": head_circumference_mm,
    "area": area,
    "longest diameter": longest_diameter_mm,
}


def measure(mask: np.ndarray, kind: str, spacing: Sequence[float] = (1.0, 1.0)) -> float:
    """Measure ``kind`` (one of ``MEASURES``) on a mask."""
    if kind not in MEASURES:
        raise ValueError(f"unknown measurement {kind!r}; expected one of {', '.join(MEASURES)}")
    return MEASURES[kind](mask, spacing)


def format_value(kind: str, value: float) -> str:
    """The number as answers write it: one decimal for lengths, whole mm² for areas."""
    return f"{value:.0f}" if kind == "area" else f"{value:.1f}"


def _find(answer: str) -> re.Match | None:
    """The first "kind ... value unit" of an answer whose unit fits the kind (mm² for an area)."""
    for m in _KIND_RE.finditer(answer):
        if (m.group(1) == "area") == (m.group(3) != "mm"):
            return m
    return None


def parse_measurement(answer: str) -> tuple[str, float] | None:
    """``(kind, value)`` of the first measurement stated in an answer, or None."""
    m = _find(answer)
    return (m.group(1), float(m.group(2))) if m else None


# what a question asks to measure, when its answer does not say it in a parsable way
_ASKED = (
    ("head circumference", re.compile(r"circumference|\bHC\b", re.I)),
    ("longest diameter", re.compile(r"diameter|at its longest|at its widest|most distant", re.I)),
    ("area", re.compile(r"\barea\b|mm²", re.I)),
)


def asked_measurement(question: str) -> str | None:
    """The measurement a question asks for (``head circumference``, ``longest diameter``,
    ``area``), or None."""
    return next((kind for kind, pattern in _ASKED if pattern.search(question or "")), None)


def ground_measurement(
    answer: str, mask: np.ndarray | None, spacing: Sequence[float], question: str | None = None
) -> tuple[str, dict | None]:
    """Put the value measured on ``mask`` into a measurement answer.

    A number the answer states ("... head circumference of 12.0 mm") is replaced by the
    measured one; when the answer states none but ``question`` asks for a measurement, the
    measured value is appended ("Measured on the mask: head circumference 172.4 mm.").

    Returns ``(answer, info)``: ``info`` is ``{"kind", "value", "unit", "model_value"}``
    (``model_value``: the number the language model wrote, None when it wrote none) when a
    measurement was made, else None and the answer unchanged (also without a mask).
    """
    if mask is None:
        return answer, None
    m = _find(answer)
    if m is not None:
        kind = m.group(1)
        text = format_value(kind, measure(mask, kind, spacing))
        info = {"kind": kind, "value": float(text), "unit": UNITS[kind], "model_value": float(m.group(2))}
        start, end = m.span(2)
        return answer[:start] + text + answer[end:], info
    kind = asked_measurement(question or "")
    if kind is None:
        return answer, None
    text = format_value(kind, measure(mask, kind, spacing))
    info = {"kind": kind, "value": float(text), "unit": UNITS[kind], "model_value": None}
    return f"{answer.rstrip()} Measured on the mask: {kind} {text} {UNITS[kind]}.", info
