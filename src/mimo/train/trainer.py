"""The training loop, built on ``accelerate``.

One process on a CPU just runs; launched by ``torchrun`` / ``accelerate launch`` the same code
runs DDP (gloo on CPU, NCCL on GPUs), DeepSpeed ZeRO or FSDP, as the accelerate config says.

Steps are optimizer steps. An epoch holds ``steps_per_epoch`` of them, each of ``grad_accum``
micro-batches of ``batch_size`` records per process; the micro-batches of an epoch come from
:func:`mimo.train.dataset.epoch_order`, a pure function of ``(seed, epoch)``, so a resumed run
skips the consumed batches and continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, DistributedType, InitProcessGroupKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from mimo.core.errors import MimoDataError
from mimo.core.files import atomic_write_text, fsync_tree, replace_folder
from mimo.model import MimoForConditionalGeneration, MimoProcessor, preset_config
from mimo.model.components import load_projector
from mimo.model.configuration_mimo import LOSS_WEIGHTS
from mimo.model.policy import apply_policy, count_parameters, merge_lora, plain_state_dict
from mimo.model.processing_mimo import ProcessorSettings
from mimo.model.quantize import quantize_llm_4bit, require_4bit
from mimo.model.tokenizer import train_tokenizer
from mimo.train.checkpoint import checkpoint_problem, load_checkpoint, resume_point, save_checkpoint
from mimo.train.config import TrainConfig, dump_config
from mimo.train.dataset import (
    Collator,
    EpochBatches,
    ListBatchSampler,
    RecordDataset,
    epoch_order,
    group_by_length,
    same_kind_chunks,
    source_pool,
)

Callback = Callable[["Trainer", int, dict], None]
FINAL_DIR = "final"
LOG_FILE = "log.jsonl"
# Each (seed, epoch) gets its own data-loader generator seed ``seed * stride + epoch``: the stride
# (a prime) exceeds any epoch count, so distinct (seed, epoch) pairs never share a generator seed.
EPOCH_SEED_STRIDE = 100003
LOSS_KEYS = ("loss", "ce_loss", "bce_loss", "dice_loss", "iou_loss")  # MimoOutput fields logged


def build_model(config: TrainConfig, texts: list[str], processor_dir: Path | None = None):
    """``(model, processor)`` as the config's model section says.

    ``processor_dir``: reuse a saved processor (a checkpoint's) instead of training a tokenizer.
    """
    m = config.model
    if m.load_in_4bit:
        require_4bit()  # no CUDA GPU: a clear error before anything is built
    prompt = {"system_prompt": m.system_prompt} if m.system_prompt is not None else {}
    if m.path:
        path = Path(m.path)
        if not (path / "config.json").is_file():
            raise ValueError(f"model.path: {path} is not a saved MIMO model (config.json missing)")
        # config_overrides add parts to a saved model (e.g. mask_refiner_channels: 16), which start new
        model = MimoForConditionalGeneration.from_pretrained(
            path, trust_remote_code=False, **m.config_overrides
        )
        processor = MimoProcessor.from_pretrained(processor_dir or path)
    elif m.llm or m.llava:
        model, tokenizer = MimoForConditionalGeneration.from_components(
            llm=m.llm, vision=m.vision, sam=m.sam, llava=m.llava, **m.config_overrides
        )
        processor = MimoProcessor.for_model(tokenizer, model.config, **prompt)
    else:
        if processor_dir is not None:
            processor = MimoProcessor.from_pretrained(processor_dir)
            tokenizer = processor.tokenizer
        else:
            seed_texts = MimoProcessor.template.tokenizer_seed_texts(
                m.system_prompt or ProcessorSettings.system_prompt
            )
            tokenizer = train_tokenizer(
                texts[: config.tokenizer.max_texts] + seed_texts, vocab_size=config.tokenizer.vocab_size
            )
            processor = None
        model = MimoForConditionalGeneration(
            preset_config(m.preset, vocab_size=len(tokenizer), **m.config_overrides)
        )
        model.resize_for_tokenizer(tokenizer)
        if processor is None:
            processor = MimoProcessor.for_model(tokenizer, model.config, **prompt)
    if m.projector_from:
        load_projector(model, m.projector_from)
    for name in LOSS_WEIGHTS:
        if getattr(m, name) is not None:  # else the model keeps its own
            setattr(model.config, name, getattr(m, name))
    if m.load_in_4bit:
        quantize_llm_4bit(model, "cuda")  # QLoRA: the policy's LoRA trains on the 4-bit LLM
    return model, processor


def drop_logged_after(log: Path, step: int) -> None:
    """Keep the records of ``log`` up to ``step`` (a resumed run logs the later steps again).

    Lines that do not parse (the tail of a write cut short by a kill) are dropped too; the file
    is replaced atomically.
    """
    if not log.is_file():
        return
    kept = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line + "\n")
    atomic_write_text(log, "".join(kept))


def mask_dice(mask_logits: list[torch.Tensor] | None, targets: torch.Tensor) -> tuple[float, int]:
    """Sum of per-mask Dice (prediction ``logit > 0``; two empty masks score 1) and the count."""
    if not mask_logits or targets.shape[0] == 0:
        return 0.0, 0
    pred = torch.cat(mask_logits).float() > 0
    tgt = targets.to(pred.device) > 0.5
    inter = (pred & tgt).sum((1, 2)).float()
    denom = (pred.sum((1, 2)) + tgt.sum((1, 2))).float()
    dice = torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom))
    return float(dice.sum()), int(dice.numel())


# What accelerate's launcher sets from an FSDP / DeepSpeed config.
SHARDING_ENV = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed"}


def frozen_to_bf16(model: torch.nn.Module) -> int:
    """Store the parameters that do not train in bf16 (autocast computes in bf16 anyway), halving
    the frozen backbone's memory: a 7B LLM takes 13.5 GB instead of 27. What trains stays fp32
    (the optimizer's master weights). DeepSpeed and FSDP manage their own dtypes, so only the
    single-process and DDP paths call this. Returns the number of parameters cast."""
    cast = 0
    for param in model.parameters():
        if not param.requires_grad and param.dtype == torch.float32:
            param.data = param.data.to(torch.bfloat16)
            cast += param.numel()
    return cast


def requested_engine() -> str | None:
    """``"DeepSpeed"``, ``"FSDP"`` or ``None``: the sharding engine the launcher asked for."""
    for var, name in SHARDING_ENV.items():
        if os.environ.get(var, "").lower() in ("1", "true"):
            return name
    return None


def make_accelerator(opt) -> Accelerator:
    """The :class:`Accelerator` of this process; its world size and rank are the engine's own.

    Several processes without GPUs: DDP runs over gloo (``cpu=True``); DeepSpeed runs on its CPU
    accelerator over gloo, which accelerate only counts right when told the backend (without it,
    every rank reports one process and acts as the main one). accelerate has no FSDP on CPUs: such a
    launch trains with DDP and says so.
    """
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    engine = requested_engine()
    handlers: list = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    cpu_deepspeed = multi_cpu and engine == "DeepSpeed"
    if cpu_deepspeed:
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
        skip_shm_op()
    acc = Accelerator(
        cpu=multi_cpu and not cpu_deepspeed,
        mixed_precision="bf16" if opt.precision == "bf16" else "no",
        gradient_accumulation_steps=opt.grad_accum,
        kwargs_handlers=handlers,
    )
    check_world(acc)
    if multi_cpu and engine == "FSDP" and acc.is_main_process:
        print(
            f"warning: the accelerate config asks for FSDP, which accelerate runs on GPUs only; "
            f"without a GPU the {acc.num_processes} processes train with DDP over gloo instead "
            "(every process holds the whole model and optimizer state)",
            file=sys.stderr,
            flush=True,
        )
    return acc


def skip_shm_op() -> None:
    """Keep DeepSpeed on CPUs from compiling its shared-memory all-reduce op (minutes of C++ on
    each new machine; it serves inference only): training's collectives run over gloo."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def fill_deepspeed_config(ds: dict, opt, world_size: int, model_config) -> None:
    """Put the training config's sizes into DeepSpeed's config (its ``auto`` entries and more).

    ``train_batch_size`` counts every process; the bucket sizes follow the LLM's width (accelerate
    looks for ``hidden_size`` on the top-level config, which MIMO's composite config does not have).
    """
    ds["train_micro_batch_size_per_gpu"] = opt.batch_size
    ds["gradient_accumulation_steps"] = opt.grad_accum
    ds["train_batch_size"] = opt.batch_size * opt.grad_accum * world_size
    ds["gradient_clipping"] = opt.max_grad_norm or 0.0
    width = model_config.text_config.hidden_size
    sizes = {
        "reduce_bucket_size": width * width,
        "stage3_prefetch_bucket_size": int(0.9 * width * width),
        "stage3_param_persistence_threshold": 10 * width,
    }
    zero = ds.setdefault("zero_optimization", {})
    for key, value in sizes.items():
        if zero.get(key) == "auto":
            zero[key] = value


def weights_sharded(acc: Accelerator) -> bool:
    """Whether each process holds only a shard of the weights (FSDP, ZeRO-3)."""
    if acc.distributed_type == DistributedType.FSDP:
        return True
    return acc.distributed_type == DistributedType.DEEPSPEED and acc.state.deepspeed_plugin.zero_stage == 3


def check_world(acc: Accelerator) -> None:
    """Refuse to train when accelerate's idea of the world differs from the process group's."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    else:
        world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    if (acc.num_processes, acc.process_index) != (world, rank):
        raise RuntimeError(
            f"accelerate reports process {acc.process_index} of {acc.num_processes}, the launcher "
            f"started process {rank} of {world} ({acc.distributed_type.value}); refusing to train with "
            "every process acting as the main one"
        )


class Trainer:
    """Builds everything from a :class:`TrainConfig`; :meth:`train` runs (or resumes) the loop."""

    def __init__(
        self,
        config: TrainConfig,
        callbacks: list[Callback] | tuple = (),
        resume: str | Path | bool | None = None,
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        opt = config.optim
        self.accelerator = make_accelerator(opt)
        acc = self.accelerator
        if acc.device.type == "cpu":
            # Adam's second moments of tiny gradients go denormal; on x86 CPUs every op on them is
            # tens of times slower (a 2.6x slower step measured on the tiny preset).
            torch.set_flush_denormal(True)
        self.sharded = acc.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)
        self.output_dir = Path(config.output_dir)
        self.resume_path = self._resume_path(resume)
        set_seed(opt.seed)

        # Data first: a bad record fails before any model is built.
        self.train_set = RecordDataset(config.data.train, processor=None, augment=config.data.augment)
        self.eval_set = RecordDataset(config.data.eval, processor=None) if config.data.eval else None
        processor_dir = self.resume_path / "processor" if self.resume_path else None
        self.model, self.processor = build_model(config, self.train_set.texts(), processor_dir)
        self.train_set.processor = self.processor
        if self.eval_set is not None:
            self.eval_set.processor = self.processor
        self.collator = Collator(self.processor)
        self.lengths = self.train_set.token_lengths() if config.data.group_by_length else None
        # ZeRO reduces gradients (ZeRO-3 also gathers weights) module by module, in the order
        # autograd reaches them: every rank must run the same modules in a step
        self.same_modules = acc.distributed_type == DistributedType.DEEPSPEED and acc.num_processes > 1

        optimizer = self._trainable_setup()
        self._epoch_setup()
        if acc.distributed_type == DistributedType.DEEPSPEED:
            fill_deepspeed_config(
                acc.state.deepspeed_plugin.deepspeed_config, opt, acc.num_processes, self.model.config
            )
        self.model, self.optimizer = acc.prepare(self.model, optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self._writer = None

    def _trainable_setup(self) -> torch.optim.Optimizer:
        """Apply the policy (what trains, LoRA), the dtypes of trained and frozen weights and
        gradient checkpointing; the AdamW optimizer over what trains."""
        config, opt, acc = self.config, self.config.optim, self.accelerator
        apply_policy(self.model, config.policy)
        if config.model.load_in_4bit:  # QLoRA: what trains keeps fp32 weights beside the bf16/4-bit rest
            for p in self.model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
        elif opt.precision == "bf16" and acc.distributed_type in (
            DistributedType.NO,
            DistributedType.MULTI_CPU,
            DistributedType.MULTI_GPU,
        ):
            frozen_to_bf16(self.model)
        if opt.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.trainable, self.total_params = count_parameters(self.model)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("policy: no parameter trains; check the policy section")
        return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay, betas=opt.betas)

    def _epoch_setup(self) -> None:
        """The records an epoch draws from, its length in steps and the run's total steps."""
        opt, acc = self.config.optim, self.accelerator
        self.pool = source_pool(self.train_set.sources, self.config.data.source_repeat, opt.seed)
        self.batches_per_epoch = len(
            EpochBatches(self._order(0), opt.batch_size, acc.process_index, acc.num_processes)
        )
        self.steps_per_epoch = self.batches_per_epoch // opt.grad_accum
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"optim: an epoch has {self.batches_per_epoch} micro-batch(es) per process, fewer than "
                f"grad_accum={opt.grad_accum}; lower optim.batch_size or optim.grad_accum"
            )
        self.total_steps = opt.max_steps or max(1, math.ceil(opt.epochs * self.steps_per_epoch))

    def _lr_factor(self, step: int) -> float:
        """The learning rate's factor at ``step``: linear warmup, then constant or linear decay to 0."""
        opt = self.config.optim
        if step < opt.warmup_steps:
            return (step + 1) / (opt.warmup_steps + 1)
        if opt.lr_schedule == "constant":
            return 1.0
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - opt.warmup_steps))

    # ------------------------------------------------------------------ helpers
    def _resume_path(self, resume: str | Path | bool | None) -> Path | None:
        if resume is None or resume is False:
            return None
        if resume is True or resume == "latest":
            path, skipped = resume_point(self.output_dir)
            for line in skipped:
                self.accelerator.print(f"warning: {line}", file=sys.stderr)
            if path is None:
                raise FileNotFoundError(f"--resume: no complete checkpoint in {self.output_dir}")
            if skipped:
                self.accelerator.print(f"warning: resuming from {path.name}, the newest intact checkpoint")
            return path
        path = Path(resume)
        problem = checkpoint_problem(path)
        if problem is not None:
            raise FileNotFoundError(f"--resume {path}: not a complete checkpoint ({problem})")
        return path

    def _order(self, epoch: int) -> list[int]:
        seed = self.config.optim.seed
        pool = self.pool
        perspectives = self.train_set.perspectives
        order = epoch_order([perspectives[i] for i in pool], self.config.data.ratios, seed, epoch)
        order = [pool[j] for j in order]
        chunk = self.config.optim.batch_size * self.accelerator.num_processes
        if self.same_modules:
            kinds = self.train_set.module_kinds()
            return same_kind_chunks(order, kinds, chunk, seed, epoch, self.lengths)
        if self.lengths is None:
            return order
        return group_by_length(order, self.lengths, chunk, seed, epoch)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def _loader(self, batches: list[list[int]], dataset: RecordDataset, epoch: int = 0) -> DataLoader:
        # Its own generator: creating the iterator must not draw from the global RNG, or a
        # resumed run's dropout would see other random numbers than an uninterrupted one.
        generator = torch.Generator().manual_seed(self.config.optim.seed * EPOCH_SEED_STRIDE + epoch)
        return DataLoader(
            dataset,
            batch_sampler=ListBatchSampler(batches),
            collate_fn=self.collator,
            num_workers=self.config.data.num_workers,
            pin_memory=self.accelerator.device.type == "cuda",
            generator=generator,
        )

    def train_loader(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        """This process's micro-batches of ``epoch``, the first ``skip_batches`` left out."""
        acc = self.accelerator
        split = EpochBatches(
            self._order(epoch), self.config.optim.batch_size, acc.process_index, acc.num_processes
        )
        usable = split.batches[: self.steps_per_epoch * self.config.optim.grad_accum]
        if self.config.data.augment is not None:  # each item's draw: (seed, epoch, rank, batch, slot)
            seed, rank = self.config.optim.seed, acc.process_index
            usable = [
                [(i, (seed, epoch, rank, b, j)) for j, i in enumerate(batch)]
                for b, batch in enumerate(usable)
            ]
        return self._loader(usable[skip_batches:], self.train_set, epoch)

    def _to_device(self, batch: dict) -> dict:
        # pinned host memory (see _loader) makes these copies asynchronous on CUDA
        return {k: v.to(self.accelerator.device, non_blocking=True) for k, v in batch.items()}

    def log(self, record: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / LOG_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step: a resumed run's tensorboard drops the events after its checkpoint
                self._writer = SummaryWriter(str(self.output_dir / "tensorboard"), purge_step=self.step)
            except ImportError:
                self._writer = False
        if self._writer:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self._writer.add_scalar(key, value, record["step"])

    # ------------------------------------------------------------------ steps
    def train_step(self, batches) -> dict[str, torch.Tensor]:
        """One optimizer step over ``grad_accum`` micro-batches; returns this process's mean losses.

        The losses stay on the device (0-dim tensors): nothing here waits for the device, the
        logging reads them every ``log_steps`` steps.
        """
        acc, model = self.accelerator, self.model
        model.train()
        sums: dict[str, list[torch.Tensor]] = {}
        for _ in range(self.config.optim.grad_accum):
            batch = self._to_device(next(batches))
            with acc.accumulate(model):
                with acc.autocast():
                    out = model(**batch)
                acc.backward(out.loss)
                if acc.sync_gradients and self.config.optim.max_grad_norm:
                    acc.clip_grad_norm_(model.parameters(), self.config.optim.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            for key in LOSS_KEYS:
                value = getattr(out, key)
                if value is not None:
                    sums.setdefault(key, []).append(value.detach().float())
        self.scheduler.step()
        return {k: torch.stack(v).mean() for k, v in sums.items()}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean losses and mask Dice on the held-out records (all processes)."""
        if self.eval_set is None:
            return {}
        acc, model = self.accelerator, self.model
        model.eval()
        n = len(self.eval_set)
        if self.config.data.max_eval_samples:
            n = min(n, self.config.data.max_eval_samples)
        order = list(range(n))
        if self.same_modules:
            chunk = self.config.optim.batch_size * acc.num_processes
            order = same_kind_chunks(order, self.eval_set.module_kinds(), chunk, 0, 0)
        split = EpochBatches(order, self.config.optim.batch_size, acc.process_index, acc.num_processes)
        keys = LOSS_KEYS
        sums = torch.zeros(2 * len(keys) + 2, device=acc.device, dtype=torch.float64)
        for batch in self._loader(split.batches, self.eval_set):
            batch = self._to_device(batch)
            with acc.autocast():
                out = model(**batch)
            for i, key in enumerate(keys):
                value = getattr(out, key)
                if value is not None:
                    sums[2 * i] += float(value)
                    sums[2 * i + 1] += 1
            dice_sum, n_masks = mask_dice(out.mask_logits, batch["seg_masks"])
            sums[-2] += dice_sum
            sums[-1] += n_masks
        sums = acc.reduce(sums, reduction="sum")
        result = {
            f"eval/{k}": float(sums[2 * i] / sums[2 * i + 1]) for i, k in enumerate(keys) if sums[2 * i + 1]
        }
        if sums[-1]:
            result["eval/dice"] = float(sums[-2] / sums[-1])
        return result

    # ------------------------------------------------------------------ loop
    def train(self) -> Path:
        """Train to ``total_steps`` (resuming if asked); returns the final model directory."""
        from tqdm.auto import tqdm

        acc, cfg = self.accelerator, self.config
        if self.resume_path is not None:
            self.step = load_checkpoint(self, self.resume_path)
            if acc.is_main_process:
                drop_logged_after(self.output_dir / LOG_FILE, self.step)
            acc.print(f"resumed from {self.resume_path} at step {self.step}")
        elif acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.output_dir / "config.yaml", dump_config(cfg))
        acc.print(
            f"{len(self.train_set)} training record(s), {self.steps_per_epoch} step(s)/epoch, "
            f"{self.total_steps} step(s); {self.trainable:,} of {self.total_params:,} parameters train"
        )
        samples_per_step = cfg.optim.batch_size * cfg.optim.grad_accum * acc.num_processes
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not acc.is_local_main_process)
        window: dict[str, list[torch.Tensor]] = {}
        tick = time.perf_counter()
        while self.step < self.total_steps:
            epoch, done = divmod(self.step, self.steps_per_epoch)
            batches = iter(self.train_loader(epoch, done * cfg.optim.grad_accum))
            for _ in range(self.steps_per_epoch - done):
                if self.step >= self.total_steps:
                    break
                losses = self.train_step(batches)
                self.step += 1
                bar.update(1)
                for key, value in losses.items():
                    window.setdefault(key, []).append(value)
                logs: dict = {}
                if self.step % cfg.log_steps == 0 or self.step == self.total_steps:
                    logs = self._reduce_window(window)
                    elapsed = time.perf_counter() - tick
                    n_steps = len(window.get("loss", [])) or 1
                    logs.update(
                        step=self.step,
                        epoch=epoch,
                        lr=self.scheduler.get_last_lr()[0],
                        samples_per_s=samples_per_step * n_steps / max(elapsed, 1e-9),
                    )
                    window, tick = {}, time.perf_counter()
                    bar.set_postfix({k: f"{logs[k]:.3f}" for k in LOSS_KEYS[1:] if k in logs})
                    self.log(logs)
                if cfg.eval_steps and self.step % cfg.eval_steps == 0 and self.step < self.total_steps:
                    self.log({"step": self.step, **self.evaluate()})
                if cfg.save_steps and self.step % cfg.save_steps == 0:
                    save_checkpoint(self, self.step)
                for callback in self.callbacks:
                    callback(self, self.step, logs)
        bar.close()
        if self.eval_set is not None:
            result = self.evaluate()
            self.log({"step": self.step, **result})
            acc.print("evaluation: " + ", ".join(f"{k}={v:.4f}" for k, v in result.items()))
        if cfg.save_steps and self.step % cfg.save_steps:
            save_checkpoint(self, self.step)
        return self.save_final()

    def _reduce_window(self, window: dict[str, list[torch.Tensor]]) -> dict[str, float]:
        """Mean of each loss over the window's steps and all processes (the one wait per log)."""
        keys = LOSS_KEYS
        t = torch.zeros(2 * len(keys), device=self.accelerator.device, dtype=torch.float64)
        for i, key in enumerate(keys):
            if window.get(key):
                t[2 * i] = torch.stack(window[key]).double().sum()
                t[2 * i + 1] = len(window[key])
        t = self.accelerator.reduce(t, reduction="sum").tolist()
        return {k: t[2 * i] / t[2 * i + 1] for i, k in enumerate(keys) if t[2 * i + 1]}

    def _rank_digests(self) -> list[str] | None:
        """SHA-256 of every process's weights (DDP): they must agree, or training went wrong."""
        if self.sharded or self.accelerator.num_processes == 1:
            return None
        from accelerate.utils import gather_object

        digest = hashlib.sha256()
        for name, tensor in sorted(self.accelerator.unwrap_model(self.model).state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        digests = gather_object([digest.hexdigest()])
        if len(set(digests)) != 1:
            raise RuntimeError(f"the processes' weights differ after training: {digests}")
        return digests

    def save_final(self) -> Path:
        """``<output_dir>/final``: LoRA merged, model + processor, written atomically."""
        acc = self.accelerator
        final = self.output_dir / FINAL_DIR
        tmp = self.output_dir / f"{FINAL_DIR}.tmp"
        acc.wait_for_everyone()
        # sharded weights are gathered (by parameter name: LoRA and token rows folded in below);
        # whole ones (DDP, ZeRO-2) are saved with LoRA and token rows merged into the model
        state = acc.get_state_dict(self.model) if weights_sharded(acc) else None
        digests = self._rank_digests()
        if acc.is_main_process:
            if tmp.exists():
                shutil.rmtree(tmp)
            model = acc.unwrap_model(self.model)
            if state is None:
                merge_lora(model)
            else:
                state = plain_state_dict(state, model)
            model.save_pretrained(tmp, state_dict=state)
            self.processor.save_pretrained(tmp)
            info = {
                "step": self.step,
                "world_size": acc.num_processes,
                "distributed_type": acc.distributed_type.value,
                "rank_weight_sha256": digests,
            }
            (tmp / "training_info.json").write_text(json.dumps(info, indent=2))
            fsync_tree(tmp)
            replace_folder(tmp, final)
            acc.print(f"final model: {final}")
        acc.wait_for_everyone()
        return final


def run(config: TrainConfig, resume: str | Path | bool | None = None, callbacks=()) -> Path:
    """Build a :class:`Trainer` and train; returns the final model directory."""
    return Trainer(config, callbacks=callbacks, resume=resume).train()


__all__ = ["MimoDataError", "Trainer", "build_model", "mask_dice", "run"]
