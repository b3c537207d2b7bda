"""A tiny MIMO model overfitted once per test session on synthetic shape samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimo.model import MimoForConditionalGeneration, MimoProcessor, tiny_config
from mimo.model.synthetic import (
    grounding_samples,
    multi_and_negative_samples,
    same_image_region_samples,
    texts_of,
)
from mimo.model.tokenizer import train_tokenizer

SYSTEM_PROMPT = "You are MIMO."
MAX_STEPS = 500


def build_tiny(samples: list[dict], use_aligner: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(texts_of(samples) + [SYSTEM_PROMPT, "USER: ASSISTANT:"], vocab_size=200)
    model = MimoForConditionalGeneration(tiny_config(vocab_size=len(tokenizer), use_aligner=use_aligner))
    model.resize_for_tokenizer(tokenizer)
    processor = MimoProcessor.for_model(tokenizer, model.config, system_prompt=SYSTEM_PROMPT)
    return model, processor


def batch_of(processor: MimoProcessor, samples: list[dict], **kwargs) -> dict:
    processed = [
        processor.process_sample(s["image"], s["conversations"], s["regions"], s["masks"], **kwargs)
        for s in samples
    ]
    return processor.collate(
        processed, padding_side="left" if kwargs.get("add_generation_prompt") else "right"
    )


def mask_dice(pred: torch.Tensor, target: torch.Tensor) -> float:
    pred, target = pred.bool(), target.bool()
    denominator = pred.sum() + target.sum()
    return 1.0 if denominator == 0 else float(2 * (pred & target).sum() / denominator)


@pytest.fixture(scope="session")
def overfit():
    """Train until the training masks reach Dice > 0.95 and CE < 0.05 (checked every 10 steps)."""
    samples = grounding_samples(4) + same_image_region_samples() + multi_and_negative_samples()
    model, processor = build_tiny(samples)
    batch = batch_of(processor, samples)
    batch.pop("image_size")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-3, weight_decay=0.0)
    history = []
    for step in range(MAX_STEPS):
        out = model(**batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if step % 10 == 0:
            pred = torch.cat(out.mask_logits).detach() > 0
            dice = float(
                np.mean([mask_dice(p, t) for p, t in zip(pred, batch["seg_masks"] > 0.5, strict=True)])
            )
            history.append((step, float(out.ce_loss), float(out.bce_loss), float(out.dice_loss), dice))
            if dice > 0.95 and float(out.ce_loss) < 0.05:
                break
    model.eval()
    return {"model": model, "processor": processor, "samples": samples, "history": history}
