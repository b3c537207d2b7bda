"""A contact sheet of records: image, masks and regions drawn, question and answer beneath."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.core.images import ImageError, read_raster
from mimo.core.records import parse_record
from mimo.core.schema import BoxRegion, MaskRegion, PointRegion, Record, ScribbleRegion

COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
REGION_COLOUR = (0, 255, 255)


def sample_records(path: Path, n: int, seed: int = 0) -> list[Record]:
    """``n`` records drawn evenly at random from a JSONL file (reservoir sampling, streaming)."""
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, str]] = []
    with path.open("r", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            if len(chosen) < n:
                chosen.append((i, line))
            else:
                j = int(rng.integers(0, i + 1))
                if j < n:
                    chosen[j] = (i, line)
    chosen.sort()
    out = []
    for i, line in chosen:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MimoDataError(f"malformed JSON ({exc.msg})", f"{path}:{i + 1}") from None
        out.append(parse_record(obj, f"{path}:{i + 1}"))
    return out


def render_tile(record: Record, image_root: Path, size: int = 256, text_lines: int = 7):
    """One preview tile (a Pillow image) for a record."""
    from PIL import Image, ImageDraw

    if record.image is None:
        img = Image.new("RGB", (size, size), (40, 40, 40))
        scale = 1.0
    else:
        p = image_root / record.image
        try:  # the pixels every command sees (mimo.core.images), within the size limits
            img = Image.fromarray(read_raster(p)).convert("RGB")
        except ImageError as exc:
            raise MimoDataError(f"record {record.id!r}: image not readable ({exc.detail})", p) from None
        scale = size / max(img.width, img.height)
        arr = np.asarray(img).astype(np.float32)
        gpt_masks = [k for t in record.conversations if t.from_ == "gpt" for k in (t.masks or [])]
        for i, key in enumerate(gpt_masks):
            m = rle.decode(record.masks[key])
            if m.shape == arr.shape[:2]:
                arr[m] = 0.55 * arr[m] + 0.45 * np.array(COLOURS[i % len(COLOURS)], np.float32)
        img = Image.fromarray(arr.astype(np.uint8)).resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.NEAREST
        )
    tile = Image.new("RGB", (size, size + 12 * text_lines + 6), (0, 0, 0))
    tile.paste(img, (0, 0))
    draw = ImageDraw.Draw(tile)
    for region in record.regions:
        if isinstance(region, PointRegion):
            for (x, y), lab in zip(region.points, region.labels, strict=True):
                cx, cy = x * scale, y * scale
                col = REGION_COLOUR if lab == 1 else (255, 0, 0)
                draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], outline=col, width=2)
        elif isinstance(region, BoxRegion):
            x0, y0, x1, y1 = (v * scale for v in region.box)
            draw.rectangle([x0, y0, x1, y1], outline=REGION_COLOUR, width=2)
        elif isinstance(region, ScribbleRegion):
            for stroke in region.strokes:
                pts = [(x * scale, y * scale) for x, y in stroke]
                if len(pts) > 1:
                    draw.line(pts, fill=REGION_COLOUR, width=2)
        elif isinstance(region, MaskRegion):
            m = rle.decode(record.masks[region.mask])
            ys, xs = np.nonzero(m)
            if len(xs):
                draw.rectangle(
                    [xs.min() * scale, ys.min() * scale, (xs.max() + 1) * scale, (ys.max() + 1) * scale],
                    outline=REGION_COLOUR,
                    width=1,
                )
    human = next((t.value for t in record.conversations if t.from_ == "human"), "")
    answer = next((t.value for t in record.conversations if t.from_ == "gpt"), "")
    text = f"[{record.perspective or '?'}] Q: {human.replace('<image>', '').strip()} A: {answer}"
    lines = textwrap.wrap(text, width=max(10, size // 6))[:text_lines]
    for i, line in enumerate(lines):
        draw.text((3, size + 3 + 12 * i), line, fill=(235, 235, 235))
    return tile


def preview_grid(path: Path, out: Path, n: int = 16, seed: int = 0, size: int = 256) -> Path:
    """Write a PNG grid of ``n`` sampled records of ``path`` to ``out``."""
    from PIL import Image

    from mimo.core.files import atomic_write_bytes

    records = sample_records(path, n, seed)
    if not records:
        raise MimoDataError("no records to preview", path)
    tiles = [render_tile(r, path.parent, size) for r in records]
    cols = int(np.ceil(np.sqrt(len(tiles))))
    rows = int(np.ceil(len(tiles) / cols))
    th = tiles[0].height
    grid = Image.new("RGB", (cols * (size + 4), rows * (th + 4)), (20, 20, 20))
    for i, t in enumerate(tiles):
        grid.paste(t, ((i % cols) * (size + 4), (i // cols) * (th + 4)))
    import io as _io

    buf = _io.BytesIO()
    grid.save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
    return out
