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


def volume_samples(seed: int = 7, n: int = 3, question: str = "Segment the square.") -> list[dict]:
    """``n`` "Segment the square." samples on fresh images (slices for volume tests)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        image, masks = shape_image(rng, 64)
        samples.append(
            {
                "image": image,
                "conversations": [
                    {"from": "human", "value": f"<image>\n{question}"},
                    {"from": "gpt", "value": "<p>square</p> <SEG>.", "masks": ["m0"]},
                ],
                "regions": [],
                "masks": {"m0": masks["square"]},
            }
        )
    return samples


def overfit_samples() -> list[dict]:
    """The test suite's training set, in this order: 4 alternating I/II samples, 3 region
    questions on one image (``same_image_region_samples``), 3 volume slices, then the
    two-phrase answer and the "not present" answer."""
    return (
        grounding_samples(4) + same_image_region_samples() + volume_samples() + multi_and_negative_samples()
    )


def texts_of(samples: list[dict]) -> list[str]:
    return [turn["value"] for s in samples for turn in s["conversations"]]


def overfit_tiny(
    samples: list[dict],
    system_prompt: str = "You are MIMO.",
    max_steps: int = 600,
    dice_target: float = 0.97,
    ce_target: float = 0.05,
    lr: float = 1.5e-3,
    seed: int = 0,
    use_aligner: bool = True,
) -> dict:
    """Train a fresh ``tiny`` model on ``samples`` (one full batch) until the training masks
    reach ``dice_target`` and the text cross-entropy falls under ``ce_target`` (checked every
    10 steps) or ``max_steps`` pass. Returns ``{"model", "processor", "history"}``; history rows
    are ``(step, ce, bce, dice_loss, mask_dice)``."""
    import torch

    from mimo.model.modeling_mimo import MimoForConditionalGeneration
    from mimo.model.presets import tiny_config
    from mimo.model.processing_mimo import MimoProcessor
    from mimo.model.tokenizer import train_tokenizer

    torch.manual_seed(seed)
    seeds = MimoProcessor.template.tokenizer_seed_texts(system_prompt)
    tokenizer = train_tokenizer(texts_of(samples) + seeds + ["this region"], 200)
    model = MimoForConditionalGeneration(tiny_config(vocab_size=len(tokenizer), use_aligner=use_aligner))
    model.resize_for_tokenizer(tokenizer)
    processor = MimoProcessor.for_model(tokenizer, model.config, system_prompt=system_prompt)
    processed = [
        processor.process_sample(s["image"], s["conversations"], s["regions"], s["masks"]) for s in samples
    ]
    batch = processor.collate(processed)
    batch.pop("image_size")
    targets = batch["seg_masks"] > 0.5
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    history = []
    for step in range(max_steps):
        out = model(**batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if step % 10 == 0 or step == max_steps - 1:
            pred = torch.cat(out.mask_logits).detach() > 0
            inter = (pred & targets).flatten(1).sum(1).float()
            total = (pred.flatten(1).sum(1) + targets.flatten(1).sum(1)).float()
            dice = float(
                torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total)).mean()
            )
            losses = (out.ce_loss, out.bce_loss, out.dice_loss)
            row = (step, *(float(loss.detach()) for loss in losses), dice)
            history.append(row)
            if dice > dice_target and row[1] < ce_target:
                break
    model.eval()
    return {"model": model, "processor": processor, "history": history}
