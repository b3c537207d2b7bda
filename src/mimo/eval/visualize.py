"""A PNG grid of evaluated cases: image, reference outline, predicted overlay, texts below.

Each tile shows the image letterboxed into a ``tile_size`` square, the reference mask as a
green outline, the predicted mask as a translucent red overlay, and beneath it a title,
the question and the answer, wrapped to ``text_lines`` lines.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mimo.core.files import atomic_save

REFERENCE_COLOR = (0, 230, 64)
PREDICTION_COLOR = (255, 40, 40)
PREDICTION_ALPHA = 0.45
LINE_HEIGHT = 12
TEXT_PADDING = 4
CHAR_WIDTH = 6  # the default bitmap font's advance; used to wrap lines


MaskLike = np.ndarray | Sequence[np.ndarray] | None


@dataclass(frozen=True)
class GridCase:
    """One tile: ``image`` is ``(H, W)`` gray or ``(H, W, 3)`` RGB (any numeric dtype);
    masks are boolean ``(H, W)`` arrays, or sequences of them (drawn as their union)."""

    image: np.ndarray
    reference_mask: MaskLike = None
    predicted_mask: MaskLike = None
    question: str = ""
    answer: str = ""
    title: str = ""


def grid_size(
    n_cases: int, *, columns: int = 4, tile_size: int = 256, text_lines: int = 6
) -> tuple[int, int]:
    """The ``(width, height)`` in pixels of the grid ``render_cases_grid`` draws."""
    if n_cases <= 0:
        raise ValueError(f"a cases grid needs at least one case; got {n_cases}")
    used_columns = min(columns, n_cases)
    rows = -(-n_cases // columns)
    return used_columns * tile_size, rows * (tile_size + _text_height(text_lines))


def _text_height(text_lines: int) -> int:
    return text_lines * LINE_HEIGHT + 2 * TEXT_PADDING


def _to_rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"grid case image has shape {array.shape}; expected (H, W) or (H, W, 3)")
    array = array[..., :3]
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scale = 255.0 / (high - low) if high > low else 0.0
        array = np.nan_to_num((array - low) * scale).clip(0, 255).astype(np.uint8)
    return array


def _union(mask: MaskLike, shape: tuple[int, int]) -> np.ndarray | None:
    if mask is None:
        return None
    masks = [mask] if isinstance(mask, np.ndarray) else list(mask)
    if not masks:
        return None
    union = np.zeros(shape, dtype=bool)
    for m in masks:
        m = np.asarray(m).astype(bool)
        if m.shape != shape:
            raise ValueError(f"grid case mask has shape {m.shape}; expected the image's {shape}")
        union |= m
    return union


def _fit(size: tuple[int, int], tile_size: int) -> tuple[int, int, int, int]:
    """(new_w, new_h, offset_x, offset_y) to letterbox an image of ``size`` = (w, h)."""
    w, h = size
    scale = tile_size / max(w, h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    return new_w, new_h, (tile_size - new_w) // 2, (tile_size - new_h) // 2


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it, thickened by one pixel."""
    padded = np.pad(mask, 1)
    interior = (
        padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )
    edge = mask & ~interior
    thick = np.pad(edge, 1)
    return edge | thick[:-2, 1:-1] | thick[2:, 1:-1] | thick[1:-1, :-2] | thick[1:-1, 2:]


def _tile(case: GridCase, tile_size: int) -> Image.Image:
    rgb = _to_rgb(case.image)
    shape = rgb.shape[:2]
    new_w, new_h, ox, oy = _fit((shape[1], shape[0]), tile_size)
    picture = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BILINEAR)).astype(
        np.float64
    )

    def resized(mask: MaskLike) -> np.ndarray | None:
        union = _union(mask, shape)
        if union is None:
            return None
        small = Image.fromarray(union.astype(np.uint8) * 255).resize((new_w, new_h), Image.Resampling.NEAREST)
        return np.asarray(small) > 127

    predicted = resized(case.predicted_mask)
    if predicted is not None:
        picture[predicted] = (1 - PREDICTION_ALPHA) * picture[predicted] + PREDICTION_ALPHA * np.array(
            PREDICTION_COLOR
        )
    reference = resized(case.reference_mask)
    if reference is not None:
        picture[_outline(reference)] = REFERENCE_COLOR
    tile = Image.new("RGB", (tile_size, tile_size))
    tile.paste(Image.fromarray(picture.astype(np.uint8)), (ox, oy))
    return tile


def _wrapped(case: GridCase, tile_size: int, text_lines: int) -> list[str]:
    width = max(8, (tile_size - 2 * TEXT_PADDING) // CHAR_WIDTH)
    lines: list[str] = []
    for text in (case.title, f"Q: {case.question}" if case.question else "", f"A: {case.answer}"):
        if text:
            lines.extend(textwrap.wrap(text, width=width) or [""])
    if len(lines) > text_lines:
        lines = lines[:text_lines]
        lines[-1] = lines[-1][: width - 3] + "..."
    return lines


def render_cases_grid(
    cases: Sequence[GridCase],
    path: str | Path,
    *,
    columns: int = 4,
    tile_size: int = 256,
    text_lines: int = 6,
) -> Path:
    """Draw ``cases`` row by row, ``columns`` per row, and save the PNG at ``path``.

    The image's size is ``grid_size(len(cases), columns=..., tile_size=..., text_lines=...)``.
    """
    width, height = grid_size(len(cases), columns=columns, tile_size=tile_size, text_lines=text_lines)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    cell_height = tile_size + _text_height(text_lines)
    for i, case in enumerate(cases):
        x, y = (i % columns) * tile_size, (i // columns) * cell_height
        canvas.paste(_tile(case, tile_size), (x, y))
        for j, line in enumerate(_wrapped(case, tile_size, text_lines)):
            draw.text(
                (x + TEXT_PADDING, y + tile_size + TEXT_PADDING + j * LINE_HEIGHT),
                line,
                fill=(0, 0, 0),
                font=font,
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(Path(path), lambda p: canvas.save(p, format="PNG"))
    return path
