"""Small synthetic grounding tasks on shape images, used by tests, benchmarks and examples.

Each image holds a few bright shapes (square, disc, triangle) on a dark, noisy background; the
tasks are "segment the X" (perspective I) and "what is in <region>?" (perspective II).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("square", "disc", "triangle")


def shape_image(rng: np.random.Generator, size: int = 64, shapes: tuple[str, ...] = SHAPES):
    """An image with one of each shape at random, non-overlapping places; returns (image, masks)."""
    while True:
        masks, boxes = {}, []
        for name in shapes:
            r = int(rng.integers(size // 10, size // 6))
            cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, size=2))
            layer = Image.new("L", (size, size), 0)
            draw = ImageDraw.Draw(layer)
            if name == "square":
                draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=255)
            elif name == "disc":
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=255)
            masks[name] = np.asarray(layer) > 0
            boxes.append((cx - r - 1, cy - r - 1, cx + r + 1, cy + r + 1))
        union = np.zeros((size, size), dtype=int)
        for m in masks.values():
            union += m
        if union.max() <= 1:
            break
    brightness = {"square": 200, "disc": 150, "triangle": 250}
    array = rng.normal(30, 8, (size, size))
    for name, m in masks.items():
        array[m] = brightness.get(name, 200) + rng.normal(0, 8, m.sum())
    return np.clip(array, 0, 255).astype(np.uint8), masks


def grounding_samples(n: int, seed: int = 0, size: int = 64) -> list[dict]:
    """``n`` samples, alternating "segment the X" and "what is in <region>?" (box prompt)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        image, masks = shape_image(rng, size)
        name = SHAPES[i % len(SHAPES)]
        if i % 2 == 0:
            conv = [
                {"from": "human", "value": f"<image>\nSegment the {name}."},
                {"from": "gpt", "value": f"<p>{name}</p> <SEG>.", "masks": ["m0"]},
            ]
            regions = []
        else:
            ys, xs = np.nonzero(masks[name])
            conv = [
                {"from": "human", "value": "<image>\nWhat is in <region>?"},
                {"from": "gpt", "value": f"It is the <p>{name}</p> <SEG>.", "masks": ["m0"]},
            ]
            regions = [
                {"type": "box", "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]}
            ]
        samples.append(
            {"image": image, "conversations": conv, "regions": regions, "masks": {"m0": masks[name]}}
        )
    return samples


def same_image_region_samples(seed: int = 2, size: int = 64) -> list[dict]:
    """One image, one "what is in <region>?" sample per shape: only the box differs."""
    rng = np.random.default_rng(seed)
    image, masks = shape_image(rng, size)
    samples = []
    for name in SHAPES:
        ys, xs = np.nonzero(masks[name])
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        samples.append(
            {
                "image": image,
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat is in <region>?"},
                    {"from": "gpt", "value": f"It is the <p>{name}</p> <SEG>.", "masks": ["m0"]},
                ],
                "regions": [{"type": "box", "box": box}],
                "masks": {"m0": masks[name]},
            }
        )
    return samples


def multi_and_negative_samples(seed: int = 1, size: int = 64) -> list[dict]:
    """Two extra samples: an answer with two grounded terms, and a "not present" answer."""
    rng = np.random.default_rng(seed)
    image, masks = shape_image(rng, size)
    multi = {
        "image": image,
        "conversations": [
            {"from": "human", "value": "<image>\nSegment the square and the disc."},
            {"from": "gpt", "value": "<p>square</p> <SEG> and <p>disc</p> <SEG>.", "masks": ["m0", "m1"]},
        ],
        "regions": [],
        "masks": {"m0": masks["square"], "m1": masks["disc"]},
    }
    image, masks = shape_image(rng, size, shapes=("square", "disc"))
    negative = {
        "image": image,
        "conversations": [
            {"from": "human", "value": "<image>\nSegment the triangle."},
            {"from": "gpt", "value": "There is no triangle in this image."},
        ],
        "regions": [],
        "masks": {},
    }
    return [multi, negative]


def texts_of(samples: list[dict]) -> list[str]:
    return [turn["value"] for s in samples for turn in s["conversations"]]
