"""Quick start: build the tiny MIMO model, teach it a toy grounding task, and ask it about a box.

Runs on a CPU in a minute or two. The same calls work for a real model saved with
``save_pretrained``: ``Predictor.from_pretrained(DIR)``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

from mimo.infer.predictor import Predictor
from mimo.infer.render import marked_text, overlay
from mimo.model.synthetic import grounding_samples, overfit_tiny


def main(out_dir: Path = Path("mimo-demo-output")) -> None:
    torch.set_flush_denormal(True)
    samples = grounding_samples(6)
    start = time.time()
    print(f"teaching the tiny model {len(samples)} toy grounding samples ...")
    result = overfit_tiny(samples, max_steps=300, dice_target=0.9, ce_target=0.1)
    history = result["history"]
    shown = history[::5] + ([history[-1]] if (len(history) - 1) % 5 else [])
    for step, ce, bce, dice_loss, dice in shown:
        print(
            f"  step {step:3d}  ce {ce:.3f}  bce {bce:.3f}  dice-loss {dice_loss:.3f}  mask Dice {dice:.2f}"
        )
    print(f"trained in {time.time() - start:.0f} s")

    with tempfile.TemporaryDirectory() as model_dir:
        result["model"].save_pretrained(model_dir)
        result["processor"].save_pretrained(model_dir)
        predictor = Predictor.from_pretrained(model_dir)
        question = samples[3]  # a training image with a box drawn on one of its shapes
        box = question["regions"][0]["box"]
        prediction = predictor.predict(question["image"], "What is in <region>?", boxes=[box])
    print(f"Q: What is in <region>?   (box {box})")
    print("A:", marked_text(prediction))
    out_dir.mkdir(parents=True, exist_ok=True)
    picture = overlay(question["image"], prediction)
    picture = picture.resize((picture.width * 4, picture.height * 4))
    picture.save(out_dir / "quickstart.png")
    print("overlay written to", out_dir / "quickstart.png")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:2]))
