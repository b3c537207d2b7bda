"""Inference benchmark: caching and batching of the ``Predictor``, and, with ``--preset paper``
on a GPU, the cost of each stage (random weights).

    python benchmarks/bench_infer.py                      # tiny, CPU
    python benchmarks/bench_infer.py --preset paper --device cuda --dtype bfloat16

Printed:

* latency of one answer with masks on a new image, and of a second turn on the same image
  in a ``ChatSession`` (image features and SAM embeddings cached), and their ratio;
* questions/s answered one by one and batched (``predict_batch``, left padding), and the ratio;
* per stage (any preset): image encoding (vision tower + SAM image encoder), prefill of the
  prompt, decode tokens/s (KV cache), mask decoding per ``<SEG>``.

Answers are forced to ``--tokens`` new tokens (``min_new_tokens``) so that random weights
give comparable work; the LM's vocabulary is the small synthetic tokenizer's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from mimo.infer.predictor import Predictor
from mimo.model import MimoForConditionalGeneration, MimoProcessor, preset_config
from mimo.model.grounding import decode_masks
from mimo.model.synthetic import grounding_samples, shape_image, texts_of
from mimo.model.tokenizer import train_tokenizer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeat: int) -> tuple[float, object]:
    """Median seconds of ``repeat`` calls (after one warm-up) and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def build(preset: str, device: str, dtype: torch.dtype, mask_refiner: int = 0) -> Predictor:
    samples = grounding_samples(4)
    tokenizer = train_tokenizer(
        texts_of(samples) + MimoProcessor.template.tokenizer_seed_texts("You are MIMO."), vocab_size=200
    )
    torch.manual_seed(0)
    config = preset_config(preset, vocab_size=len(tokenizer), mask_refiner_channels=mask_refiner)
    with torch.device(device):
        model = MimoForConditionalGeneration(config).to(dtype)
    model.resize_for_tokenizer(tokenizer)
    processor = MimoProcessor.for_model(tokenizer, model.config, system_prompt="You are MIMO.")
    return Predictor(model, processor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", choices=("tiny", "paper"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--tokens", type=int, default=16, help="new tokens per answer")
    parser.add_argument("--questions", type=int, default=16, help="questions for the batching test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--mask-refiner",
        type=int,
        default=0,
        help="channels of a mask refiner to add (the shipped model: 16)",
    )
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    predictor = build(args.preset, args.device, dtype, args.mask_refiner)
    predictor.max_new_tokens = args.tokens
    predictor.generation_kwargs = {"min_new_tokens": args.tokens}
    n_params = sum(p.numel() for p in predictor.model.parameters())
    print(f"preset {args.preset}: {n_params / 1e6:.1f}M parameters on {device} ({args.dtype})")

    rng = np.random.default_rng(0)
    images = [shape_image(rng, args.image_size)[0] for _ in range(args.questions)]
    box = [[4, 4, args.image_size // 2, args.image_size // 2]]

    # 1. first answer vs a second turn on the same image
    first, _ = timed(lambda: predictor.predict(images[0], "What is in?", boxes=box), device, args.repeat)

    def second_turn():
        session = predictor.chat(images[0])
        session.ask("What is in?", boxes=box)
        sync(device)
        start = time.perf_counter()
        session.ask("Segment the square.")
        sync(device)
        return time.perf_counter() - start

    second = statistics.median([second_turn() for _ in range(args.repeat)])
    print(
        f"one answer with masks: {first * 1e3:.1f} ms; second turn (cached image): {second * 1e3:.1f} ms; "
        f"ratio {first / second:.2f}x"
    )

    # 2. batched vs one by one
    items = [{"image": im, "question": "Segment the square."} for im in images]
    single, _ = timed(lambda: [predictor.predict(**it) for it in items], device, 1)
    batched, _ = timed(lambda: predictor.predict_batch(items, batch_size=args.batch_size), device, 1)
    print(
        f"questions/s: one by one {len(items) / single:.2f}, batched ({args.batch_size}) "
        f"{len(items) / batched:.2f}; ratio {single / batched:.2f}x"
    )

    # 3. stages
    model = predictor.model
    state = predictor.prepare(images[0])
    pixels = state.pixels["pixel_values"][None].to(device)
    sam_pixels = state.pixels["sam_pixel_values"][None].to(device)
    with torch.no_grad():
        clip_s, features = timed(lambda: model.image_features(pixels), device, args.repeat)
        sam_s, sam_emb = timed(lambda: model.sam_embeddings(sam_pixels), device, args.repeat)
        sample = predictor.processor.process_sample(
            images[0],
            [{"from": "human", "value": "<image>\nSegment the square."}],
            add_generation_prompt=True,
        )
        batch = predictor.processor.collate([sample], padding_side="left")
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        embeds = model.embed_inputs(
            ids, patch_features=features, instruction_mask=batch["instruction_mask"].to(device)
        )
        decoder = model.language_model
        prefill_s, out = timed(
            lambda: decoder(inputs_embeds=embeds, attention_mask=mask, use_cache=True), device, args.repeat
        )
        decode_s, _ = timed(
            lambda: model.generate(
                inputs_embeds=embeds,
                attention_mask=mask,
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=False,
                pad_token_id=model.config.pad_token_id,
            ),
            device,
            args.repeat,
        )
        prompt_size = model.config.sam_config.prompt_encoder_config.hidden_size
        prompts = torch.randn(8, 1, prompt_size, device=device, dtype=sam_emb.dtype)
        mask_s, _ = timed(
            lambda: decode_masks(model.sam, sam_emb, prompts, model.config.sam_image_size),
            device,
            args.repeat,
        )
        refine_s = 0.0
        if model.mask_refiner is not None:  # --mask-refiner (the shipped model has one)
            logits = torch.zeros(prompts.shape[0], *sam_pixels.shape[-2:], device=device, dtype=sam_emb.dtype)
            refiner = model.mask_refiner
            refine_s, _ = timed(
                lambda: refiner(refiner.image_features(sam_pixels), logits), device, args.repeat
            )
    tokens_per_s = args.tokens / max(decode_s - prefill_s, 1e-9)
    print(f"image encoding: vision tower {clip_s * 1e3:.1f} ms + SAM encoder {sam_s * 1e3:.1f} ms")
    print(f"prefill ({ids.shape[1]} tokens): {prefill_s * 1e3:.1f} ms; decode: {tokens_per_s:.1f} tokens/s")
    print(f"mask decoding: {mask_s / prompts.shape[0] * 1e3:.2f} ms per <SEG> (8 in one call)")
    if refine_s:
        print(f"mask refiner: {refine_s / prompts.shape[0] * 1e3:.2f} ms per <SEG> (8 in one call)")


if __name__ == "__main__":
    main()
