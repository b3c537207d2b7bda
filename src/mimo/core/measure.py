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

    For a filled ellipse this recovers it exactly (up to pixelation); a blob's extra parts pull
    it (the head circumference takes ``fit_head_ellipse``, which they do not). Only the largest
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
    """Head circumference: the perimeter of the head's ellipse (HC18's measure), fitted to the
    mask's outline so that a predicted mask leaking past the skull does not inflate it
    (``fit_head_ellipse``)."""
    return fit_head_ellipse(mask, spacing).perimeter


def fit_head_ellipse(
    mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0), trials: int = 400, seed: int = 0
) -> Ellipse:
    """The ellipse that most of the mask's outline follows, with the mask around it (in mm).

    A predicted head mask is often the skull's ellipse plus a leak into the tissue beside it;
    the moments of such a mask (``fit_ellipse``) grow with the leak. Here the outline (the
    sub-pixel 0.5 contour of the largest component, holes filled) is fitted by RANSAC: ellipses
    through 5 outline points, scored by the outline points within 6% of the head's radius of
    them, kept only when the mask covers them (a ring at 92% of each axis inside the mask) and
    they are head-shaped (axes between 0.3 and 2 times the mask's equivalent radius, ratio
    below 3). The best is refitted to its inliers by least squares (Halir and Flusser's direct
    ellipse fit). A mask that is an ellipse gives that ellipse; without a valid candidate the
    moments' ellipse is returned. Deterministic (``seed``).
    """
    from scipy import ndimage

    sp = _check_spacing(spacing)
    m = ndimage.binary_fill_holes(largest_component(_mask2d(mask)))
    points = _outline_mm(m, sp)
    if len(points) < 8:
        return fit_ellipse(m, sp)
    radius = math.sqrt(float(m.sum()) * sp[0] * sp[1] / math.pi)
    rng = np.random.default_rng(seed)
    samples = np.stack([rng.choice(len(points), 5, replace=False) for _ in range(trials)])
    conics = np.linalg.svd(_design(points[samples]))[2][:, -1]  # (trials, 6): each through 5 points
    inliers = np.abs(_sampson(conics, points)) < 0.06 * radius  # (trials, n)
    valid = _head_like(conics, m, sp, radius)
    if not valid.any():
        return fit_ellipse(m, sp)
    best = int(np.argmax(np.where(valid, inliers.sum(1), -1)))
    conic = _direct_fit(points[inliers[best]])
    if conic is None or not _head_like(conic[None], m, sp, radius)[0]:
        conic = conics[best]
    return _conic_ellipse(conic)


def _outline_mm(mask: np.ndarray, sp: tuple[float, float], max_points: int = 400) -> np.ndarray:
    """``(n, 2)`` points ``(x, y)`` in mm along the longest 0.5 contour of a mask, at most
    ``max_points`` of them, evenly spaced along it."""
    from skimage.measure import find_contours

    contours = find_contours(np.pad(mask, 1).astype(np.float32), 0.5)
    if not contours:
        return np.zeros((0, 2))
    rc = max(contours, key=len) - 1
    rc = rc[np.linspace(0, len(rc) - 1, min(len(rc), max_points)).astype(int)]
    return np.stack([rc[:, 1] * sp[1], rc[:, 0] * sp[0]], 1)


def _design(xy: np.ndarray) -> np.ndarray:
    """Rows ``[x², xy, y², x, y, 1]`` of points ``(..., 2)``."""
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([x * x, x * y, y * y, x, y, np.ones_like(x)], -1)


def _sampson(conics: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``(k, n)`` first-order geometric distances of ``n`` points from ``k`` conics."""
    a, b, c, d, e, _ = (conics[:, i : i + 1] for i in range(6))
    x, y = xy[None, :, 0], xy[None, :, 1]
    value = _design(xy) @ conics.T
    gx, gy = 2 * a * x + b * y + d, b * x + 2 * c * y + e
    return value.T / np.maximum(np.sqrt(gx * gx + gy * gy), 1e-12)


def _conic_params(conics: np.ndarray) -> tuple[np.ndarray, ...]:
    """Centre ``(k, 2)``, semi-axes ``(k,)`` ``a >= b`` and the angle of ``a`` of ``k`` conics
    (NaN where a conic is not a real ellipse)."""
    conics = conics * np.sign(conics[:, :1] + conics[:, 2:3])  # a + c > 0: the same conic, one sign
    a, b, c, d, e, f = conics.T
    det = 4 * a * c - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        xc, yc = (b * e - 2 * c * d) / det, (b * d - 2 * a * e) / det
        value = a * xc * xc + b * xc * yc + c * yc * yc + d * xc + e * yc + f  # the conic at the centre
        root = np.sqrt((a - c) ** 2 + b * b)
        small, large = (a + c - root) / 2, (a + c + root) / 2  # eigenvalues of [[a, b/2], [b/2, c]]
        major, minor = np.sqrt(-value / small), np.sqrt(-value / large)
    angle = 0.5 * np.arctan2(-b, c - a)  # direction of the smaller eigenvalue's axis
    ok = (det > 0) & np.isfinite(major) & np.isfinite(minor)
    return np.stack([xc, yc], 1), np.where(ok, major, np.nan), np.where(ok, minor, np.nan), angle


def _head_like(conics: np.ndarray, mask: np.ndarray, sp: tuple[float, float], radius: float) -> np.ndarray:
    """Which conics are real ellipses of a head's size and shape that the mask covers."""
    centre, major, minor, angle = _conic_params(conics)
    with np.errstate(invalid="ignore"):
        ok = (minor > 0.3 * radius) & (major < 2 * radius) & (major < 3 * minor)
    s = np.linspace(0, 2 * np.pi, 72, endpoint=False)[None]
    u, v = 0.92 * np.nan_to_num(major)[:, None] * np.cos(s), 0.92 * np.nan_to_num(minor)[:, None] * np.sin(s)
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = np.nan_to_num(centre[:, :1]) + u * cos - v * sin
    y = np.nan_to_num(centre[:, 1:]) + u * sin + v * cos
    rows, cols = np.round(y / sp[0]).astype(int), np.round(x / sp[1]).astype(int)
    inside = (rows >= 0) & (rows < mask.shape[0]) & (cols >= 0) & (cols < mask.shape[1])
    covered = inside & mask[rows.clip(0, mask.shape[0] - 1), cols.clip(0, mask.shape[1] - 1)]
    return ok & (covered.mean(1) >= 0.9)


def _direct_fit(xy: np.ndarray) -> np.ndarray | None:
    """Least-squares ellipse through points (Halir and Flusser's stable form of Fitzgibbon's
    direct fit), as conic coefficients; None when the points do not give an ellipse."""
    if len(xy) < 6:
        return None
    shift, scale = xy.mean(0), max(float(xy.std()), 1e-9)
    p = (xy - shift) / scale
    d1, d2 = _design(p)[:, :3], _design(p)[:, 3:]
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    try:
        t = -np.linalg.solve(s3, s2.T)
        m = s1 + s2 @ t
        m = np.stack([m[2] / 2, -m[1], m[0] / 2])
        _, vecs = np.linalg.eig(m)
    except np.linalg.LinAlgError:
        return None
    vecs = np.real(vecs)
    good = 4 * vecs[0] * vecs[2] - vecs[1] ** 2 > 0
    if not good.any():
        return None
    a1 = vecs[:, int(np.argmax(good))]
    a, b, c, d, e, f = np.concatenate([a1, t @ a1])
    # undo the normalisation: x' = (x - sx) / k, y' = (y - sy) / k
    (sx, sy), k = shift, scale
    return np.array(
        [
            a / k**2,
            b / k**2,
            c / k**2,
            (-2 * a * sx - b * sy) / k**2 + d / k,
            (-b * sx - 2 * c * sy) / k**2 + e / k,
            (a * sx * sx + b * sx * sy + c * sy * sy) / k**2 - (d * sx + e * sy) / k + f,
        ]
    )


def _conic_ellipse(conic: np.ndarray) -> Ellipse:
    centre, major, minor, angle = _conic_params(conic[None])
    return Ellipse(
        (float(centre[0, 1]), float(centre[0, 0])), float(major[0]), float(minor[0]), float(angle[0])
    )


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
