"""One script for a GPU: what the paper preset costs, measured, in a few minutes.

    python benchmarks/gpu_suite.py                     # CUDA: paper preset, bf16; CPU: tiny preset, fp32
    python benchmarks/gpu_suite.py --out gpu_suite.json [--preset paper] [--tokens 64] [--skip deepspeed]

Random weights (nothing is downloaded). Steps, each recorded in the JSON even when another fails
(a failing step keeps its error and the rest go on):

1. ``encoders``: CLIP and SAM image-encoder times (batch 1);
2. ``prefill``: the LLM over one prompt (image tokens included);
3. ``decode``: tokens/s of the default path (``generate``, dynamic cache) and of the fast path
   (static KV cache, decoder step compiled on CUDA), from the difference between an answer of
   ``--tokens`` and one of 1 token, so prefill and encoders drop out; whether both paths gave the
   same tokens;
4. ``grounded_answer``: end to end on a new image (both encoders, prefill, ``--tokens`` tokens,
   fast path) plus the SAM decoding of one ``<SEG>`` (random weights emit none by themselves);
5. ``train_b2``, ``train_b8``: one training step at batch 2 and 8 of ``--seq-len`` tokens as
   ``mimo train`` runs it on one device (trained weights fp32, frozen ones bf16, bf16 autocast on CUDA, LoRA r8 on q/v for
   the paper preset, everything for tiny, gradient checkpointing on CUDA): step time, tokens/s,
   peak memory, MFU, ``mimo plan``'s estimate beside the measured peak, and the host
   synchronisations the step makes (``torch.cuda.set_sync_debug_mode``), with where they happen;
6. ``deepspeed``: ``accelerate launch`` of ``mimo train`` with DeepSpeed ZeRO-2 on one process
   (tiny preset, a few steps on phantom records), when ``deepspeed`` imports.

MFU counts 4 x N_LLM FLOPs per token (forward 2N, backward through the frozen base 2N; LoRA's
weight gradients, checkpointing's recomputation, attention scores and the image encoders not
counted: the convention of the reference figures in issue 16), over ``--peak-tflops`` (default
989 for H100/H200 dense bf16, 312 for A100, none otherwise). A table is printed; the JSON holds
everything, with the date, device and package versions.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

from mimo.infer.predictor import Predictor
from mimo.model import MimoForConditionalGeneration, MimoProcessor, preset_config
from mimo.model.grounding import decode_masks
from mimo.model.policy import TrainingPolicy, apply_policy
from mimo.model.synthetic import grounding_samples, shape_image, texts_of
from mimo.model.tokenizer import train_tokenizer
from mimo.train.trainer import frozen_to_bf16

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
FILLER = "The structure lies in the lower left part of the image and its border is smooth. "
REPO = Path(__file__).resolve().parents[1]


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
        self.cuda = self.device.type == "cuda"
        self.preset = args.preset or ("paper" if self.cuda else "tiny")
        self.dtype = torch.bfloat16 if self.cuda else torch.float32
        self.predictor: Predictor | None = None
        self.tokenizer = None

    # ------------------------------------------------------------------ helpers
    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def timed(self, fn, repeat: int | None = None) -> tuple[float, object]:
        """Median seconds of ``repeat`` calls after one warm-up, and the last result."""
        result = fn()
        times = []
        for _ in range(repeat or self.args.repeat):
            self.sync()
            start = time.perf_counter()
            result = fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times), result

    def make_tokenizer(self):
        if self.tokenizer is None:
            texts = texts_of(grounding_samples(8)) + [
                FILLER,
                *MimoProcessor.template.tokenizer_seed_texts("You are MIMO."),
            ]
            tokenizer = train_tokenizer(texts, vocab_size=300)
            if self.preset == "paper":  # LLaMA's vocabulary size, so the output layer costs what it does
                tokenizer.add_tokens([f"<v{i}>" for i in range(32000 - len(tokenizer))])
            self.tokenizer = tokenizer
        return self.tokenizer

    def build(self, dtype: torch.dtype) -> MimoForConditionalGeneration:
        tokenizer = self.make_tokenizer()
        torch.manual_seed(0)
        config = preset_config(self.preset, vocab_size=len(tokenizer))
        with torch.device(self.device):
            model = MimoForConditionalGeneration(config).to(dtype)
        model.resize_for_tokenizer(tokenizer)
        model.generation_config.eos_token_id = None  # random weights: every answer runs its full length
        return model

    def predictor_(self) -> Predictor:
        if self.predictor is None:
            model = self.build(self.dtype)
            processor = MimoProcessor.for_model(self.tokenizer, model.config, system_prompt="You are MIMO.")
            self.predictor = Predictor(model, processor, max_new_tokens=self.args.tokens)
        return self.predictor

    def image(self, seed: int) -> np.ndarray:
        return shape_image(np.random.default_rng(seed), 256)[0]

    def prompt(self):
        """Processor tensors of one question about a new image, and its encodings."""
        predictor = self.predictor_()
        state = predictor.prepare(self.image(0))
        predictor.encode([state])
        sample = predictor.processor.process_sample(
            state.image,
            [{"from": "human", "value": "<image>\nSegment the square."}],
            add_generation_prompt=True,
        )
        batch = predictor.processor.collate([sample], padding_side="left")
        return state, {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    # ------------------------------------------------------------------ steps
    def step_encoders(self) -> dict:
        predictor = self.predictor_()
        model, state = predictor.model, predictor.prepare(self.image(1))
        pixels = state.pixels["pixel_values"][None].to(self.device)
        sam_pixels = state.pixels["sam_pixel_values"][None].to(self.device)
        with torch.no_grad():
            clip_s, _ = self.timed(lambda: model.image_features(pixels))
            sam_s, _ = self.timed(lambda: model.sam_embeddings(sam_pixels))
        return {"clip_ms": clip_s * 1e3, "sam_ms": sam_s * 1e3}

    def step_prefill(self) -> dict:
        model = self.predictor_().model
        state, batch = self.prompt()
        with torch.no_grad():
            embeds = model.embed_inputs(batch["input_ids"], patch_features=state.patch_features)
            decoder = model.language_model.get_decoder()
            prefill_s, _ = self.timed(
                lambda: decoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"])
            )
        return {"prefill_ms": prefill_s * 1e3, "prompt_tokens": int(batch["attention_mask"].sum())}

    def _answer(self, state, batch, tokens: int, fast: bool, compile: bool):
        model = self.predictor_().model
        return model.generate_with_masks(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            patch_features=state.patch_features,
            sam_embeddings=state.sam_embeddings,
            image_sizes=[state.image.shape[:2]],
            max_new_tokens=tokens,
            fast=fast,
            compile=compile,
        )

    def step_decode(self) -> dict:
        state, batch = self.prompt()
        n = self.args.tokens
        out = {"tokens": n}
        sequences = {}
        for name, fast, compile in (
            ("default", False, False),
            ("fast", True, self.cuda or self.args.compile),
        ):
            full_s, result = self.timed(lambda f=fast, c=compile: self._answer(state, batch, n, f, c))
            one_s, _ = self.timed(lambda f=fast, c=compile: self._answer(state, batch, 1, f, c))
            out[f"{name}_tokens_per_s"] = (n - 1) / max(full_s - one_s, 1e-9)
            out[f"{name}_answer_ms"] = full_s * 1e3
            sequences[name] = result.sequences
            out[f"{name}_compiled"] = compile
        out["fast_over_default"] = out["fast_tokens_per_s"] / out["default_tokens_per_s"]
        out["same_tokens"] = bool(torch.equal(sequences["default"], sequences["fast"]))
        return out

    def step_grounded_answer(self) -> dict:
        predictor = self.predictor_()
        predictor.fast, predictor.compile = True, self.cuda or self.args.compile
        predictor.predict(self.image(2), "Segment the square.")  # warm-up (compilation)
        times = []
        for seed in range(3, 3 + self.args.repeat):
            image = self.image(seed)  # a new image each time: both encoders run
            self.sync()
            start = time.perf_counter()
            predictor.predict(image, "Segment the square.")
            self.sync()
            times.append(time.perf_counter() - start)
        model = predictor.model
        state = predictor.prepare(self.image(2))
        predictor.encode([state])
        size = model.config.sam_config.prompt_encoder_config.hidden_size
        prompt = torch.randn(1, 1, size, device=self.device, dtype=state.sam_embeddings.dtype)
        with torch.no_grad():
            mask_s, _ = self.timed(
                lambda: decode_masks(model.sam, state.sam_embeddings, prompt, model.config.sam_image_size)
            )
        answer_s = statistics.median(times)
        return {
            "tokens": self.args.tokens,
            "answer_ms": answer_s * 1e3,
            "mask_decode_ms": mask_s * 1e3,
            "grounded_answer_ms": (answer_s + mask_s) * 1e3,
        }

    def train_samples(self, processor, image_tokens: int, batch: int) -> dict:
        """``batch`` grounding samples whose answers are lengthened to about ``--seq-len`` tokens."""
        samples = grounding_samples(batch, seed=0, size=64)
        per_filler = len(self.tokenizer(FILLER)["input_ids"])
        repeats = max(0, (self.args.seq_len - image_tokens - 60) // max(per_filler, 1))
        for sample in samples:
            gpt = sample["conversations"][1]
            gpt["value"] = FILLER * repeats + gpt["value"]
        processed = [
            processor.process_sample(s["image"], s["conversations"], s["regions"], s["masks"])
            for s in samples
        ]
        tensors = processor.collate(processed)
        tensors.pop("image_size")
        return tensors

    def step_train(self, batch: int) -> dict:
        self.predictor = None  # free the inference model (and the previous step's)
        if self.cuda:
            gc.collect()
            torch.cuda.empty_cache()
        model = self.build(torch.float32)  # as `mimo train` holds it: what trains in fp32, bf16 autocast
        policy = TrainingPolicy.preset("finetune" if self.preset == "paper" else "scratch")
        apply_policy(model, policy)
        if self.cuda:  # bf16 precision: the frozen weights are stored in bf16
            frozen_to_bf16(model)
        if self.cuda:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        processor = MimoProcessor.for_model(self.tokenizer, model.config, system_prompt="You are MIMO.")
        tensors = {
            k: v.to(self.device)
            for k, v in self.train_samples(processor, model.config.image_seq_length, batch).items()
        }
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5)

        def step():
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
                loss = model(**tensors).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

        step()  # warm-up: optimizer states exist from here on
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        step_s, loss = self.timed(step, self.args.steps)
        tokens = int(tensors["attention_mask"].sum())
        llm_params = sum(p.numel() for p in model.language_model.parameters())
        flops = 4 * llm_params * tokens / step_s
        peak = self.peak_tflops()
        result = {
            "batch": batch,
            "tokens": tokens,
            "step_s": step_s,
            "tokens_per_s": tokens / step_s,
            "tflops": flops / 1e12,
            "mfu": flops / (peak * 1e12) if peak else None,
            "loss": float(loss.detach()),
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None,
            "host_syncs": self.count_syncs(step),
        }
        result["plan"] = self.plan_beside(batch, tokens // batch, result["peak_memory_gb"])
        return result

    def count_syncs(self, step) -> dict | None:
        """Host synchronisations one training step makes, with the source lines that make them."""
        if not self.cuda:
            return None
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                step()
                self.sync()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        places = sorted({f"{Path(w.filename).name}:{w.lineno}" for w in syncs})
        return {"count": len(syncs), "where": places[:20]}

    def peak_tflops(self) -> float | None:
        if self.args.peak_tflops:
            return self.args.peak_tflops
        if not self.cuda:
            return None
        name = torch.cuda.get_device_name()
        return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)

    def plan_beside(self, batch: int, seq_len: int, measured_gb: float | None) -> dict:
        from mimo.train.config import load_config
        from mimo.train.plan import RUNTIME_RESERVE, make_plan

        overrides = [
            "output_dir=o",
            "data.train=[a]",
            f"model.preset={self.preset}",
            f"tokenizer.vocab_size={len(self.tokenizer)}",
            f"policy={'finetune' if self.preset == 'paper' else 'scratch'}",
            f"optim.precision={'bf16' if self.cuda else 'fp32'}",
            f"optim.gradient_checkpointing={'true' if self.cuda else 'false'}",
        ]
        plan = make_plan(load_config(None, overrides), engine="single", seq_len=seq_len, batch_size=batch)
        estimate = (plan.per_gpu() - RUNTIME_RESERVE) / 2**30  # what torch allocates, without the reserve
        out = {"estimate_gb": estimate}
        if measured_gb:
            out["estimate_over_measured"] = estimate / measured_gb
        return out

    def step_deepspeed(self) -> dict:
        importlib.import_module("deepspeed")
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            data = root / "data"
            build = [sys.executable, "-c", "from mimo.cli import app; app()", "data", "build"]
            build += ["--source", "phantom:,n=4,size=64", "--out", str(data), "--max-slices", "2"]
            subprocess.run(build, check=True, capture_output=True, timeout=300)
            accelerate = root / "zero2.yaml"
            text = (REPO / "configs/accelerate/zero2.yaml").read_text()
            text = text.replace("num_processes: 8", "num_processes: 1").replace(
                "configs/deepspeed/zero2.json", str(REPO / "configs/deepspeed/zero2.json")
            )
            accelerate.write_text(text)
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate)]
            cmd += ["-m", "mimo.train", str(REPO / "configs/tiny.yaml"), f"output_dir={root / 'run'}"]
            cmd += [f"data.train=[{data / 'train.jsonl'}]", "data.eval=[]", "optim.max_steps=3"]
            cmd += ["save_steps=null", "eval_steps=null", "optim.batch_size=2"]
            start = time.perf_counter()
            done = run_group(cmd, self.args.ds_timeout)
            out = {"returncode": done.returncode, "wall_s": time.perf_counter() - start}
            log = root / "run" / "log.jsonl"
            if log.is_file():
                out["last_log"] = json.loads(log.read_text().splitlines()[-1])
            if done.returncode:
                out["error"] = (done.stderr or done.stdout)[-2000:]
            return out


# ---------------------------------------------------------------------------- running
def run_group(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout end the whole group (the launcher's
    workers too), then raise ``TimeoutExpired``."""
    process = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(cmd, process.returncode, stdout, stderr)


def environment(suite: Suite) -> dict:
    versions = {}
    for name in ("torch", "transformers", "peft", "accelerate", "deepspeed", "bitsandbytes"):
        try:
            versions[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001 - not installed or broken: recorded as absent
            versions[name] = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if suite.cuda else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "preset": suite.preset,
        "dtype": str(suite.dtype).removeprefix("torch."),
        "versions": versions,
    }


def run_step(results: dict, name: str, fn) -> None:
    start = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:  # noqa: BLE001 - one failing step must not lose the others
        results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    results[name]["step_wall_s"] = round(time.perf_counter() - start, 2)
    print(
        f"  {name}: {'error' if 'error' in results[name] else 'done'} ({results[name]['step_wall_s']} s)",
        flush=True,
    )


def steps(suite: Suite) -> list[tuple[str, object]]:
    return [
        ("encoders", suite.step_encoders),
        ("prefill", suite.step_prefill),
        ("decode", suite.step_decode),
        ("grounded_answer", suite.step_grounded_answer),
        ("train_b2", lambda: suite.step_train(2)),
        ("train_b8", lambda: suite.step_train(8)),
        ("deepspeed", suite.step_deepspeed),
    ]


def table(results: dict) -> str:
    def get(step: str, key: str, fmt: str = "{:.1f}") -> str:
        value = results.get(step, {}).get(key)
        if value is None:
            return "error" if "error" in results.get(step, {}) else "-"
        return (
            fmt.format(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else str(value)
        )

    rows = [
        ("CLIP encode (ms)", get("encoders", "clip_ms")),
        ("SAM encode (ms)", get("encoders", "sam_ms")),
        ("prefill (ms)", get("prefill", "prefill_ms") + f" ({get('prefill', 'prompt_tokens', '{}')} tokens)"),
        ("decode default (tokens/s)", get("decode", "default_tokens_per_s")),
        ("decode fast (tokens/s)", get("decode", "fast_tokens_per_s")),
        ("fast path: same tokens", get("decode", "same_tokens")),
        (
            "grounded answer (ms)",
            get("grounded_answer", "grounded_answer_ms")
            + f" ({get('grounded_answer', 'tokens', '{}')} tokens, 1 mask)",
        ),
    ]
    for step in ("train_b2", "train_b8"):
        r = results.get(step, {})
        plan = r.get("plan") or {}
        rows += [
            (f"{step}: step (s), tokens", get(step, "step_s", "{:.3f}") + f", {get(step, 'tokens', '{}')}"),
            (
                f"{step}: peak / plan (GB)",
                get(step, "peak_memory_gb", "{:.2f}") + f" / {plan.get('estimate_gb', 0):.2f}",
            ),
            (
                f"{step}: MFU, host syncs",
                get(step, "mfu", "{:.3f}") + f", {(r.get('host_syncs') or {}).get('count', '-')}",
            ),
        ]
    ds = results.get("deepspeed", {})
    rows.append(
        ("DeepSpeed ZeRO-2 launch", "error" if "error" in ds else f"ok in {ds.get('wall_s', 0):.0f} s")
    )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_suite.json"), help="JSON written here")
    parser.add_argument(
        "--preset", choices=("tiny", "paper"), default=None, help="default: paper on CUDA, tiny on CPU"
    )
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where CUDA is present")
    parser.add_argument("--tokens", type=int, default=None, help="answer length (default: 64 CUDA, 16 CPU)")
    parser.add_argument(
        "--seq-len", type=int, default=None, help="training tokens per sample (default: 1024 CUDA, 160 CPU)"
    )
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats of the inference steps")
    parser.add_argument("--compile", action="store_true", help="compile the fast decoder step on the CPU too")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--ds-timeout", type=int, default=300, help="seconds for the DeepSpeed launch")
    parser.add_argument("--skip", action="append", default=[], help="a step to skip (repeatable)")
    args = parser.parse_args(argv)
    suite = Suite(args)
    args.tokens = args.tokens or (64 if suite.cuda else 16)
    args.seq_len = args.seq_len or (1024 if suite.cuda else 160)
    results = {"environment": environment(suite)}
    print(f"gpu_suite: {results['environment']['device']}, preset {suite.preset}", flush=True)
    for name, fn in steps(suite):
        if name in args.skip:
            results[name] = {"skipped": "--skip"}
            continue
        run_step(results, name, fn)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    os.replace(tmp, args.out)
    print(table(results))
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
