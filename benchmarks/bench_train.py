"""Training throughput of MIMO: samples/s, step time, tokens/s, MFU and peak memory.

    python benchmarks/bench_train.py                       # tiny preset on CPU (fp32, everything trains)
    python benchmarks/bench_train.py --preset paper        # on a GPU: bf16, LoRA r8 q/v (the paper's policy)
        [--batch-sizes 1,2,4,8] [--checkpointing both|on|off] [--steps 5] [--warmup 2]

Random weights and synthetic shape images; one process. Model FLOPs per training token are
counted as 6 x trainable + 4 x frozen LLM parameters (forward 2N everywhere, backward 2N for
activations through the frozen base plus 2N weight gradients where parameters train); MFU is
achieved FLOP/s over ``--peak-tflops`` (default: 989 for an H100's dense bf16, or none on CPU).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from mimo.model import MimoForConditionalGeneration, MimoProcessor, preset_config
from mimo.model.policy import TrainingPolicy, apply_policy
from mimo.model.synthetic import grounding_samples, texts_of
from mimo.model.tokenizer import train_tokenizer


def build(preset: str, device: torch.device, checkpointing: bool, samples: list[dict]):
    torch.manual_seed(0)
    tokenizer = train_tokenizer(
        texts_of(samples) + MimoProcessor.template.tokenizer_seed_texts("You are MIMO."), vocab_size=300
    )
    vocab = len(tokenizer) if preset == "tiny" else 32000
    config = preset_config(preset, vocab_size=vocab)
    dtype = torch.bfloat16 if preset == "paper" else torch.float32
    with torch.device(device):
        model = MimoForConditionalGeneration(config).to(dtype)
    model.resize_for_tokenizer(tokenizer)
    policy = TrainingPolicy.preset("scratch" if preset == "tiny" else "finetune")
    apply_policy(model, policy)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    processor = MimoProcessor.for_model(tokenizer, model.config, system_prompt="You are MIMO.")
    return model, processor, dtype


def bench(preset: str, batch: int, checkpointing: bool, steps: int, warmup: int, peak_tflops: float | None):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    samples = grounding_samples(batch, seed=0, size=64)
    model, processor, dtype = build(preset, device, checkpointing, samples)
    batch_t = processor.collate(
        [processor.process_sample(s["image"], s["conversations"], s["regions"], s["masks"]) for s in samples]
    )
    batch_t.pop("image_size")
    batch_t = {k: v.to(device) for k, v in batch_t.items()}
    for key in ("pixel_values", "sam_pixel_values", "region_masks"):
        batch_t[key] = batch_t[key].to(dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    llm = model.language_model
    llm_params = sum(p.numel() for p in llm.parameters())
    trainable = sum(p.numel() for p in params)
    frozen_llm = sum(p.numel() for p in llm.parameters() if not p.requires_grad)
    tokens = int(batch_t["attention_mask"].sum())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = model(**batch_t)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    flops_per_token = 6 * trainable + 4 * frozen_llm
    achieved = flops_per_token * tokens / step
    result = {
        "preset": preset,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "batch": batch,
        "checkpointing": checkpointing,
        "step_s": round(step, 4),
        "samples_per_s": round(batch / step, 3),
        "tokens_per_s": round(tokens / step, 1),
        "llm_params": llm_params,
        "trainable_params": trainable,
        "tflops": round(achieved / 1e12, 3),
        "mfu": round(achieved / (peak_tflops * 1e12), 4) if peak_tflops else None,
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if device.type == "cuda"
        else None,
        "loss": round(float(out.loss.detach()), 4),
    }
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    parser.add_argument(
        "--batch-sizes", default=None, help="comma-separated (default: 4 tiny, 1,2,4,8 paper)"
    )
    parser.add_argument("--checkpointing", choices=["off", "on", "both"], default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="device peak for MFU (H100 bf16: 989)"
    )
    args = parser.parse_args()
    paper = args.preset == "paper"
    if paper and not torch.cuda.is_available():
        raise SystemExit("--preset paper needs a GPU (7B LLM + SAM ViT-H); use the tiny preset on CPU")
    sizes = [int(b) for b in (args.batch_sizes or ("1,2,4,8" if paper else "4")).split(",")]
    mode = args.checkpointing or ("both" if paper else "off")
    flags = {"off": [False], "on": [True], "both": [False, True]}[mode]
    peak = args.peak_tflops or (989.0 if paper else None)
    for ckpt in flags:
        for batch in sizes:
            try:
                print(json.dumps(bench(args.preset, batch, ckpt, args.steps, args.warmup, peak)), flush=True)
            except torch.OutOfMemoryError:
                print(json.dumps({"preset": args.preset, "batch": batch, "checkpointing": ckpt, "oom": True}))
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
