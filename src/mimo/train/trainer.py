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
from accelerate import Accelerator, DistributedDataParallelKwargs, DistributedType
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from mimo.data.errors import MimoDataError
from mimo.model import MimoForConditionalGeneration, MimoProcessor, preset_config
from mimo.model.components import load_projector
from mimo.model.policy import apply_policy, count_parameters, merge_lora
from mimo.model.processing_mimo import ProcessorSettings
from mimo.model.tokenizer import train_tokenizer
from mimo.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from mimo.train.config import TrainConfig, dump_config
from mimo.train.dataset import Collator, EpochBatches, ListBatchSampler, RecordDataset, epoch_order

Callback = Callable[["Trainer", int, dict], None]
FINAL_DIR = "final"
LOSS_KEYS = ("loss", "ce_loss", "bce_loss", "dice_loss", "iou_loss")  # MimoOutput fields logged


def build_model(config: TrainConfig, texts: list[str], processor_dir: Path | None = None):
    """``(model, processor)`` as the config's model section says.

    ``processor_dir``: reuse a saved processor (a checkpoint's) instead of training a tokenizer.
    """
    m = config.model
    prompt = {"system_prompt": m.system_prompt} if m.system_prompt is not None else {}
    if m.path:
        path = Path(m.path)
        if not (path / "config.json").is_file():
            raise ValueError(f"model.path: {path} is not a saved MIMO model (config.json missing)")
        model = MimoForConditionalGeneration.from_pretrained(path, trust_remote_code=False)
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
            seed_texts = [m.system_prompt or ProcessorSettings.system_prompt, "USER: ASSISTANT:"]
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
    model.config.loss_ce_weight = m.loss_ce_weight
    model.config.loss_bce_weight = m.loss_bce_weight
    model.config.loss_dice_weight = m.loss_dice_weight
    model.config.loss_iou_weight = m.loss_iou_weight
    return model, processor


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


# accelerate's launcher sets these from an FSDP / DeepSpeed config; both need GPUs.
SHARDING_ENV = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed"}


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
        # Several processes without GPUs (torchrun on CPU): accelerate needs cpu=True for gloo DDP.
        multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
        self.accelerator = Accelerator(
            cpu=multi_cpu,
            mixed_precision="bf16" if opt.precision == "bf16" else "no",
            gradient_accumulation_steps=opt.grad_accum,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        acc = self.accelerator
        requested = [name for var, name in SHARDING_ENV.items() if os.environ.get(var, "").lower() in ("1", "true")]
        if multi_cpu and requested and acc.is_main_process:
            print(
                f"warning: the accelerate config asks for {requested[0]}, which accelerate runs on GPUs "
                f"only; without a GPU the {acc.num_processes} processes train with DDP over gloo instead "
                "(every process holds the whole model and optimizer state)",
                file=sys.stderr,
                flush=True,
            )
        if acc.device.type == "cpu":
            # Adam's second moments of tiny gradients go denormal; on x86 CPUs every op on them is
            # tens of times slower (a 2.6x slower step measured on the tiny preset).
            torch.set_flush_denormal(True)
        self.sharded = acc.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)
        self.output_dir = Path(config.output_dir)
        self.resume_path = self._resume_path(resume)
        set_seed(opt.seed)

        # Data first: a bad record fails before any model is built.
        self.train_set = RecordDataset(config.data.train, processor=None)
        self.eval_set = RecordDataset(config.data.eval, processor=None) if config.data.eval else None
        processor_dir = self.resume_path / "processor" if self.resume_path else None
        self.model, self.processor = build_model(config, self.train_set.texts(), processor_dir)
        self.train_set.processor = self.processor
        if self.eval_set is not None:
            self.eval_set.processor = self.processor
        self.collator = Collator(self.processor)

        apply_policy(self.model, config.policy)
        if opt.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.trainable, self.total_params = count_parameters(self.model)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("policy: no parameter trains; check the policy section")
        optimizer = torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay, betas=opt.betas)

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
        warmup, total, constant = opt.warmup_steps, self.total_steps, opt.lr_schedule == "constant"

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            if constant:
                return 1.0
            return max(0.0, (total - step) / max(1, total - warmup))

        if acc.distributed_type == DistributedType.DEEPSPEED:
            ds = acc.state.deepspeed_plugin.deepspeed_config
            ds["train_micro_batch_size_per_gpu"] = opt.batch_size
            ds["gradient_accumulation_steps"] = opt.grad_accum
        self.model, self.optimizer = acc.prepare(self.model, optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.step = 0
        self._writer = None

    # ------------------------------------------------------------------ helpers
    def _resume_path(self, resume: str | Path | bool | None) -> Path | None:
        if resume is None or resume is False:
            return None
        if resume is True or resume == "latest":
            path = latest_checkpoint(self.output_dir)
            if path is None:
                raise FileNotFoundError(f"--resume: no complete checkpoint in {self.output_dir}")
            return path
        path = Path(resume)
        if not (path / "trainer_state.json").is_file():
            raise FileNotFoundError(
                f"--resume {path}: not a complete checkpoint (trainer_state.json missing)"
            )
        return path

    def _order(self, epoch: int) -> list[int]:
        return epoch_order(
            self.train_set.perspectives, self.config.data.ratios, self.config.optim.seed, epoch
        )

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def _loader(self, batches: list[list[int]], dataset: RecordDataset, epoch: int = 0) -> DataLoader:
        # Its own generator: creating the iterator must not draw from the global RNG, or a
        # resumed run's dropout would see other random numbers than an uninterrupted one.
        generator = torch.Generator().manual_seed(self.config.optim.seed * 100003 + epoch)
        return DataLoader(
            dataset,
            batch_sampler=ListBatchSampler(batches),
            collate_fn=self.collator,
            num_workers=self.config.data.num_workers,
            generator=generator,
        )

    def train_loader(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        """This process's micro-batches of ``epoch``, the first ``skip_batches`` left out."""
        acc = self.accelerator
        split = EpochBatches(
            self._order(epoch), self.config.optim.batch_size, acc.process_index, acc.num_processes
        )
        usable = split.batches[: self.steps_per_epoch * self.config.optim.grad_accum]
        return self._loader(usable[skip_batches:], self.train_set, epoch)

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.accelerator.device) for k, v in batch.items()}

    def log(self, record: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / "log.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.output_dir / "tensorboard"))
            except ImportError:
                self._writer = False
        if self._writer:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self._writer.add_scalar(key, value, record["step"])

    # ------------------------------------------------------------------ steps
    def train_step(self, batches) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches; returns this process's mean losses."""
        acc, model = self.accelerator, self.model
        model.train()
        sums = dict.fromkeys(LOSS_KEYS, 0.0)
        counts = dict.fromkeys(sums, 0)
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
            for key in sums:
                value = getattr(out, key)
                if value is not None:
                    sums[key] += float(value.detach())
                    counts[key] += 1
        self.scheduler.step()
        return {k: sums[k] / counts[k] for k in sums if counts[k]}

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
        split = EpochBatches(
            list(range(n)), self.config.optim.batch_size, acc.process_index, acc.num_processes
        )
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
            acc.print(f"resumed from {self.resume_path} at step {self.step}")
        elif acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(dump_config(cfg))
        acc.print(
            f"{len(self.train_set)} training record(s), {self.steps_per_epoch} step(s)/epoch, "
            f"{self.total_steps} step(s); {self.trainable:,} of {self.total_params:,} parameters train"
        )
        samples_per_step = cfg.optim.batch_size * cfg.optim.grad_accum * acc.num_processes
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not acc.is_local_main_process)
        window: dict[str, list[float]] = {}
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
                    bar.set_postfix(
                        {k: f"{logs[k]:.3f}" for k in LOSS_KEYS[1:] if k in logs}
                    )
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

    def _reduce_window(self, window: dict[str, list[float]]) -> dict[str, float]:
        keys = LOSS_KEYS
        t = torch.zeros(2 * len(keys), device=self.accelerator.device, dtype=torch.float64)
        for i, key in enumerate(keys):
            t[2 * i] = sum(window.get(key, []))
            t[2 * i + 1] = len(window.get(key, []))
        t = self.accelerator.reduce(t, reduction="sum")
        return {k: float(t[2 * i] / t[2 * i + 1]) for i, k in enumerate(keys) if t[2 * i + 1]}

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
        state = acc.get_state_dict(self.model) if self.sharded else None
        digests = self._rank_digests()
        if acc.is_main_process:
            if tmp.exists():
                shutil.rmtree(tmp)
            model = acc.unwrap_model(self.model)
            if state is None:
                merge_lora(model)
            model.save_pretrained(tmp, state_dict=state)
            self.processor.save_pretrained(tmp)
            info = {
                "step": self.step,
                "world_size": acc.num_processes,
                "distributed_type": acc.distributed_type.value,
                "rank_weight_sha256": digests,
            }
            (tmp / "training_info.json").write_text(json.dumps(info, indent=2))
            for path in tmp.rglob("*"):
                if path.is_file():
                    with path.open("rb") as fh:
                        os.fsync(fh.fileno())
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            acc.print(f"final model: {final}")
        acc.wait_for_everyone()
        return final


def run(config: TrainConfig, resume: str | Path | bool | None = None, callbacks=()) -> Path:
    """Build a :class:`Trainer` and train; returns the final model directory."""
    return Trainer(config, callbacks=callbacks, resume=resume).train()


__all__ = ["MimoDataError", "Trainer", "build_model", "mask_dice", "run"]
