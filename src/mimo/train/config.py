"""The training configuration: a typed, documented pydantic model loaded from YAML.

``load_config(path, overrides)`` reads the YAML file, applies ``key=value`` overrides (dotted keys,
values parsed as YAML scalars, e.g. ``optim.lr=3e-4 data.ratios.vqa=0``) and validates the
result. Unknown keys and wrong types raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mimo.data.mix import DEFAULT_RATIOS
from mimo.model.policy import TrainingPolicy
from mimo.train.augment import Augmentation


class ConfigError(ValueError):
    """A user error in the training configuration (message names the key)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelSection(_Section):
    preset: Literal["tiny", "paper"] | None = Field(
        "tiny", description="random-weight preset to build ('tiny' for CPU runs); ignored with path/llm/llava"
    )
    path: str | None = Field(
        None, description="a saved MIMO model directory (save_pretrained) to start from, processor inside"
    )
    llm: str | None = Field(None, description="local transformers causal-LM directory (with vision, sam)")
    vision: str | None = Field(None, description="local CLIP/SigLIP checkpoint directory")
    sam: str | None = Field(None, description="local SAM checkpoint directory")
    llava: str | None = Field(
        None,
        description="local LlavaForConditionalGeneration directory (its LLM, vision tower, projector; with sam)",
    )
    projector_from: str | None = Field(
        None, description="a run folder (or saved model) whose projector weights to start from (stage 1)"
    )
    config_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="extra MimoConfig keyword arguments (e.g. use_aligner: false); with path, they change "
        "the saved config (e.g. mask_refiner_channels: 16 adds a mask refiner that starts at zero)",
    )
    # Loss weights: None keeps the model's own (a new model's are MimoConfig's defaults).
    loss_ce_weight: float | None = Field(None, ge=0, description="weight of the text cross-entropy loss")
    loss_bce_weight: float | None = Field(None, ge=0, description="weight of the mask BCE loss")
    loss_dice_weight: float | None = Field(None, ge=0, description="weight of the mask Dice loss")
    loss_iou_weight: float | None = Field(
        None, ge=0, description="weight of SAM's IoU-prediction (mask score) loss"
    )
    system_prompt: str | None = Field(
        None, description="system prompt of the processor (default: the processor's own)"
    )
    load_in_4bit: bool = Field(
        False, description="load the LLM in 4 bits (bitsandbytes NF4, QLoRA); needs a CUDA GPU"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSection:
        parts = [self.llm, self.vision, self.sam]
        if self.llava:
            if self.path or self.llm or self.vision:
                raise ValueError("give model.llava (with model.sam) or model.path or model.llm/vision/sam")
            if not self.sam:
                raise ValueError("model.llava needs model.sam beside it")
            return self
        if any(parts) and not all(parts):
            raise ValueError("model.llm, model.vision and model.sam must be given together")
        if self.path and any(parts):
            raise ValueError("give either model.path or model.llm/vision/sam, not both")
        if not self.path and not any(parts) and self.preset is None:
            raise ValueError("give model.preset, model.path or model.llm/vision/sam")
        return self


class TokenizerSection(_Section):
    vocab_size: int = Field(
        512, ge=64, description="BPE vocabulary size trained on the records' text (random-weight presets)"
    )
    max_texts: int = Field(20000, ge=1, description="at most this many record texts feed the BPE trainer")


class DataSection(_Section):
    train: list[str] = Field(min_length=1, description="training record files (JSONL); images relative")
    eval: list[str] = Field(default_factory=list, description="held-out record files (JSONL)")
    ratios: dict[str, float] | None = Field(
        default_factory=lambda: dict(DEFAULT_RATIOS),
        description="per-epoch mix by record perspective (I:II:III:IV:vqa); null: every record once",
    )
    source_repeat: dict[str, float] | None = Field(
        None,
        description="times per epoch each record of a source appears, by the records' `source` "
        "(e.g. {'folder2d:hc18-fetal-head': 3}); sources not named appear once; 0 drops one",
    )
    augment: Augmentation | None = Field(
        None,
        description="training-time augmentation that keeps answers true (centred zoom-out, "
        "intensity): {p, zoom_out, intensity}; null: none",
    )
    group_by_length: bool = Field(
        False, description="batch records of similar token length together (less padding per step)"
    )
    max_eval_samples: int | None = Field(None, ge=1, description="evaluate on at most this many records")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")

    @field_validator("source_repeat")
    @classmethod
    def _source_repeat(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and any(v < 0 for v in value.values()):
            raise ValueError("source_repeat values must be non-negative")
        return value

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            if any(v < 0 for v in value.values()):
                raise ValueError("ratios must be non-negative")
            if not any(value.values()):
                raise ValueError("at least one ratio must be positive")
        return value


class OptimSection(_Section):
    lr: float = Field(2e-4, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas")
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps")
    lr_schedule: Literal["linear", "constant"] = Field(
        "linear", description="after warmup: linear decay to 0, or constant"
    )
    epochs: float = Field(1.0, gt=0, description="epochs to train when max_steps is not set")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps to train (overrides epochs)")
    batch_size: int = Field(1, ge=1, description="micro-batch size per process")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping norm (null: none)")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="fp32, or bf16 autocast")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass")
    seed: int = Field(0, description="seed of model init, data order and dropout")


class TrainConfig(_Section):
    output_dir: str = Field(description="run folder: checkpoints, logs and the final model")
    model: ModelSection = Field(default_factory=ModelSection, description="what model to train")
    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection, description="tiny tokenizer")
    data: DataSection = Field(description="record files and their mix")
    policy: TrainingPolicy = Field(
        default_factory=TrainingPolicy, description="what trains (preset: finetune|scratch|align + overrides)"
    )
    optim: OptimSection = Field(default_factory=OptimSection, description="optimisation")
    log_steps: int = Field(10, ge=1, description="log losses every N optimizer steps")
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps (null: at the end only)")
    save_steps: int | None = Field(None, ge=1, description="checkpoint every N steps (null: never)")
    save_total_limit: int = Field(2, ge=1, description="keep the last K checkpoints")

    @field_validator("policy", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"preset": value}
        if isinstance(value, dict) and "preset" in value:
            value = dict(value)
            name = value.pop("preset")
            try:
                base = TrainingPolicy.preset(name).model_dump()
            except ValueError as exc:
                raise ValueError(str(exc)) from None
            base.update(value)
            return base
        return value


def set_dotted(tree: dict, key: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``key='a.b'``, creating dicts; errors name the key."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"override {key!r}: empty key part")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str) and ".".join(parts[: i + 1]) == "policy":
            child = node[part] = {"preset": child}
        if not isinstance(child, dict):
            raise ConfigError(
                f"override {key!r}: {'.'.join(parts[: i + 1])} is a {type(child).__name__}, not a section"
            )
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    key, eq, raw = text.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"override {text!r}: expected key=value (e.g. optim.lr=1e-4)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return key.strip(), value


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function-"))
        msg = err.get("msg", "")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key"
        elif err.get("type") == "missing":
            msg = "required key is missing"
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  {key or '<root>'}: {msg}")
    return "\n".join(lines)


def config_from_dict(tree: dict, where: str = "config") -> TrainConfig:
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"{where}: invalid training config:\n{_format(exc)}") from None


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config, apply ``key=value`` overrides and validate."""
    tree: dict = {}
    where = "config"
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
        tree = loaded or {}
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(tree, key, value)
    return config_from_dict(tree, where)


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
