"""Assemble a MIMO model from local pretrained components (LLM, CLIP/SigLIP vision, SAM)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, SamModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from mimo.model.configuration_mimo import MimoConfig
from mimo.model.tokenizer import add_special_tokens

VISION_TYPES = {"clip_vision_model", "siglip_vision_model", "clip", "siglip"}


def _component_config(path: str | Path, role: str, accepted: set[str]):
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{role}: {path} is not a directory (expected a transformers checkpoint directory)")
    if not (path / "config.json").is_file():
        raise ValueError(f"{role}: {path / 'config.json'} is missing (expected a transformers checkpoint)")
    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    if config.model_type not in accepted:
        raise ValueError(
            f"{role}: {path} holds a {config.model_type!r} model; expected one of {sorted(accepted)}"
        )
    return config


def assemble(
    cls, llm: str | Path, vision: str | Path, sam: str | Path, tokenizer=None, dtype=None, **config_kwargs
):
    """Build ``cls`` (a :class:`MimoForConditionalGeneration`) with the components' own weights.

    The tokenizer is read from ``llm`` unless given; MIMO's special tokens are added to it and the
    LLM's embeddings resized. Returns ``(model, tokenizer)``.
    """
    llm_config = _component_config(llm, "llm", set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES))
    vision_config = _component_config(vision, "vision", VISION_TYPES)
    sam_config = _component_config(sam, "sam", {"sam"})
    if vision_config.model_type in {"clip", "siglip"}:
        vision_config = vision_config.vision_config
    config = MimoConfig(
        text_config=llm_config, vision_config=vision_config, sam_config=sam_config, **config_kwargs
    )
    with torch.device("meta"):
        model = cls(config)
    load = {"trust_remote_code": False, **({"dtype": dtype} if dtype is not None else {})}
    model.language_model = AutoModelForCausalLM.from_pretrained(llm, **load)
    vision_cls = AutoModel if vision_config.model_type.endswith("_vision_model") else None
    if vision_cls is None:  # a full CLIP/SigLIP checkpoint: keep its vision half
        model.vision_tower = AutoModel.from_pretrained(vision, **load).vision_model
    else:
        model.vision_tower = AutoModel.from_pretrained(vision, **load)
    model.sam = SamModel.from_pretrained(sam, **load)
    model._build_adapters(config)
    for name in ("projector", "prompt_encoder", "aligner", "seg_head"):
        module = getattr(model, name)
        if module is not None:
            module.apply(model._init_weights)
            if dtype is not None:
                module.to(dtype)
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(llm, trust_remote_code=False)
    add_special_tokens(tokenizer)
    model.resize_for_tokenizer(tokenizer)
    return model, tokenizer
