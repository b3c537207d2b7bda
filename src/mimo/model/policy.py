"""Which parameters train: the freezing policy as configuration.

``finetune`` (the paper's lineage, for pretrained components): CLIP tower and SAM image encoder
frozen; LoRA on the LLM's attention; projector, prompt encoder, aligner, ``<SEG>`` head, mask
refiner (when the model has one), SAM mask decoder and the rows of MIMO's own tokens
(``<image> <region> <p> </p> <SEG>``) in the LLM's input embedding and output layer trained.
``scratch`` (random-initialised models such as the ``tiny`` preset): everything trains, the LLM
in full. ``align`` (LLaVA's stage 1, image-caption alignment): only the projector trains.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from mimo.model.token_rows import RowTunedEmbedding, RowTunedLinear, merge_token_rows, tune_token_rows

ADAPTERS = ("projector", "prompt_encoder", "aligner", "seg_head", "mask_refiner")


class TrainingPolicy(BaseModel):
    """What trains. Every field is a switch a user may flip in the training config."""

    model_config = ConfigDict(extra="forbid")

    llm: str = Field("lora", pattern="^(lora|full|frozen)$", description="how the LLM trains")
    vision_tower: bool = Field(False, description="train the CLIP/SigLIP vision tower")
    sam_encoder: bool = Field(False, description="train SAM's image encoder")
    sam_decoder: bool = Field(True, description="train SAM's prompt encoder and mask decoder")
    token_rows: bool | Literal["new"] = Field(
        "new",
        description="the LLM's input embedding and output layer: 'new' trains the rows of MIMO's own "
        "tokens only, true every row, false none",
    )
    adapters: list[str] = Field(
        default_factory=lambda: list(ADAPTERS),
        description=f"which of MIMO's own modules train {list(ADAPTERS)}",
    )
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    lora_target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])

    @classmethod
    def preset(cls, name: str) -> TrainingPolicy:
        if name == "finetune":
            return cls()
        if name == "scratch":
            return cls(llm="full", vision_tower=True, sam_encoder=True, token_rows=True)
        if name == "align":
            return cls(llm="frozen", sam_decoder=False, token_rows=False, adapters=["projector"])
        raise ValueError(f"training policy {name!r}: expected 'finetune', 'scratch' or 'align'")

    @field_validator("adapters")
    @classmethod
    def _known_adapters(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ADAPTERS))
        if unknown:
            raise ValueError(f"unknown adapter(s) {unknown}; expected names among {list(ADAPTERS)}")
        return value


def _set(module: nn.Module | None, trainable: bool) -> None:
    if module is not None:
        for p in module.parameters():
            p.requires_grad_(trainable)


def apply_policy(model, policy: TrainingPolicy) -> None:
    """Set ``requires_grad`` on ``model`` (a MimoForConditionalGeneration) and add LoRA if asked."""
    _set(model, False)
    for name in policy.adapters:
        _set(getattr(model, name), True)
    _set(model.vision_tower, policy.vision_tower)
    _set(model.sam.vision_encoder, policy.sam_encoder)
    _set(model.sam.prompt_encoder, policy.sam_decoder)
    _set(model.sam.mask_decoder, policy.sam_decoder)
    _set(model.sam.shared_image_embedding, policy.sam_decoder)
    if policy.llm == "full":
        _set(model.language_model, True)
    elif policy.llm == "lora" and not has_lora(model):
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=policy.lora_r,
            lora_alpha=policy.lora_alpha,
            lora_dropout=policy.lora_dropout,
            target_modules=policy.lora_target_modules,
            bias="none",
        )
        model.language_model = get_peft_model(model.language_model, config)
    if policy.token_rows == "new":
        tune_token_rows(model.language_model, mimo_token_ids(model.config))
    elif policy.token_rows:
        _set(model.get_input_embeddings(), True)
        _set(model.get_output_embeddings(), True)


def has_lora(model) -> bool:
    from peft import PeftModel

    return isinstance(model.language_model, PeftModel)


def mimo_token_ids(config) -> list[int]:
    """The ids of MIMO's own tokens, or, before a tokenizer set them (``mimo plan`` on the meta
    device), the last rows of the vocabulary, where assembly adds them."""
    names = ("image", "region", "phrase_start", "phrase_end", "seg")
    ids = [getattr(config, f"{name}_token_id") for name in names]
    if all(i is None for i in ids):
        vocab = config.text_config.vocab_size
        return list(range(vocab - len(names), vocab))
    return [i for i in ids if i is not None]


def merge_lora(model) -> None:
    """Fold LoRA weights (and row-tuned token rows) into the LLM so the model saves and loads as
    a plain MIMO model."""
    if has_lora(model):
        model.language_model = model.language_model.merge_and_unload()
    merge_token_rows(model.language_model)


def plain_state_dict(state: dict, model: nn.Module) -> dict:
    """``state`` as ``merge_lora(model)`` then ``model.state_dict()`` would give it, for a state
    gathered from sharded weights (ZeRO-3 and FSDP gather tensors by parameter name: LoRA
    matrices beside their base weights, a row-tuned layer's ``rows`` beside its matrix).

    LoRA is folded into each base weight (``W + scaling * B @ A``) and peft's key prefixes are
    removed; tuned token rows are written into their matrices."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    out = dict(state)
    renames: list[tuple[str, str]] = []
    for name, module in model.named_modules():
        # FSDP's and activation checkpointing's wrappers are not in the keys their state dicts give
        name = name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")
        prefix = f"{name}." if name else ""
        if isinstance(module, (RowTunedEmbedding, RowTunedLinear)) and prefix + "rows" in out:
            out[prefix + "weight"] = module.merged_weight(out[prefix + "weight"], out.pop(prefix + "rows"))
        elif isinstance(module, LoraLayer):
            _fold_lora(out, module, prefix)
            renames.append((prefix + "base_layer.", prefix))
        elif isinstance(module, PeftModel):
            renames.append((prefix + "base_model.model.", prefix))
    for old, new in reversed(renames):  # inner layers first, then the peft model's prefix
        out = {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in out.items()}
    return out


def _fold_lora(state: dict, layer, prefix: str) -> None:
    """``state[prefix + "base_layer.weight"] += scaling * B @ A`` for each of the layer's adapters,
    its LoRA matrices removed from ``state``."""
    key = prefix + "base_layer.weight"
    weight = state[key].float()
    for adapter in list(layer.lora_A):
        a = state.pop(f"{prefix}lora_A.{adapter}.weight").float()
        b = state.pop(f"{prefix}lora_B.{adapter}.weight").float()
        delta = (b @ a) * layer.scaling[adapter]
        weight = weight + (delta.T if layer.fan_in_fan_out else delta)
    state[key] = weight.to(state[key].dtype)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
