"""Assemble a MIMO model from local pretrained components: an LLM, a CLIP/SigLIP vision tower
and SAM (:func:`assemble`), or a LLaVA checkpoint and SAM (:func:`assemble_llava`)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlavaForConditionalGeneration,
    SamModel,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from mimo.model.configuration_mimo import MimoConfig
from mimo.model.image_processing import component_image_processing
from mimo.model.policy import ADAPTERS
from mimo.model.tokenizer import add_special_tokens

VISION_TYPES = {"clip_vision_model", "siglip_vision_model", "clip", "siglip"}
# taken from a LLaVA checkpoint's config: its projector was trained for exactly these
LLAVA_KEYS = ("vision_feature_layer", "vision_feature_select_strategy", "projector_hidden_act")


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
    config = components_config(llm, vision, sam, **config_kwargs)
    with torch.device("meta"):
        model = cls(config)
    load = {"trust_remote_code": False, **({"dtype": dtype} if dtype is not None else {})}
    model.language_model = AutoModelForCausalLM.from_pretrained(llm, **load)
    vision_cls = AutoModel if config.vision_config.model_type.endswith("_vision_model") else None
    if vision_cls is None:  # a full CLIP/SigLIP checkpoint: keep its vision half
        model.vision_tower = AutoModel.from_pretrained(vision, **load).vision_model
    else:
        model.vision_tower = AutoModel.from_pretrained(vision, **load)
    model.sam = SamModel.from_pretrained(sam, **load)
    _init_adapters(model, config, dtype)
    return model, _attach_tokenizer(model, tokenizer or _tokenizer(llm, "llm"))


def components_config(
    llm,
    vision,
    sam,
    *,
    role_prefix: str = "",
    extra_vocab: int = 0,
    preprocessing: bool = True,
    **config_kwargs,
) -> MimoConfig:
    """The ``MimoConfig`` of a model assembled from an LLM, a CLIP/SigLIP and a SAM directory,
    read from their config files alone. ``extra_vocab``: tokens to add to the LLM's vocabulary
    (the planner counts MIMO's special tokens this way); ``preprocessing``: read the components'
    own image preprocessing too (``image_processing``)."""
    llm_config = _component_config(llm, f"{role_prefix}llm", set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES))
    llm_config.vocab_size += extra_vocab
    vision_config = _component_config(vision, f"{role_prefix}vision", VISION_TYPES)
    sam_config = _component_config(sam, f"{role_prefix}sam", {"sam"})
    if vision_config.model_type in {"clip", "siglip"}:
        vision_config = vision_config.vision_config
    if preprocessing:
        _add_image_processing(config_kwargs, vision, sam, vision_config, sam_config)
    return MimoConfig(
        text_config=llm_config, vision_config=vision_config, sam_config=sam_config, **config_kwargs
    )


def _add_image_processing(config_kwargs: dict, vision_dir, sam_dir, vision_config, sam_config) -> None:
    """Set ``config_kwargs["image_processing"]`` from the components' own processor configs, an
    ``image_processing`` the caller gave winning key by key."""
    processing = component_image_processing(
        vision_dir, sam_dir, vision_config.image_size, sam_config.vision_config.image_size
    )
    config_kwargs["image_processing"] = {**processing, **config_kwargs.pop("image_processing", {})} or None


def llava_components_config(
    llava, sam, *, role_prefix: str = "", extra_vocab: int = 0, preprocessing: bool = True, **config_kwargs
) -> MimoConfig:
    """The ``MimoConfig`` of a model assembled from a LLaVA and a SAM directory (config files
    alone): LLaVA's text and vision configs and its ``LLAVA_KEYS``, which cannot be overridden."""
    llava_config = _component_config(llava, f"{role_prefix}llava", {"llava"})
    sam_config = _component_config(sam, f"{role_prefix}sam", {"sam"})
    vision_config = llava_config.vision_config
    if vision_config.model_type not in VISION_TYPES:
        raise ValueError(
            f"llava: {llava} has a {vision_config.model_type!r} vision tower; expected CLIP or SigLIP"
        )
    clash = sorted(k for k in LLAVA_KEYS if k in config_kwargs)
    if clash:
        raise ValueError(f"llava: {clash} come from the LLaVA checkpoint's config and cannot be overridden")
    text_config = llava_config.text_config
    text_config.vocab_size += extra_vocab
    if preprocessing:
        _add_image_processing(config_kwargs, llava, sam, vision_config, sam_config)
    return MimoConfig(
        text_config=text_config,
        vision_config=vision_config,
        sam_config=sam_config,
        **{key: getattr(llava_config, key) for key in LLAVA_KEYS},
        **config_kwargs,
    )


def assemble_llava(cls, llava: str | Path, sam: str | Path, tokenizer=None, dtype=None, **config_kwargs):
    """Build ``cls`` from a transformers ``LlavaForConditionalGeneration`` directory and SAM.

    LLaVA's language model, vision tower and 2-layer projector become MIMO's (the projector's
    ``linear_1 / act / linear_2`` map one to one; a bias-free projector gets zero biases), and its
    vision feature layer, selection strategy and projector activation are taken from its config.
    MIMO's other modules start fresh. Returns ``(model, tokenizer)``.
    """
    config = llava_components_config(llava, sam, **config_kwargs)
    with torch.device("meta"):
        model = cls(config)
    load = {"dtype": dtype} if dtype is not None else {}
    source = LlavaForConditionalGeneration.from_pretrained(llava, **load)
    model.language_model = _causal_lm(source, config)
    model.vision_tower = source.model.vision_tower
    model.sam = SamModel.from_pretrained(sam, **load)
    _init_adapters(model, config, dtype)
    _load_projector(model.projector, source.model.multi_modal_projector, llava)
    return model, _attach_tokenizer(model, tokenizer or _tokenizer(llava, "llava"))


def _causal_lm(source, config: MimoConfig):
    """LLaVA's decoder and LM head as one causal LM of ``config.text_config``'s class (no copy)."""
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(config.text_config)
    setattr(lm, lm.base_model_prefix, source.model.language_model)
    lm.set_output_embeddings(source.lm_head)
    left = [name for name, p in lm.named_parameters() if p.is_meta]
    if left:
        raise ValueError(f"llava: the language model has parts LLaVA does not provide: {left[:3]}")
    return lm


def _load_projector(projector, source, where) -> None:
    state = {key: value for key, value in source.state_dict().items()}
    missing, unexpected = projector.load_state_dict(state, strict=False)
    if unexpected or any(not key.endswith("bias") for key in missing):
        raise ValueError(
            f"llava: {where}'s projector does not map onto MIMO's (missing {missing}, unexpected {unexpected})"
        )


def _init_adapters(model, config: MimoConfig, dtype) -> None:
    model._build_adapters(config)
    for name in ADAPTERS:
        module = getattr(model, name)
        if module is not None:
            module.apply(model._init_weights)
            if dtype is not None:
                module.to(dtype)


def _tokenizer(directory, role: str):
    try:
        return AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{role}: {directory} holds no readable tokenizer ({exc})") from None


def _attach_tokenizer(model, tokenizer):
    """Add MIMO's special tokens; their new embedding rows start at the mean of the old ones."""
    before = len(tokenizer)
    add_special_tokens(tokenizer)
    model.resize_for_tokenizer(tokenizer, new_from=before)
    return tokenizer


def load_projector(model, source: str | Path) -> None:
    """Copy the projector weights of a saved MIMO model into ``model`` (stage 1 -> stage 2).

    ``source``: a run folder (its ``final/`` model is read) or a saved model directory. Only the
    projector's tensors are read (safetensors, sharded or not); the vision features it was
    trained on (layers, selection) and its shapes must match ``model``'s.
    """
    directory = Path(source)
    if (directory / "final" / "config.json").is_file():
        directory = directory / "final"
    if not (directory / "config.json").is_file():
        raise ValueError(
            f"model.projector_from: {source} is neither a run folder with final/ nor a saved MIMO model"
        )
    saved = MimoConfig.from_pretrained(directory)
    for key in ("vision_feature_layer", "vision_feature_select_strategy", "projector_hidden_act"):
        if getattr(saved, key) != getattr(model.config, key):
            raise ValueError(
                f"model.projector_from: {directory} was trained with {key}={getattr(saved, key)!r}, "
                f"this model uses {getattr(model.config, key)!r}"
            )
    state = _read_prefixed(directory, "projector.")
    expected = model.projector.state_dict()
    if set(state) != set(expected):
        raise ValueError(
            f"model.projector_from: {directory} holds projector tensors {sorted(state)}, expected {sorted(expected)}"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(
                f"model.projector_from: projector.{key} is {tuple(value.shape)} in {directory}, "
                f"{tuple(expected[key].shape)} here (a different vision tower or LLM?)"
            )
    with torch.no_grad():
        for key, param in model.projector.state_dict(keep_vars=True).items():
            param.copy_(state[key].to(param.dtype))


def _read_prefixed(directory: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` of a safetensors checkpoint (one file or an index of shards)."""
    import json

    from safetensors import safe_open

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        files = {key: directory / name for key, name in weight_map.items() if key.startswith(prefix)}
    elif (directory / "model.safetensors").is_file():
        with safe_open(directory / "model.safetensors", "pt") as handle:
            files = {key: directory / "model.safetensors" for key in handle.keys() if key.startswith(prefix)}  # noqa: SIM118
    else:
        raise ValueError(f"model.projector_from: {directory} holds no model.safetensors")
    state = {}
    for key, path in files.items():
        with safe_open(path, "pt") as handle:
            state[key[len(prefix) :]] = handle.get_tensor(key)
    return state
