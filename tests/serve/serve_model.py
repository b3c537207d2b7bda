"""A tiny MIMO model overfitted in seconds on the bundled ``shapes.png`` example: "What is in
<region>?" with a box on each shape, and "Segment the X." for each. The page tests need an
answer with a grounded phrase and a non-empty mask, not accuracy.

    python -m tests.serve.serve_model /tmp/serve-tiny   # a model directory for manual use
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from mimo.model import MimoForConditionalGeneration, MimoProcessor, tiny_config
from mimo.model.synthetic import SHAPES, same_image_region_samples, texts_of
from mimo.model.tokenizer import train_tokenizer

SYSTEM_PROMPT = "You are MIMO."
MAX_STEPS = 300
DICE_TARGET = 0.3


def shape_boxes() -> dict[str, list[int]]:
    """The box around each shape of ``shapes.png`` (x0, y0, x1, y1, image pixels)."""
    return {
        s["conversations"][1]["value"].split("<p>")[1].split("</p>")[0]: s["regions"][0]["box"]
        for s in same_image_region_samples()
    }


def training_samples() -> list[dict]:
    samples = same_image_region_samples()
    image, masks = (
        samples[0]["image"],
        {s["conversations"][1]["value"].split("<p>")[1].split("</p>")[0]: s["masks"]["m0"] for s in samples},
    )
    for name in SHAPES:
        samples.append(
            {
                "image": image,
                "conversations": [
                    {"from": "human", "value": f"<image>\nSegment the {name}."},
                    {"from": "gpt", "value": f"<p>{name}</p> <SEG>.", "masks": ["m0"]},
                ],
                "regions": [],
                "masks": {"m0": masks[name]},
            }
        )
    return samples


def train_serve_model(out_dir: str | Path, seed: int = 0) -> dict:
    """Train until CE < 0.05 and mask Dice > DICE_TARGET (or ``MAX_STEPS``); save to ``out_dir``."""
    samples = training_samples()
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(texts_of(samples) + [SYSTEM_PROMPT, "USER: ASSISTANT:"], vocab_size=120)
    model = MimoForConditionalGeneration(tiny_config(vocab_size=len(tokenizer)))
    model.resize_for_tokenizer(tokenizer)
    processor = MimoProcessor.for_model(tokenizer, model.config, system_prompt=SYSTEM_PROMPT)
    processed = [
        processor.process_sample(s["image"], s["conversations"], s["regions"], s["masks"]) for s in samples
    ]
    batch = processor.collate(processed, padding_side="right")
    batch.pop("image_size")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    history = []
    for step in range(MAX_STEPS):
        out = model(**batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if step % 5 == 0:
            pred = torch.cat(out.mask_logits).detach() > 0
            target = batch["seg_masks"] > 0.5
            inter = (pred & target).sum(dim=(-2, -1)).float()
            dice = float(
                np.mean((2 * inter / (pred.sum((-2, -1)) + target.sum((-2, -1))).clamp(min=1)).numpy())
            )
            history.append((step, float(out.ce_loss.detach()), dice))
            if float(out.ce_loss.detach()) < 0.05 and dice > DICE_TARGET:
                break
    model.eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return {"dir": out_dir, "history": history, "boxes": shape_boxes()}


if __name__ == "__main__":
    start = time.time()
    result = train_serve_model(sys.argv[1])
    print(result["history"][-1], f"{time.time() - start:.0f} s")
