"""Model-test helpers; the overfitted model itself is the suite's ``tiny_model_dir``."""

from __future__ import annotations

import json

import pytest
import torch

from mimo.model import MimoForConditionalGeneration, MimoProcessor, tiny_config
from mimo.model.synthetic import overfit_samples, texts_of
from mimo.model.tokenizer import train_tokenizer

SYSTEM_PROMPT = "You are MIMO."


def build_tiny(samples: list[dict], use_aligner: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(
        texts_of(samples) + MimoProcessor.template.tokenizer_seed_texts(SYSTEM_PROMPT), vocab_size=200
    )
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
def overfit(tiny_model_dir):
    """The overfitted model (trained until training Dice > 0.95 and CE < 0.05), reloaded."""
    model = MimoForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    processor = MimoProcessor.from_pretrained(tiny_model_dir)
    history = [tuple(row) for row in json.loads((tiny_model_dir / "history.json").read_text())]
    return {"model": model, "processor": processor, "samples": overfit_samples(), "history": history}
