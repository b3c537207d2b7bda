"""Named configurations: ``tiny`` (random weights, CPU tests and demo) and ``paper``.

``paper`` follows the MIMO paper's components: CLIP ViT-L/14 at 336 px, a 7B Vicuna/LLaMA,
SAM ViT-H. With real weights, assemble it from local checkpoints with
``MimoForConditionalGeneration.from_components``; the config here is for shape checks,
random-weight benchmarks and documentation.
"""

from __future__ import annotations

from mimo.model.configuration_mimo import MimoConfig


def sam_config(
    image_size: int,
    patch_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    global_attn_indexes: list[int],
    window_size: int,
    prompt_size: int = 256,
    decoder_mlp_dim: int = 2048,
    decoder_heads: int = 8,
) -> dict:
    """A consistent ``SamConfig`` dict (vision, prompt encoder and decoder sizes that agree)."""
    return {
        "vision_config": {
            "image_size": image_size,
            "patch_size": patch_size,
            "hidden_size": hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "output_channels": prompt_size,
            "global_attn_indexes": global_attn_indexes,
            "window_size": window_size,
            "num_pos_feats": prompt_size // 2,
            "mlp_dim": hidden_size * 4,
            # SamVisionConfig defaults to 1e-10, which leaves a randomly initialised encoder
            # outputting constants (and Adam's moments denormal); 0.02 as everywhere else.
            "initializer_range": 0.02,
        },
        "prompt_encoder_config": {
            "hidden_size": prompt_size,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        "mask_decoder_config": {
            "hidden_size": prompt_size,
            "mlp_dim": decoder_mlp_dim,
            "num_attention_heads": decoder_heads,
            "iou_head_hidden_dim": prompt_size,
        },
    }


def tiny_config(vocab_size: int = 2048, use_aligner: bool = True, **overrides) -> MimoConfig:
    """About 3M parameters: every part of the real model, small enough to train on 2 CPU cores."""
    kwargs = {
        "vision_config": {
            "model_type": "clip_vision_model",
            "image_size": 64,
            "patch_size": 8,
            "hidden_size": 96,
            "intermediate_size": 192,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
        },
        "text_config": {
            "model_type": "llama",
            "vocab_size": vocab_size,
            "hidden_size": 128,
            "intermediate_size": 344,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 1024,
            "tie_word_embeddings": False,
        },
        "sam_config": sam_config(
            image_size=128,
            patch_size=8,
            hidden_size=96,
            num_layers=3,
            num_heads=4,
            global_attn_indexes=[2],
            window_size=8,
            prompt_size=64,
            decoder_mlp_dim=256,
            decoder_heads=4,
        ),
        "vision_feature_layer": -1,
        "use_aligner": use_aligner,
        "aligner_num_queries": 8,
        "aligner_hidden_size": 96,
        "aligner_num_layers": 2,
        "aligner_num_heads": 4,
        "prompt_num_frequencies": 32,
        "seg_hidden_size": 256,
    }
    kwargs.update(overrides)
    return MimoConfig(**kwargs)


def paper_config(vocab_size: int = 32000, use_aligner: bool = True, **overrides) -> MimoConfig:
    """CLIP ViT-L/14-336 + Vicuna-7B + SAM ViT-H, the sizes of the paper's model."""
    kwargs = {
        "vision_config": {
            "model_type": "clip_vision_model",
            "image_size": 336,
            "patch_size": 14,
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "projection_dim": 768,
        },
        "text_config": {
            "model_type": "llama",
            "vocab_size": vocab_size,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
        },
        "sam_config": sam_config(
            image_size=1024,
            patch_size=16,
            hidden_size=1280,
            num_layers=32,
            num_heads=16,
            global_attn_indexes=[7, 15, 23, 31],
            window_size=14,
        ),
        "vision_feature_layer": -2,
        "use_aligner": use_aligner,
        "aligner_num_queries": 32,
        "aligner_hidden_size": 1024,
        "aligner_num_layers": 2,
        "aligner_num_heads": 16,
        "seg_hidden_size": 4096,
    }
    kwargs.update(overrides)
    return MimoConfig(**kwargs)


PRESETS = {"tiny": tiny_config, "paper": paper_config}


def preset_config(name: str, **kwargs) -> MimoConfig:
    if name not in PRESETS:
        raise ValueError(f"preset {name!r}: expected one of {sorted(PRESETS)}")
    return PRESETS[name](**kwargs)
