"""Showing and saving a prediction: marked-up terminal text, an overlay PNG with a legend, one
PNG per mask and a JSON with COCO RLE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mimo.core import rle
from mimo.core.answers import parse_answer
from mimo.core.files import atomic_save, atomic_write_text, safe_name
from mimo.infer.predictor import Prediction

# Distinct colours (Tableau 10), one per grounded phrase in answer order.
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
RICH_COLORS = (
    "blue",
    "dark_orange",
    "green",
    "red",
    "purple",
    "brown",
    "magenta",
    "grey50",
    "yellow",
    "cyan",
)
PROMPT_COLOR = (255, 212, 0)  # the user's visual prompts (page, overlays)
ALPHA = 0.5


def marked_text(prediction: Prediction, rich: bool = False) -> str:
    """The answer's text with each grounded phrase marked ``[n]phrase`` (1-based segment
    number), or coloured with rich markup (the overlay's colour) when ``rich``."""
    parsed = parse_answer(prediction.answer)
    text = parsed.text
    pieces, last = [], 0
    for item in sorted(parsed.items, key=lambda i: i.start):
        if item.seg_index is None or item.start == item.end:
            continue
        pieces.append(_escape(text[last : item.start], rich))
        phrase = text[item.start : item.end]
        if rich:
            color = RICH_COLORS[item.seg_index % len(RICH_COLORS)]
            pieces.append(f"[bold {color}]{_escape(phrase, True)}[/] [dim]\\[{item.seg_index + 1}][/]")
        else:
            pieces.append(f"[{item.seg_index + 1}]{phrase}")
        last = item.end
    pieces.append(_escape(text[last:], rich))
    return "".join(pieces)


def _escape(text: str, rich: bool) -> str:
    if not rich:
        return text
    from rich.markup import escape

    return escape(text)


def _rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        lo, hi = float(array.min()), float(array.max())
        array = (
            ((array - lo) / (hi - lo) * 255).astype(np.uint8) if hi > lo else np.zeros_like(array, np.uint8)
        )
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return array[..., :3]


def overlay(
    image: np.ndarray,
    prediction: Prediction,
    legend: bool = True,
    boxes: list | None = None,
    min_side: int = 0,
    points: list | None = None,
    scribbles: list | None = None,
    masks: list | None = None,
) -> Image.Image:
    """The image with each segment's mask in its own colour and a legend strip below.

    The user's visual prompts (image pixels, as ``Predictor.predict`` takes them) are drawn by
    :func:`draw_prompts`: ``boxes`` ``[x0, y0, x1, y1]`` as outlines, ``points`` ``(x, y)`` as
    ringed dots, ``scribbles`` (strokes of ``(x, y)``) as lines, ``masks`` (H, W) as their
    outline; numbered in ``<region>`` order when there are several. ``min_side``: enlarge small
    images (nearest neighbour, whole pixels) to at least this side.
    """
    picture = _rgb(image).astype(np.float32)
    for i, segment in enumerate(prediction.segments):
        color = np.array(PALETTE[i % len(PALETTE)], dtype=np.float32)
        mask = segment.mask
        picture[mask] = (1 - ALPHA) * picture[mask] + ALPHA * color
    canvas = Image.fromarray(picture.clip(0, 255).astype(np.uint8))
    scale = max(1, -(-min_side // max(canvas.size))) if min_side else 1
    if scale > 1:
        canvas = canvas.resize((canvas.width * scale, canvas.height * scale), Image.NEAREST)
    regions = region_list(points or [], boxes or [], scribbles or [], masks or [])
    if regions:  # numbered only when there is more than one to tell apart
        draw_prompts(canvas, regions, scale, numbered=len(regions) > 1)
    if not legend or not prediction.segments:
        return canvas
    line = 14
    font = ImageFont.load_default()
    labels = [
        f"[{i + 1}] {segment.phrase or '(no phrase)'}  score {segment.score:.2f}"
        for i, segment in enumerate(prediction.segments)
    ]
    probe = ImageDraw.Draw(canvas)
    width = max(canvas.width, 20 + max(int(probe.textlength(label, font=font)) for label in labels))
    out = Image.new("RGB", (width, canvas.height + line * len(labels) + 4), (255, 255, 255))
    out.paste(canvas, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, label in enumerate(labels):
        y = canvas.height + 2 + i * line
        draw.rectangle([2, y + 2, 12, y + 12], fill=PALETTE[i % len(PALETTE)])
        draw.text((16, y), label, fill=(0, 0, 0), font=font)
    return out


def region_list(points=(), boxes=(), scribbles=(), masks=()) -> list[tuple[str, object]]:
    """Visual prompts as ``(kind, geometry)`` in ``<region>`` order (points, boxes, scribbles,
    masks), as :func:`draw_prompts` takes them."""
    return (
        [("point", p) for p in points]
        + [("box", b) for b in boxes]
        + [("scribble", s) for s in scribbles]
        + [("mask", m) for m in masks]
    )


def draw_prompts(
    canvas: Image.Image, regions: list[tuple[str, object]], scale: float, numbered: bool = True
) -> None:
    """Draw visual prompts on ``canvas`` (the image enlarged ``scale`` times) in place, in
    ``PROMPT_COLOR`` with a dark edge so they show on any image, each numbered in ``<region>``
    order when ``numbered``. Geometry in image pixels: a point ``(x, y)``; a box ``[x0, y0, x1,
    y1]`` with exclusive far edges (as the records store it); a scribble, one stroke of ``(x, y)``
    or a list of strokes; a mask, an (H, W) array outlined."""
    from scipy import ndimage

    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=16)

    def at(p):
        return (p[0] + 0.5) * scale, (p[1] + 0.5) * scale

    def label(n: int, x: float, y: float) -> None:
        if not numbered:
            return
        box = draw.textbbox((x, y), str(n), font=font)
        draw.rectangle([box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2], fill=(0, 0, 0))
        draw.text((x, y), str(n), fill=PROMPT_COLOR, font=font)

    for n, (kind, geometry) in enumerate(regions, start=1):
        if kind == "point":
            x, y = at(geometry)
            draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=PROMPT_COLOR, outline=(0, 0, 0), width=2)
            label(n, x + 9, y - 22)
        elif kind == "box":
            x0, y0, x1, y1 = (v * scale for v in geometry)
            draw.rectangle([x0 - 1, y0 - 1, x1, y1], outline=(0, 0, 0), width=5)
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=PROMPT_COLOR, width=3)
            label(n, x0 + 2, y0 - 22)
        elif kind == "scribble":
            strokes = list(geometry)
            if strokes and np.ndim(strokes[0]) == 1:  # a bare stroke
                strokes = [strokes]
            for stroke in strokes:
                xy = [at(p) for p in stroke]
                if len(xy) > 1:
                    draw.line(xy, fill=(0, 0, 0), width=7, joint="curve")
                    draw.line(xy, fill=PROMPT_COLOR, width=4, joint="curve")
                for x, y in xy:
                    draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=PROMPT_COLOR)
            if strokes and strokes[0]:
                first = at(strokes[0][0])
                label(n, first[0] + 8, first[1] - 22)
        elif kind == "mask":
            mask = np.asarray(geometry, dtype=bool)
            if scale != 1:
                shown = Image.fromarray(mask.astype(np.uint8) * 255).resize(canvas.size, Image.NEAREST)
                mask = np.asarray(shown) > 0
            edge = mask & ~ndimage.binary_erosion(mask, iterations=2)
            pixels = np.array(canvas)
            pixels[edge] = PROMPT_COLOR
            canvas.paste(Image.fromarray(pixels))
            rows, cols = np.nonzero(edge)
            if rows.size:
                label(n, float(cols.min()) + 2, float(rows.min()) - 22)
        else:
            raise ValueError(f"unknown visual prompt kind {kind!r}; expected point, box, scribble or mask")


def write_prediction(
    out_dir: str | Path,
    image: np.ndarray,
    prediction: Prediction,
    stem: str = "answer",
    prompts: dict | None = None,
) -> dict:
    """Write ``{stem}_overlay.png``, ``{stem}_mask{n}_{phrase}.png`` and ``{stem}.json``;
    returns the JSON written (answer, text, segments with phrase, score, mask file and RLE).
    ``prompts``: the visual prompts asked with (``points``, ``boxes``, ``scribbles``, ``masks``
    keys, as ``overlay`` takes them), drawn on the overlay."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    picture = overlay(image, prediction, **(prompts or {}))
    atomic_save(out_dir / f"{stem}_overlay.png", picture.save)
    segments = []
    for i, segment in enumerate(prediction.segments):
        name = f"{stem}_mask{i + 1}_{safe_name(segment.phrase or 'segment')}.png"
        atomic_save(out_dir / name, Image.fromarray(segment.mask.astype(np.uint8) * 255).save)
        encoded = rle.encode(segment.mask)
        segments.append(
            {
                "index": i + 1,
                "phrase": segment.phrase,
                "score": segment.score,
                "area": int(segment.mask.sum()),
                "mask_file": name,
                "rle": {"size": list(encoded.size), "counts": encoded.counts},
            }
        )
    data = {
        "answer": prediction.answer,
        "text": prediction.text,
        "image_size": list(np.asarray(image).shape[:2]),
        "overlay": f"{stem}_overlay.png",
        "segments": segments,
    }
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(data, indent=2) + "\n")
    return data
