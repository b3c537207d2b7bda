"""A specialist anchor for MIMO's masks: a MONAI 2D U-Net on the same training slices.

    # train for a CPU-time budget equal to the MIMO run's (one torch thread; CPU time of this
    # process, so other jobs on the machine do not change what it gets); every 500 steps a
    # snapshot (runs/unet-real/snapshots/stepN, its unet.json says its CPU seconds)
    OMP_NUM_THREADS=1 python benchmarks/unet_baseline.py train data/mimoseg-real/train.jsonl \
        --out runs/unet-real --cpu-seconds 3000
    # score it on held-out records with mimo eval's own metrics (per-structure Dice, and the
    # measurement of measurement questions from its mask)
    OMP_NUM_THREADS=1 python benchmarks/unet_baseline.py eval runs/unet-real runs/eval-real/test.jsonl \
        --out runs/eval-unet

Training data: every image of the records file with the reference mask of every structure
that a record grounds there (``<p>term</p> <SEG>`` pairs). The network sees the image as MIMO's
SAM does: padded bottom/right to a square and resized to ``--size`` (128, SAM's input in the
tiny preset), one sigmoid output per structure. At evaluation the U-Net answers each record's
grounded structures with its own mask of that structure, so Dice, IoU and the measurement
of a measurement question are computed by the same ``mimo.eval`` code as the model's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mimo.core import rle
from mimo.core.files import atomic_save, atomic_write_text
from mimo.core.measure import ground_measurement
from mimo.core.records import read_records
from mimo.eval import EvaluationReport, PredictedSegment, Prediction, score_sample
from mimo.infer.images import load_image
from mimo.model.frame import SquareFrame

_PAIR = re.compile(r"<p>(.*?)</p>\s*<SEG>")


def grounded_masks(record) -> dict[str, dict]:
    """``{term: rle}`` of the structures grounded in the record's answers."""
    out = {}
    for turn in record.conversations:
        if turn.from_ != "gpt" or not turn.masks:
            continue
        for term, key in zip(_PAIR.findall(turn.value), turn.masks, strict=False):
            out.setdefault(term, record.masks[key])
    return out


def to_square(image: np.ndarray, size: int, mode: str) -> torch.Tensor:
    """``(H, W)`` -> ``(1, size, size)``: MIMO's own frame (``SquareFrame``: zero-padded
    bottom/right to a square, then resized), so both networks see the same pixels."""
    pixels = torch.as_tensor(np.asarray(image, dtype=np.float32))[None, None]
    return SquareFrame(*image.shape[:2], size).image_to_square(pixels, mode)[0]


def from_square(prob: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """``(C, size, size)`` probabilities -> ``(C, H, W)`` on the image, as MIMO's masks come back."""
    return SquareFrame(*shape, prob.shape[-1]).logits_to_image(prob).numpy()


def gray(image: np.ndarray) -> np.ndarray:
    return image.mean(-1) if image.ndim == 3 else image


def load_training_set(records_path: Path, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    root = records_path.parent
    per_image: dict[str, dict[str, dict]] = {}
    for record in read_records(records_path):
        if record.image:
            per_image.setdefault(record.image, {}).update(grounded_masks(record))
    classes = sorted({t for masks in per_image.values() for t in masks})
    xs, ys = [], []
    for path, masks in sorted(per_image.items()):
        image = gray(load_image(root / path)).astype(np.float32) / 255.0
        xs.append(to_square(image, size, "bilinear"))
        target = np.zeros((len(classes), *image.shape), np.float32)
        for term, enc in masks.items():
            target[classes.index(term)] = rle.decode(enc)
        ys.append(torch.cat([to_square(t, size, "nearest") for t in target]))
    return torch.stack(xs), torch.stack(ys), classes


def make_net(n_classes: int) -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=n_classes,
        channels=(16, 32, 64, 128),
        strides=(2, 2, 2),
        num_res_units=2,
    )


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    x, y, classes = load_training_set(Path(args.records), args.size)
    print(f"{len(x)} images, classes {classes}", flush=True)
    net = make_net(len(classes))
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    start, cpu_start, step = time.monotonic(), time.process_time(), 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def budget_left() -> bool:
        if args.max_steps is not None and step >= args.max_steps:
            return False
        if args.cpu_seconds is not None:  # CPU time of this process: fair beside other jobs
            return time.process_time() - cpu_start < args.cpu_seconds
        return time.monotonic() - start < args.seconds

    while budget_left():
        idx = torch.as_tensor(rng.choice(len(x), size=args.batch_size, replace=False))
        logits = net(x[idx])
        prob = torch.sigmoid(logits)
        inter = (prob * y[idx]).sum((2, 3))
        dice = 1 - (2 * inter + 1) / (prob.sum((2, 3)) + y[idx].sum((2, 3)) + 1)
        loss = F.binary_cross_entropy_with_logits(logits, y[idx]) + dice.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} t {time.monotonic() - start:.0f}s", flush=True)
        if step % 500 == 0:
            save(net, classes, args, step, out, time.process_time() - cpu_start)
    save(net, classes, args, step, out, time.process_time() - cpu_start)
    print(f"done: {step} steps in {time.monotonic() - start:.0f}s", flush=True)


def save(net, classes, args, step, out: Path, cpu_seconds: float) -> None:
    """``unet.pt`` + ``unet.json`` (atomically), and a copy of both under ``snapshots/stepN``
    so that a later comparison can pick the save at a given CPU time."""
    info = {
        "classes": classes,
        "size": args.size,
        "steps": step,
        "cpu_seconds": round(cpu_seconds, 1),
        "records": str(args.records),
    }
    for folder in (out, out / "snapshots" / f"step{step}"):
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save(folder / "unet.pt", lambda path: torch.save(net.state_dict(), path))
        atomic_write_text(folder / "unet.json", json.dumps(info, indent=2) + "\n")


class UNetBaseline:
    """A trained U-Net folder (``unet.pt`` + ``unet.json``) that answers with masks."""

    def __init__(self, directory: str | Path) -> None:
        info = json.loads((Path(directory) / "unet.json").read_text())
        self.classes, self.size = info["classes"], int(info["size"])
        self.net = make_net(len(self.classes))
        self.net.load_state_dict(torch.load(Path(directory) / "unet.pt", weights_only=True))
        self.net.eval()

    @torch.no_grad()
    def probabilities(self, image: np.ndarray) -> np.ndarray:
        x = to_square(gray(image).astype(np.float32) / 255.0, self.size, "bilinear")
        return from_square(torch.sigmoid(self.net(x[None]))[0], image.shape[:2])


def answer(record, terms: list[str], probs: np.ndarray | None, classes: list[str]) -> Prediction:
    """The U-Net's answer to a record: its mask of each grounded term, and the measurement of a
    measurement question recomputed from its mask, in the reference answer's words."""
    segments = []
    for term in terms:
        mask = probs[classes.index(term)] > 0.5 if term in classes else None
        if mask is not None:
            segments.append(PredictedSegment(mask, term, 1.0))
    text = " ".join(f"<p>{s.phrase}</p> <SEG>" for s in segments)
    ref = next(t.value for t in reversed(record.conversations) if t.from_ == "gpt")
    if segments and record.spacing and (record.meta or {}).get("measurement"):
        text, _ = ground_measurement(ref, segments[0].mask, record.spacing)
    return Prediction(text, tuple(segments))


def evaluate(args: argparse.Namespace) -> None:
    base = UNetBaseline(args.model)
    path = Path(args.records)
    results = []
    cache: dict[str, np.ndarray] = {}
    for record in read_records(path):
        terms = list(grounded_masks(record))
        if not terms:
            continue  # negatives: a U-Net has no notion of a question
        if record.image not in cache:
            cache.clear()
            cache[record.image] = base.probabilities(load_image(path.parent / record.image))
        from mimo.eval import decode_record_masks

        pred = answer(record, terms, cache[record.image], base.classes)
        results.append(score_sample(pred, record, decode_record_masks(record)))
    report = EvaluationReport(results)
    json_path, md_path = report.write(Path(args.out))
    print(f"{len(results)} records -> {json_path}, {md_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("records")
    t.add_argument("--out", required=True)
    t.add_argument("--seconds", type=float, default=3600.0)
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument(
        "--cpu-seconds",
        type=float,
        default=None,
        help="stop after this much CPU time of this process (overrides --seconds)",
    )
    t.add_argument("--size", type=int, default=128)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval")
    e.add_argument("model")
    e.add_argument("records")
    e.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    (train if args.command == "train" else evaluate)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
