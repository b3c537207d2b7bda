"""What the viewer draws: the image enlarged for the screen, each mask in its colour (fill and
outline), the visual prompts numbered in ``<region>`` order, and the answer as HTML with each
grounded phrase in its mask's colour plus a legend.

Colours are ``mimo.infer.render.PALETTE``'s, so the page, ``mimo chat --out`` and the
evaluation figures agree.
"""

from __future__ import annotations

import html

import numpy as np
from PIL import Image, ImageDraw

from mimo.core.answers import parse_answer
from mimo.infer.predictor import Prediction
from mimo.infer.render import PALETTE, draw_prompts
from mimo.serve.prompts import Prompts

DISPLAY_SIZE = 768  # long side of the shown image, so small scans are not postage stamps
FILL_ALPHA = 0.42
PENDING_COLOR = (0, 229, 255)


def hex_color(index: int) -> str:
    r, g, b = PALETTE[index % len(PALETTE)]
    return f"#{r:02x}{g:02x}{b:02x}"


def display_scale(shape: tuple[int, ...]) -> float:
    """Enlargement of an image of ``shape`` on screen (never shrunk: big scans stay sharp).

    A display zoom, not the model's ``mimo.model.frame.SquareFrame``: no padding, a target
    that depends on the image, clicks read back as whole pixel indices (``handlers.click``)."""
    return max(1.0, DISPLAY_SIZE / max(shape[:2]))


def _rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.ascontiguousarray(array[..., :3].astype(np.uint8))


def render(
    image: np.ndarray,
    prediction: Prediction | None = None,
    visible: list[int] | None = None,
    prompts: Prompts | None = None,
) -> np.ndarray:
    """The viewer picture: ``image`` enlarged by ``display_scale``, masks ``visible`` (segment
    indices; all when None) filled and outlined in their colours, then the prompts."""
    from scipy import ndimage

    scale = display_scale(image.shape)
    height, width = image.shape[:2]
    size = (round(width * scale), round(height * scale))
    base = Image.fromarray(_rgb(image))
    if scale != 1.0:
        base = base.resize(size, Image.Resampling.BICUBIC)
    picture = np.asarray(base).astype(np.float32)
    segments = prediction.segments if prediction is not None else []
    shown = range(len(segments)) if visible is None else visible
    for i in shown:
        if not 0 <= i < len(segments):
            continue
        mask = np.asarray(segments[i].mask, bool)
        if scale != 1.0:
            mask = (
                np.asarray(
                    Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
                )
                > 0
            )
        color = np.array(PALETTE[i % len(PALETTE)], np.float32)
        picture[mask] = (1 - FILL_ALPHA) * picture[mask] + FILL_ALPHA * color
        edge = mask & ~ndimage.binary_erosion(mask, iterations=2)
        picture[edge] = color
    canvas = Image.fromarray(picture.clip(0, 255).astype(np.uint8))
    if prompts is not None and len(prompts) + (prompts.pending_corner is not None):
        _draw_prompts(canvas, prompts, scale)
    return np.asarray(canvas)


def _draw_prompts(canvas: Image.Image, prompts: Prompts, scale: float) -> None:
    # the viewer's boxes hold the two clicked pixels; records' boxes end one pixel further
    regions = [
        (kind, [g[0], g[1], g[2] + 1, g[3] + 1] if kind == "box" else g) for kind, g in prompts.region_order()
    ]
    draw_prompts(canvas, regions, scale)
    if prompts.pending_corner is not None:
        draw = ImageDraw.Draw(canvas)
        x, y = ((v + 0.5) * scale for v in prompts.pending_corner)
        draw.line([x - 12, y, x + 12, y], fill=PENDING_COLOR, width=3)
        draw.line([x, y - 12, x, y + 12], fill=PENDING_COLOR, width=3)


def answer_html(answer: str) -> str:
    """The answer's text with each grounded phrase in its mask's colour (``mimo-seg`` spans
    numbered like the legend); ungrounded phrases in italics."""
    parsed = parse_answer(answer)
    text = parsed.text
    pieces, last = [], 0
    for item in sorted(parsed.items, key=lambda i: i.start):
        if item.start == item.end and item.seg_index is None:
            continue
        pieces.append(html.escape(text[last : item.start]))
        phrase = html.escape(text[item.start : item.end])
        if item.seg_index is None:
            pieces.append(f"<em>{phrase}</em>")
        else:
            n = item.seg_index
            color = hex_color(n)
            shown = phrase or "&#9632;"
            pieces.append(
                f'<span class="mimo-seg" data-seg="{n + 1}" style="background:{color};color:#fff;'
                f'border-radius:4px;padding:0 4px">{shown}<sup>{n + 1}</sup></span>'
            )
        last = item.end
    pieces.append(html.escape(text[last:]))
    return "".join(pieces)


def legend_html(prediction: Prediction | None, visible: list[int] | None = None) -> str:
    """The latest answer, coloured, above a legend: swatch, phrase, area and score per mask."""
    if prediction is None:
        return (
            '<div class="mimo-legend mimo-empty">Ask a question: grounded terms of the answer '
            "appear here in the colour of their mask.</div>"
        )
    rows = []
    for i, segment in enumerate(prediction.segments):
        hidden = visible is not None and i not in visible
        phrase = html.escape(segment.phrase or "(no phrase)")
        rows.append(
            f'<li class="{"mimo-hidden" if hidden else ""}"><span class="mimo-swatch" '
            f'style="background:{hex_color(i)}"></span><b>{i + 1}</b> {phrase}'
            f'<span class="mimo-meta">{int(segment.mask.sum())} px · score {segment.score:.2f}</span></li>'
        )
    body = "<ul>" + "".join(rows) + "</ul>" if rows else '<p class="mimo-meta">No mask in this answer.</p>'
    return (
        f'<div class="mimo-legend"><div class="mimo-answer">{answer_html(prediction.answer)}</div>'
        f"{body}</div>"
    )
