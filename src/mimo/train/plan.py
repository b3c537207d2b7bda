"""``mimo plan CONFIG.yaml``: parameters and training memory of a config, before anything is loaded.

The model is built on PyTorch's ``meta`` device (shapes only, no weights read, no memory), the
config's training policy applied (LoRA included), and the parameters counted per part. Memory
per GPU is then estimated for the precision, engine and gradient checkpointing:

* weights, gradients and AdamW's two moments, as each engine stores them: ``single``/``ddp``
  (bf16 is autocast: trainable weights fp32, frozen ones stored in bf16 by the trainer; DDP
  keeps a second gradient copy in its buckets), ``zero2``/``zero3`` (DeepSpeed bf16: bf16 weights, fp32 master copy, gradients and
  moments of the trainable parameters sharded over the GPUs; ZeRO-3 shards the weights too),
  ``fsdp`` (fp32 weights, gradients and moments all sharded); with ``model.load_in_4bit`` the
  LLM's decoder linears take 4 bits (NF4 with double-quantised scales) and the rest bf16;
* activations per sample (``seq_len`` tokens, image tokens included): per LLM layer and token,
  the tensors autograd keeps (residual stream, RMSNorm's fp32 copies, q/k/v, rotary outputs,
  SDPA inputs and output, the MLP's gate/up/product, LoRA inputs), or with gradient checkpointing
  only each layer's input plus one layer recomputed; the logits (bf16, fp32 and their gradient);
  SAM's global-attention maps, held while the LLM's activations are;
* a fixed runtime reserve (CUDA context, allocator slack).

It is an estimate: ``benchmarks/gpu_suite.py`` puts it beside the measured peak.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import typer

from mimo.model.policy import ADAPTERS, apply_policy
from mimo.train.config import TrainConfig

GIB = 1024**3
ENGINES = ("single", "ddp", "zero2", "zero3", "fsdp")
RUNTIME_RESERVE = 1.5 * GIB  # CUDA context, cuBLAS workspace, allocator slack
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit weights, 8-bit scale per 64, fp32 per 256 scales
ADAM_STATES = 2


@dataclass
class Part:
    name: str
    total: int
    trainable: int


@dataclass
class MemoryPlan:
    """Per-GPU bytes of a training run; ``per_gpu(batch)`` adds ``batch`` samples' activations."""

    parts: list[Part]
    engine: str
    gpus: int
    precision: str
    weights: float
    grads: float
    optimizer: float
    activations_per_sample: float
    seq_len: int
    batch_size: int
    gradient_checkpointing: bool
    load_in_4bit: bool
    inference: float
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(p.total for p in self.parts)

    @property
    def trainable(self) -> int:
        return sum(p.trainable for p in self.parts)

    @property
    def static(self) -> float:
        return self.weights + self.grads + self.optimizer + RUNTIME_RESERVE

    def per_gpu(self, batch: int | None = None) -> float:
        return self.static + (self.batch_size if batch is None else batch) * self.activations_per_sample

    def max_batch(self, gpu_memory: float) -> int:
        return max(0, int((gpu_memory - self.static) // self.activations_per_sample))


# ----------------------------------------------------------------------------- the model
def planned_model_config(config: TrainConfig):
    """``(MimoConfig, notes)``: the model the training config builds, from config files only."""
    from mimo.model.components import components_config, llava_components_config
    from mimo.model.configuration_mimo import MimoConfig
    from mimo.model.presets import preset_config
    from mimo.model.tokenizer import SPECIAL_TOKENS

    m = config.model
    notes: list[str] = []
    if m.path and (Path(m.path) / "config.json").is_file():
        return MimoConfig.from_pretrained(m.path), notes
    if m.llm and all((Path(p) / "config.json").is_file() for p in (m.llm, m.vision, m.sam)):
        return components_config(
            m.llm,
            m.vision,
            m.sam,
            role_prefix="model.",
            extra_vocab=len(SPECIAL_TOKENS),
            preprocessing=False,
            **m.config_overrides,
        ), notes
    if m.llava and all((Path(p) / "config.json").is_file() for p in (m.llava, m.sam)):
        notes.append("vocabulary: the LLaVA LLM's plus MIMO's tokens (some may exist already)")
        return llava_components_config(
            m.llava,
            m.sam,
            role_prefix="model.",
            extra_vocab=len(SPECIAL_TOKENS),
            preprocessing=False,
            **m.config_overrides,
        ), notes
    source = (
        "model.path"
        if m.path
        else "model.llm/vision/sam"
        if m.llm
        else "model.llava/sam"
        if m.llava
        else None
    )
    preset = m.preset or "paper"
    if source:
        notes.append(f"{source} not found here: sizes of the {preset!r} preset")
    if preset == "paper":
        vocab = 32000 + len(SPECIAL_TOKENS)  # LLaMA/Vicuna's vocabulary and MIMO's tokens
    else:
        vocab = config.tokenizer.vocab_size
        notes.append(f"vocabulary: {vocab} (tokenizer.vocab_size; the BPE tokenizer is trained at run time)")
    return preset_config(preset, vocab_size=vocab, **m.config_overrides), notes


def meta_model(config: TrainConfig, model_config=None):
    """The training model on the meta device, its policy applied (no memory, no weights)."""
    from mimo.model import MimoForConditionalGeneration

    if model_config is None:
        model_config, _ = planned_model_config(config)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft asks a deprecated transformers property
        model = MimoForConditionalGeneration(model_config)
        apply_policy(model, config.policy)
    return model


def count_parts(model) -> list[Part]:
    """Total and trainable parameters of the LLM (LoRA included), vision tower, SAM, MIMO's modules."""
    groups = {
        "LLM": [model.language_model],
        "vision tower": [model.vision_tower],
        "SAM": [model.sam],
        "MIMO modules": [getattr(model, name) for name in ADAPTERS if getattr(model, name) is not None],
    }
    parts = []
    for name, modules in groups.items():
        params = [p for module in modules for p in module.parameters()]
        parts.append(
            Part(name, sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))
        )
    return parts


# ----------------------------------------------------------------------------- bytes
def _is_4bit(name: str, param: torch.nn.Parameter) -> bool:
    """A frozen 2-D weight of an LLM decoder layer's linear: what bitsandbytes quantises."""
    return param.ndim == 2 and not param.requires_grad and ".layers." in name and "lora_" not in name


def state_bytes(model, engine: str, gpus: int, precision: str, load_in_4bit: bool = False) -> dict:
    """Per-GPU bytes of weights, gradients and optimizer states."""
    shard = gpus if engine in ("zero2", "zero3", "fsdp") else 1
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weights = 0.0
    for name, param in model.named_parameters():
        if load_in_4bit and name.startswith("language_model") and _is_4bit(name, param):
            weights += param.numel() * NF4_BYTES
        elif precision == "fp32" or engine == "fsdp" and not load_in_4bit:
            weights += param.numel() * 4
        elif engine in ("single", "ddp") and not load_in_4bit:  # frozen in bf16 (frozen_to_bf16)
            weights += param.numel() * (4 if param.requires_grad else 2)
        else:
            weights += param.numel() * (4 if param.requires_grad and load_in_4bit else 2)
    if engine in ("zero3", "fsdp"):
        weights /= gpus
    grads = trainable * 4.0 / shard
    master = 0.0
    if precision == "bf16" and engine in ("zero2", "zero3") and not load_in_4bit:
        master = trainable * 4.0 / shard  # DeepSpeed's fp32 copy of the bf16 trainable weights
        grads += trainable * 2.0 / (gpus if engine == "zero3" else 1)  # bf16 gradients before reduction
    if engine == "ddp" and gpus > 1:
        grads *= 2  # DDP's gradient buckets
    optimizer = trainable * 4.0 * ADAM_STATES / shard + master
    return {"weights": weights, "grads": grads, "optimizer": optimizer}


def activation_bytes(
    model_config, seq_len: int, precision: str, checkpointing: bool, lora_modules: int, engine: str
) -> float:
    """Bytes of activations one sample of ``seq_len`` tokens holds at the peak of a training step."""
    text = model_config.text_config
    h, inter, layers, vocab = (
        text.hidden_size,
        text.intermediate_size,
        text.num_hidden_layers,
        text.vocab_size,
    )
    act = 4 if precision == "fp32" else 2
    resid = 2 if precision == "bf16" and engine in ("zero2", "zero3") else 4  # DeepSpeed runs in bf16
    norms = 2 * (resid + 4 + 4) * h  # input, fp32 normalised, scaled output; two norms a layer
    attention = act * 8 * h + lora_modules * (act + 1) * h  # cast in, q k v, rotary q k, out, o_proj in
    mlp = act * (h + 4 * inter)  # cast in, gate, silu(gate), up, product
    layer = norms + attention + mlp
    per_token = resid * h * layers + layer if checkpointing else layer * layers
    logits = vocab * (act + 4 + 4)  # logits, their fp32 copy, the softmax gradient
    sam_vision = model_config.sam_config.vision_config
    tokens = (sam_vision.image_size // sam_vision.patch_size) ** 2
    sam_maps = tokens**2 * sam_vision.num_attention_heads * (act + 4)  # one global-attention layer
    return seq_len * (per_token + logits) + sam_maps


def inference_bytes(model, model_config, seq_len: int, load_in_4bit: bool) -> float:
    """bf16 weights (the LLM in 4 bits if asked), a KV cache of ``seq_len`` tokens, SAM's attention maps."""
    weights = state_bytes(model, "zero2", 1, "bf16", load_in_4bit)["weights"]
    text = model_config.text_config
    kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv = 2 * text.num_hidden_layers * kv_heads * head_dim * 2 * seq_len
    sam_vision = model_config.sam_config.vision_config
    tokens = (sam_vision.image_size // sam_vision.patch_size) ** 2
    return weights + kv + tokens**2 * sam_vision.num_attention_heads * 6 + RUNTIME_RESERVE


def make_plan(
    config: TrainConfig,
    gpus: int = 1,
    engine: str | None = None,
    seq_len: int = 1024,
    batch_size: int | None = None,
) -> MemoryPlan:
    """The memory plan of ``config`` on ``gpus`` GPUs with ``engine`` (default: single, ddp above one GPU)."""
    engine = engine or ("single" if gpus == 1 else "ddp")
    if engine not in ENGINES:
        raise ValueError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if gpus < 1 or seq_len < 1:
        raise ValueError("--gpus and --seq-len must be at least 1")
    model_config, notes = planned_model_config(config)
    model = meta_model(config, model_config)
    opt, m = config.optim, config.model
    lora = config.policy.llm == "lora"
    lora_modules = len(config.policy.lora_target_modules) if lora else 0
    states = state_bytes(model, engine, gpus, opt.precision, m.load_in_4bit)
    return MemoryPlan(
        parts=count_parts(model),
        engine=engine,
        gpus=gpus,
        precision=opt.precision,
        activations_per_sample=activation_bytes(
            model_config, seq_len, opt.precision, opt.gradient_checkpointing, lora_modules, engine
        ),
        seq_len=seq_len,
        batch_size=batch_size or opt.batch_size,
        gradient_checkpointing=opt.gradient_checkpointing,
        load_in_4bit=m.load_in_4bit,
        inference=inference_bytes(model, model_config, seq_len, m.load_in_4bit),
        notes=notes,
        **states,
    )


# ----------------------------------------------------------------------------- printing
def parse_memory(text: str) -> float:
    """``"80GB"``, ``"24 GiB"``, ``"141G"``, ``"80"`` -> bytes (GB read as GiB, as GPU makers size cards)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(g|gb|gib)?\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--gpu-memory {text!r}: expected a size in GB, e.g. 80GB or 24GB")
    return float(match.group(1)) * GIB


def _count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GB"


def format_plan(plan: MemoryPlan, gpu_memory: float, where: str = "config") -> str:
    lines = [
        f"{where}: {plan.engine} on {plan.gpus} GPU(s), {plan.precision}"
        + (", LLM in 4 bits" if plan.load_in_4bit else "")
    ]
    lines += [f"  note: {note}" for note in plan.notes]
    lines.append(f"  {'parameters':<16}{'total':>10}{'trainable':>12}")
    for part in plan.parts:
        lines.append(f"  {part.name:<16}{_count(part.total):>10}{_count(part.trainable):>12}")
    share = plan.trainable / plan.total if plan.total else 0.0
    lines.append(f"  {'all':<16}{_count(plan.total):>10}{_count(plan.trainable):>12}  ({share:.1%} trains)")
    checkpointing = "on" if plan.gradient_checkpointing else "off"
    lines += [
        "  memory per GPU",
        f"    weights                 {_gib(plan.weights)}",
        f"    gradients               {_gib(plan.grads)}",
        f"    optimizer states        {_gib(plan.optimizer)}",
        f"    activations per sample  {_gib(plan.activations_per_sample)}"
        f" ({plan.seq_len} tokens, gradient checkpointing {checkpointing})",
        f"    runtime reserve         {_gib(RUNTIME_RESERVE)}",
    ]
    need = plan.per_gpu()
    verdict = "fits" if need <= gpu_memory else "does NOT fit"
    lines.append(
        f"  batch {plan.batch_size} per GPU: {_gib(need)} of {_gib(gpu_memory)}: {verdict}"
        f" (largest batch that fits: {plan.max_batch(gpu_memory)})"
    )
    fits = "fits" if plan.inference <= gpu_memory else "does NOT fit"
    weights = "LLM in 4 bits, the rest bf16" if plan.load_in_4bit else "bf16"
    lines.append(f"  inference ({weights}, batch 1, {plan.seq_len} tokens): {_gib(plan.inference)}: {fits}")
    return "\n".join(lines)


def plan_command(
    config: Path,
    args: list[str] | None,
    gpus: int,
    gpu_memory: str,
    engine: str | None,
    seq_len: int,
    batch_size: int | None,
) -> str:
    from mimo.train.config import load_config

    memory = parse_memory(gpu_memory)
    cfg = load_config(config, list(args or []))
    plan = make_plan(cfg, gpus=gpus, engine=engine, seq_len=seq_len, batch_size=batch_size)
    return format_plan(plan, memory, where=str(config))


def plan(
    config: Path = typer.Argument(..., help="Training config (YAML), e.g. configs/paper.yaml."),
    args: list[str] = typer.Argument(None, help="key=value overrides, e.g. optim.batch_size=8."),
    gpus: int = typer.Option(1, "--gpus", min=1, help="GPUs the run uses."),
    gpu_memory: str = typer.Option("80GB", "--gpu-memory", help="Memory of one GPU, e.g. 80GB, 24GB."),
    engine: str = typer.Option(
        None, "--engine", help="single, ddp, zero2, zero3 or fsdp (default: single, ddp above 1 GPU)."
    ),
    seq_len: int = typer.Option(1024, "--seq-len", min=1, help="Tokens per sample, image tokens included."),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, help="Samples per GPU (default: optim.batch_size)."
    ),
) -> None:
    """Parameters and memory per GPU of a training config, from shapes only (no weights read)."""
    from mimo.core.errors import MimoDataError

    try:
        typer.echo(plan_command(config, args, gpus, gpu_memory, engine, seq_len, batch_size))
    except (MimoDataError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
