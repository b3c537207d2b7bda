"""Model speed: forward+backward and generation of a MIMO preset with random weights.

    python benchmarks/bench_model.py                      # tiny preset on the CPU
    python benchmarks/bench_model.py --preset paper       # on a GPU, bf16

Prints step time, peak memory, prefill time and decode tokens/s, and ratios measured in the
same run (a train step with vs without the user's regions as SAM prompts; generation with vs
without the KV cache; a second answer on the same image with the cached image features vs from
pixels).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mimo.model import MimoForConditionalGeneration, MimoProcessor, preset_config
from mimo.model.synthetic import grounding_samples, texts_of
from mimo.model.tokenizer import add_special_tokens, train_tokenizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat: int) -> float:
    fn()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeat


def build(preset: str, device: torch.device, dtype: torch.dtype):
    samples = grounding_samples(8)
    if preset == "tiny":
        tokenizer = train_tokenizer(texts_of(samples) + ["You are MIMO."], vocab_size=400)
    else:  # a LLaMA-sized vocabulary; the tokenizer only has to cover the benchmark's text
        tokenizer = add_special_tokens(train_tokenizer(texts_of(samples), vocab_size=400))
    config = preset_config(preset, vocab_size=len(tokenizer) if preset == "tiny" else 32000)
    with torch.device(device):
        model = MimoForConditionalGeneration(config).to(dtype)
    model.resize_for_tokenizer(tokenizer)
    processor = MimoProcessor.for_model(tokenizer, model.config)
    image_size = 512 if preset == "paper" else 64
    data = []
    rng = np.random.default_rng(0)
    for s in samples:
        image = np.kron(s["image"], np.ones((image_size // 64, image_size // 64), np.uint8))
        masks = {
            k: np.kron(v, np.ones((image_size // 64, image_size // 64), bool)) for k, v in s["masks"].items()
        }
        regions = [
            {"type": "box", "box": [float(v) * image_size / 64 for v in r["box"]]} for r in s["regions"]
        ]
        data.append(
            {
                "image": image + rng.integers(0, 2, image.shape, dtype=np.uint8),
                "conversations": s["conversations"],
                "regions": regions,
                "masks": masks,
            }
        )
    return model, processor, data


def to_device(batch: dict, device: torch.device, dtype: torch.dtype) -> dict:
    floating = {k for k, v in batch.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    return {k: (v.to(device, dtype) if k in floating else v.to(device)) for k, v in batch.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.preset == "paper" and device.type != "cuda":
        raise SystemExit("the paper preset needs a GPU (about 16 GB of weights in bf16)")
    torch.manual_seed(0)
    model, processor, data = build(args.preset, device, dtype)
    print(
        f"preset {args.preset} on {device} ({dtype}); parameters {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M"
    )

    train_batch = processor.collate([processor.process_sample(**d) for d in data[: args.batch_size]])
    train_batch.pop("image_size")
    train_batch = to_device(train_batch, device, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        model.zero_grad(set_to_none=True)
        model(**train_batch).loss.backward()

    step_time = timed(step, device, args.repeat)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    tokens = int(train_batch["attention_mask"].sum())
    print(
        f"train step (batch {args.batch_size}, {tokens} tokens): {step_time * 1000:.1f} ms, "
        f"{tokens / step_time:.0f} tokens/s, peak GPU memory {peak:.2f} GiB"
    )
    # the cost of giving SAM the user's regions beside each <SEG> (the same batch, same run)
    model.config.seg_region_prompts = False
    without_regions = timed(step, device, args.repeat)
    model.config.seg_region_prompts = True
    print(
        f"ratio train step with / without the user's regions as SAM prompts: {step_time / without_regions:.2f}x"
    )

    model.eval()
    prompt = [{**d, "conversations": d["conversations"][:1]} for d in data[:1]]
    inputs = processor.collate(
        [processor.process_sample(**p, add_generation_prompt=True) for p in prompt], padding_side="left"
    )
    sizes = inputs.pop("image_size")  # a generation prompt carries no labels or seg_masks
    inputs = to_device(inputs, device, dtype)
    n_new = args.new_tokens
    forced = {"min_new_tokens": n_new, "max_new_tokens": n_new}

    with torch.no_grad():
        prefill = timed(lambda: model(**inputs, use_cache=True, logits_to_keep=1), device, args.repeat)
        with_cache = timed(
            lambda: model.generate_with_masks(image_sizes=sizes, **inputs, **forced), device, args.repeat
        )
        without_cache = timed(lambda: _generate_no_cache(model, inputs, n_new), device, 1)
        features = model.image_features(inputs["pixel_values"])
        sam_embeddings = model.sam_embeddings(inputs["sam_pixel_values"])
        cached = {k: v for k, v in inputs.items() if k not in ("pixel_values", "sam_pixel_values")}
        second = timed(
            lambda: model.generate_with_masks(
                image_sizes=sizes, patch_features=features, sam_embeddings=sam_embeddings, **cached, **forced
            ),
            device,
            args.repeat,
        )
        seg_prompts = torch.zeros(
            (8, 1, model.config.sam_config.prompt_encoder_config.hidden_size), device=device, dtype=dtype
        )
        from mimo.model.grounding import decode_masks

        per_seg = (
            timed(
                lambda: decode_masks(model.sam, sam_embeddings, seg_prompts, model.config.sam_image_size),
                device,
                args.repeat,
            )
            / 8
        )
    decode_rate = n_new / max(with_cache - prefill, 1e-9)
    print(
        f"prefill: {prefill * 1000:.1f} ms; answer of {n_new} tokens with masks: {with_cache * 1000:.1f} ms "
        f"(decode about {decode_rate:.0f} tokens/s); mask decoding per <SEG>: {per_seg * 1000:.2f} ms"
    )
    print(f"ratio generate without / with KV cache: {without_cache / with_cache:.2f}x")
    print(f"ratio first answer / second answer on cached image features: {with_cache / second:.2f}x")


def _generate_no_cache(model, inputs: dict, n_new: int) -> None:
    """Greedy decoding that recomputes the whole sequence every step (the no-cache reference)."""
    embeds = model.embed_inputs(
        inputs["input_ids"],
        inputs["pixel_values"],
        inputs["instruction_mask"],
        inputs["region_coords"],
        inputs["region_coord_labels"],
        inputs["region_types"],
        inputs["region_masks"],
    )
    mask = inputs["attention_mask"]
    for _ in range(n_new):
        out = model(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            logits_to_keep=1,
        )
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        embeds = torch.cat([embeds, model.get_input_embeddings()(token)], dim=1)
        mask = torch.cat([mask, torch.ones_like(token)], dim=1)


if __name__ == "__main__":
    main()
