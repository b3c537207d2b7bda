"""Quick start: build the tiny MIMO model, teach it a toy grounding task, and ask it about a region.

Runs on a CPU in about a minute. The same calls work for a real model loaded with
``MimoForConditionalGeneration.from_pretrained(DIR)`` / ``MimoProcessor.from_pretrained(DIR)``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mimo.model import MimoForConditionalGeneration, MimoProcessor, tiny_config
from mimo.model.synthetic import grounding_samples, same_image_region_samples, texts_of
from mimo.model.tokenizer import train_tokenizer


def main(out_dir: Path = Path("mimo-demo-output"), max_seconds: float = 120.0) -> None:
    torch.manual_seed(0)
    samples = grounding_samples(4) + same_image_region_samples()
    tokenizer = train_tokenizer(texts_of(samples) + ["You are MIMO.", "USER: ASSISTANT:"], vocab_size=400)
    model = MimoForConditionalGeneration(tiny_config(vocab_size=len(tokenizer)))
    model.resize_for_tokenizer(tokenizer)
    processor = MimoProcessor.for_model(tokenizer, model.config, system_prompt="You are MIMO.")

    batch = processor.collate([processor.process_sample(**_fields(s)) for s in samples])
    batch.pop("image_size")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-3, weight_decay=0.0)
    start = time.time()
    for step in range(400):
        out = model(**batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        if step % 20 == 0:
            print(
                f"step {step:3d}  ce {out.ce_loss:.3f}  bce {out.bce_loss:.3f}  dice-loss {out.dice_loss:.3f}"
            )
        if (out.ce_loss < 0.05 and out.dice_loss < 0.05) or time.time() - start > max_seconds:
            break

    model.eval()
    question = same_image_region_samples()[1]  # the disc, pointed at with a box
    prompt = processor.process_sample(
        question["image"], question["conversations"][:1], question["regions"], add_generation_prompt=True
    )
    inputs = processor.collate([prompt], padding_side="left")
    result = model.generate_with_masks(
        image_sizes=inputs.pop("image_size"),
        max_new_tokens=24,
        **{k: v for k, v in inputs.items() if k != "labels" and k != "seg_masks"},
    )
    answer = processor.decode(result.sequences[0])
    print("Q:", question["conversations"][0]["value"].replace("<image>\n", ""), question["regions"])
    print("A:", answer)
    out_dir.mkdir(parents=True, exist_ok=True)
    overlay = np.repeat(question["image"][..., None], 3, axis=-1).astype(np.float32)
    for mask in result.masks[0].numpy():
        overlay[mask] = 0.5 * overlay[mask] + 0.5 * np.array([255, 60, 60])
    Image.fromarray(overlay.astype(np.uint8)).resize((256, 256), Image.NEAREST).save(
        out_dir / "quickstart.png"
    )
    print("overlay written to", out_dir / "quickstart.png")


def _fields(sample: dict) -> dict:
    return {k: sample[k] for k in ("image", "conversations", "regions", "masks")}


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:2]))
