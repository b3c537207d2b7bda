"""A tiny MIMO model overfitted on synthetic shape samples, saved as a model directory.

The training set is ``mimo.model.synthetic``'s (as in ``tests/model/conftest.py``) plus
"Segment the square." on three more images: those images become the slices of the test
volumes, so ``mimo segment-volume`` is checked on images the model has learned.

Run as a script to make a model directory for manual use::

    python -m tests.infer.tiny_model /tmp/tiny-mimo
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from mimo.model import MimoForConditionalGeneration, MimoProcessor, tiny_config
from mimo.model.synthetic import (
    grounding_samples,
    multi_and_negative_samples,
    same_image_region_samples,
    shape_image,
    texts_of,
)
from mimo.model.tokenizer import train_tokenizer

SYSTEM_PROMPT = "You are MIMO."
MAX_STEPS = 500
VOLUME_QUESTION = "Segment the square."


def volume_samples(seed: int = 7, n: int = 3) -> list[dict]:
    """``n`` "Segment the square." samples on fresh images (the slices of the test volumes)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        image, masks = shape_image(rng, 64)
        samples.append(
            {
                "image": image,
                "conversations": [
                    {"from": "human", "value": f"<image>\n{VOLUME_QUESTION}"},
                    {"from": "gpt", "value": "<p>square</p> <SEG>.", "masks": ["m0"]},
                ],
                "regions": [],
                "masks": {"m0": masks["square"]},
            }
        )
    return samples


def training_samples() -> list[dict]:
    return (
        grounding_samples(4) + same_image_region_samples() + multi_and_negative_samples() + volume_samples()
    )


def _dice(pred: torch.Tensor, target: torch.Tensor) -> float:
    denominator = pred.sum() + target.sum()
    return 1.0 if denominator == 0 else float(2 * (pred & target).sum() / denominator)


def train_tiny_model(out_dir: str | Path, seed: int = 0, verbose: bool = False) -> dict:
    """Overfit until training Dice > 0.95 and CE < 0.05; save model and processor in ``out_dir``."""
    samples = training_samples()
    threads = torch.get_num_threads()
    # one thread: on a shared 2-core machine two threads spin-wait for each other (8x the CPU time)
    torch.set_num_threads(1)
    try:
        return _train(samples, Path(out_dir), seed, verbose)
    finally:
        torch.set_num_threads(threads)


def _train(samples: list[dict], out_dir: Path, seed: int, verbose: bool = False) -> dict:
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(
        texts_of(samples) + [SYSTEM_PROMPT, "USER: ASSISTANT:", "this region"], vocab_size=200
    )
    model = MimoForConditionalGeneration(tiny_config(vocab_size=len(tokenizer)))
    model.resize_for_tokenizer(tokenizer)
    processor = MimoProcessor.for_model(tokenizer, model.config, system_prompt=SYSTEM_PROMPT)
    processed = [
        processor.process_sample(s["image"], s["conversations"], s["regions"], s["masks"]) for s in samples
    ]
    batch = processor.collate(processed, padding_side="right")
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
            dice = float(np.mean([_dice(p, t) for p, t in zip(pred, batch["seg_masks"] > 0.5, strict=True)]))
            history.append((step, float(out.ce_loss.detach()), dice))
            if verbose:
                print(f"step {step}: ce {history[-1][1]:.4f} dice {dice:.3f}", flush=True)
            if dice > 0.95 and float(out.ce_loss) < 0.05:
                break
    model.eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return {"dir": out_dir, "samples": samples, "history": history}


def sample_png(records_file: Path, index: int) -> Path:
    """The PNG of training sample ``index`` written by the ``records_file`` fixture."""
    return records_file.parent / f"images/sample_{index:02d}.png"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


if __name__ == "__main__":
    import time

    start = time.time()
    result = train_tiny_model(sys.argv[1], verbose=True)
    print(result["history"][-1], f"{time.time() - start:.0f} s")
