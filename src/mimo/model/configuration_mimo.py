"""``MimoConfig``: everything the model needs to be rebuilt, in one serialisable place."""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig, SamConfig
from transformers.configuration_utils import SubConfigSpec

LOSS_WEIGHTS = ("loss_ce_weight", "loss_bce_weight", "loss_dice_weight", "loss_iou_weight")
"""The loss-weight fields of ``MimoConfig`` (their defaults there are the one home of the values)."""


class MimoConfig(PretrainedConfig):
    r"""Configuration of :class:`MimoForConditionalGeneration`.

    Sub-configs:
        vision_config: a CLIP (or SigLIP) vision config: the image tower whose patch features
            become the LLM's image tokens.
        text_config: any causal-LM config (LLaMA/Vicuna family first).
        sam_config: a ``SamConfig``; its vision encoder, prompt encoder and mask decoder turn each
            ``<SEG>`` into a mask.

    Token ids (``image_token_id`` ...) are filled in when the tokenizer is attached
    (:meth:`MimoForConditionalGeneration.resize_for_tokenizer`); they are looked up by name, never
    assumed.

    Args:
        vision_feature_layer: which hidden layer of the vision tower gives the patch features; a
            list concatenates several layers along the channels (as LLaVA's config allows).
        vision_feature_select_strategy: ``default`` drops the tower's CLS token (CLIP), ``full``
            keeps it as one more image token; a tower without CLS (SigLIP) gives its patches either way.
        image_processing: the components' own preprocessing (size, mean, std, resampling of the
            vision tower's and SAM's processor configs), recorded by ``from_components``; the
            processor takes it over (:meth:`MimoProcessor.for_model`).
        projector_hidden_act: activation of the 2-layer MLP projector.
        use_aligner: switch the Multi-modal Input Aligner on (the paper's model) or off (its ablation).
        aligner_num_queries: K, the number of learnable queries, inserted after the image tokens.
        aligner_hidden_size / aligner_num_layers / aligner_num_heads: size of the aligner.
        prompt_num_frequencies: Fourier features per coordinate in the visual prompt encoder.
        seg_hidden_size: hidden width of the ``<SEG>`` -> SAM prompt MLP.
        seg_region_prompts: also give SAM's mask decoder the user's own regions of the sample
            (points and box corners through SAM's prompt encoder) beside each ``<SEG>`` prompt, so a
            term that names the marked region is segmented from the user's prompt; the decoder
            learns to ignore them for terms that refer elsewhere.
        mask_refiner_channels: width of the mask refiner (``MaskRefiner``), which sharpens SAM's
            quarter-resolution mask logits at SAM's full input resolution from the image; 0 (the
            default, and SAM's own behaviour) leaves it out. Adding it to a trained model starts it
            at zero (the model predicts as before) for fine-tuning.
        loss_ce_weight / loss_bce_weight / loss_dice_weight: weights of the text and mask loss terms.
        loss_iou_weight: weight of SAM's IoU-prediction loss (the mask scores); 0 leaves it untrained.
        sam_image_size: the side of SAM's square input (the SAM vision config's ``image_size``).
        max_regions_per_sample: a guard against runaway inputs.
    """

    model_type = "mimo"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
        "sam_config": SubConfigSpec(config_class=SamConfig),
    }

    vision_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    sam_config: dict | PretrainedConfig | None = None
    vision_feature_layer: int | list[int] = -2
    vision_feature_select_strategy: str = "default"
    image_processing: dict | None = None
    projector_hidden_act: str = "gelu"
    use_aligner: bool = True
    aligner_num_queries: int = 32
    aligner_hidden_size: int = 512
    aligner_num_layers: int = 2
    aligner_num_heads: int = 8
    prompt_num_frequencies: int = 64
    seg_hidden_size: int = 1024
    seg_region_prompts: bool = True
    mask_refiner_channels: int = 0
    loss_ce_weight: float = 1.0
    loss_bce_weight: float = 2.0
    loss_dice_weight: float = 0.5
    loss_iou_weight: float = 1.0
    image_token_id: int | None = None
    region_token_id: int | None = None
    seg_token_id: int | None = None
    phrase_start_token_id: int | None = None
    phrase_end_token_id: int | None = None
    pad_token_id: int | None = None
    tie_word_embeddings: bool = False

    @property
    def num_patches(self) -> int:
        """Patch tokens per image from the vision tower (CLS dropped)."""
        return (self.vision_config.image_size // self.vision_config.patch_size) ** 2

    @property
    def vision_has_cls(self) -> bool:
        """Whether the vision tower puts a CLS token before its patches (CLIP does, SigLIP not)."""
        return self.vision_config.model_type.startswith("clip")

    @property
    def num_feature_layers(self) -> int:
        layer = self.vision_feature_layer
        return 1 if isinstance(layer, int) else len(layer)

    @property
    def num_image_features(self) -> int:
        """Projected tokens per image: the patches, and CLS with strategy ``full``."""
        keep_cls = self.vision_feature_select_strategy == "full" and self.vision_has_cls
        return self.num_patches + int(keep_cls)

    @property
    def image_seq_length(self) -> int:
        """Tokens one ``<image>`` expands to: the image features, then the aligner's K queries."""
        return self.num_image_features + (self.aligner_num_queries if self.use_aligner else 0)

    @property
    def sam_image_size(self) -> int:
        return self.sam_config.vision_config.image_size


__all__ = ["MimoConfig"]
