"""``MimoForConditionalGeneration``: vision tower + projector, visual prompt encoder, Multi-modal
Input Aligner, a causal LM, and a SAM-based grounding head (docs/architecture.md: the route of
an image).

Sequence layout (made by :class:`mimo.model.processing_mimo.MimoProcessor`): every ``<image>``
in the text is expanded to ``config.image_seq_length`` image-token ids; the first
``num_patches`` are filled with the projected patch features, the next ``aligner_num_queries``
with the aligner's outputs. Each ``<region>`` id is replaced by its region's embedding, the n-th
``<region>`` of the batch (row-major) by the n-th region; the hidden state at each ``<SEG>``
becomes one mask. Where these tokens sit comes from the processor's ``TokenLayout`` (found on
the host, so a training step never reads the device back), or is found in the ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel, SamModel
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from mimo.core.defaults import MASK_THRESHOLD
from mimo.model.aligner import MultimodalInputAligner
from mimo.model.configuration_mimo import MimoConfig
from mimo.model.fast_decode import FastDecoder, fast_supported
from mimo.model.frame import SquareFrame
from mimo.model.grounding import (
    MaskRefiner,
    SegPromptHead,
    decode_masks,
    sam_image_embeddings,
    sam_point_tokens,
)
from mimo.model.losses import dice_loss, iou_prediction_loss, sigmoid_bce_loss
from mimo.model.prompt_encoder import VisualPromptEncoder
from mimo.model.token_layout import TokenLayout, check_region_count, token_positions


@dataclass
class MimoOutput(ModelOutput):
    """Forward output. ``loss = w_ce * ce_loss + w_bce * bce_loss + w_dice * dice_loss + w_iou * iou_loss``."""

    loss: torch.Tensor | None = None
    ce_loss: torch.Tensor | None = None
    bce_loss: torch.Tensor | None = None
    dice_loss: torch.Tensor | None = None
    iou_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: object | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    mask_logits: list[torch.Tensor] | None = None


@dataclass
class MimoGenerateOutput(ModelOutput):
    """``sequences``: generated ids (answer only). ``masks[b]``: ``(n_b, H_b, W_b)`` booleans at the
    b-th input image's own size, one per ``<SEG>`` in order; ``scores[b]``: ``(n_b,)`` mask scores."""

    sequences: torch.Tensor | None = None
    masks: list[torch.Tensor] | None = None
    scores: list[torch.Tensor] | None = None


class MimoProjector(nn.Module):
    """Two-layer MLP from the vision tower's width to the LLM's (LLaVA-1.5's projector)."""

    def __init__(self, in_size: int, out_size: int, act: str) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_size, out_size)
        self.act = ACT2FN[act]
        self.linear_2 = nn.Linear(out_size, out_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class MimoPreTrainedModel(PreTrainedModel):
    config_class = MimoConfig
    base_model_prefix = "mimo"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["LlamaDecoderLayer", "CLIPEncoderLayer", "SamVisionLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = 0.02
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std)
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, MultimodalInputAligner):
            module.queries.normal_(0.0, std)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            if getattr(module, "zero_init", False):  # MaskRefiner.out: a new refiner adds nothing
                module.weight.zero_()
            else:
                nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                module.bias.zero_()


class MimoForConditionalGeneration(MimoPreTrainedModel, GenerationMixin):
    def __init__(self, config: MimoConfig) -> None:
        super().__init__(config)
        _check_config(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.sam = SamModel(config.sam_config)
        self._build_adapters(config)
        self.post_init()
        _init_sam_positional_frequencies(self.sam)

    def _build_adapters(self, config: MimoConfig) -> None:
        """The parts MIMO adds between the pretrained components (trained from scratch)."""
        text_size = config.text_config.hidden_size
        vision_size = config.vision_config.hidden_size * config.num_feature_layers
        self.projector = MimoProjector(vision_size, text_size, config.projector_hidden_act)
        self.prompt_encoder = VisualPromptEncoder(vision_size, text_size, config.prompt_num_frequencies)
        self.aligner = None
        if config.use_aligner:
            self.aligner = MultimodalInputAligner(
                text_size,
                config.aligner_hidden_size,
                text_size,
                config.aligner_num_queries,
                config.aligner_num_layers,
                config.aligner_num_heads,
            )
        prompt_size = config.sam_config.prompt_encoder_config.hidden_size
        self.seg_head = SegPromptHead(text_size, config.seg_hidden_size, prompt_size)
        self.mask_refiner = (
            MaskRefiner(config.mask_refiner_channels) if config.mask_refiner_channels else None
        )

    # ----------------------------------------------------------------- embeddings
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image features ``(B, N, C)`` of the configured layer(s) (several concatenated along the
        channels), selected as LLaVA does: strategy ``default`` drops CLIP's CLS token, ``full``
        keeps it first. ``N = config.num_image_features``; the patches are the last ``num_patches``."""
        cfg = self.config
        dtype = next(self.vision_tower.parameters()).dtype
        out = self.vision_tower(pixel_values.to(dtype), output_hidden_states=True)
        layers = (
            [cfg.vision_feature_layer]
            if isinstance(cfg.vision_feature_layer, int)
            else cfg.vision_feature_layer
        )
        features = torch.cat([out.hidden_states[layer] for layer in layers], dim=-1)
        return features[:, features.shape[1] - cfg.num_image_features :]

    def token_layout(
        self, input_ids: torch.LongTensor, region_coord_labels: torch.Tensor | None = None
    ) -> TokenLayout:
        """Where the special tokens of ``input_ids`` sit (what ``MimoProcessor.collate`` passes
        as ``layout``; built here, it reads the ids and region labels back from the device)."""
        cfg = self.config
        return TokenLayout.of(
            input_ids,
            region_coord_labels,
            image_id=cfg.image_token_id,
            region_id=cfg.region_token_id,
            seg_id=cfg.seg_token_id,
            image_seq_length=cfg.image_seq_length,
        )

    def embed_inputs(
        self,
        input_ids: torch.LongTensor,
        pixel_values: torch.Tensor | None = None,
        instruction_mask: torch.Tensor | None = None,
        region_coords: torch.Tensor | None = None,
        region_coord_labels: torch.Tensor | None = None,
        region_types: torch.Tensor | None = None,
        region_masks: torch.Tensor | None = None,
        patch_features: torch.Tensor | None = None,
        layout: TokenLayout | None = None,
    ) -> torch.Tensor:
        """Token embeddings with image, aligner and region embeddings scattered into their places.

        ``patch_features`` may be passed instead of ``pixel_values`` (a per-image cache);
        ``layout``: the processor's, or None to find the tokens in ``input_ids``.
        """
        cfg = self.config
        if layout is None:
            layout = self.token_layout(input_ids, region_coord_labels)
        layout.check_fits(input_ids.shape)
        embeds = self.get_input_embeddings()(input_ids)
        n_regions = 0 if region_coords is None else region_coords.shape[0]
        check_region_count(layout.region_index.shape[0], n_regions)
        if not layout.image_index.shape[1]:
            if n_regions:
                raise ValueError("regions were given but the inputs hold no <image>")
            return embeds
        if patch_features is None:
            if pixel_values is None:
                raise ValueError("the inputs hold <image> tokens but no pixel_values were given")
            patch_features = self.image_features(pixel_values)
        if patch_features.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"{input_ids.shape[0]} text sample(s) but {patch_features.shape[0]} image(s); one image per sample"
            )
        image_tokens = self.projector(patch_features).to(embeds.dtype)

        region_embeds = None
        owner = layout.region_index[:, 0]
        if n_regions:
            region_embeds = self.prompt_encoder(
                patch_features[:, -cfg.num_patches :],
                owner,
                region_coords,
                region_coord_labels,
                region_types,
                region_masks,
            ).to(embeds.dtype)

        if self.aligner is not None:
            if instruction_mask is None:
                instruction_mask = torch.ones_like(input_ids, dtype=torch.bool)
            special = (input_ids == cfg.image_token_id) | (input_ids == cfg.region_token_id)
            text_mask = instruction_mask.bool() & ~special
            padded_regions, region_keep = _group_rows(region_embeds, layout, embeds)
            aligned = self.aligner(image_tokens, embeds, text_mask, padded_regions, region_keep).to(
                embeds.dtype
            )
            image_tokens = torch.cat([image_tokens, aligned], dim=1)

        samples = torch.arange(input_ids.shape[0], device=embeds.device)[:, None]
        embeds = embeds.index_put((samples.expand_as(layout.image_index), layout.image_index), image_tokens)
        if n_regions:
            embeds = embeds.index_put((owner, layout.region_index[:, 1]), region_embeds)
        return embeds

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: object | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        sam_pixel_values: torch.Tensor | None = None,
        instruction_mask: torch.Tensor | None = None,
        region_coords: torch.Tensor | None = None,
        region_coord_labels: torch.Tensor | None = None,
        region_types: torch.Tensor | None = None,
        region_masks: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        seg_masks: torch.Tensor | None = None,
        layout: TokenLayout | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> MimoOutput:
        """Run the model; with ``labels`` (and ``seg_masks`` for the ``<SEG>`` tokens) compute the loss.

        ``seg_masks`` ``(M, S, S)``: one target per ``<SEG>`` id of the batch, row-major, at SAM's
        input resolution ``S``; requires ``sam_pixel_values``.

        ``layout``: where the special tokens of ``input_ids`` sit (``MimoProcessor.collate``
        passes it; the step then reads nothing back from the device). Without it the model
        finds them in ``input_ids``.
        """
        needs_layout = inputs_embeds is None or seg_masks is not None
        if layout is None and input_ids is not None and needs_layout:
            layout = self.token_layout(input_ids, region_coord_labels)
        if layout is not None and inputs_embeds is not None:
            layout.check_fits(inputs_embeds.shape)
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(
                input_ids,
                pixel_values,
                instruction_mask,
                region_coords,
                region_coord_labels,
                region_types,
                region_masks,
                layout=layout,
            )
        decoder = self.language_model.get_decoder()
        out = decoder(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
        )
        hidden = out.last_hidden_state
        kept = hidden if not logits_to_keep else hidden[:, -logits_to_keep:]
        logits = self.get_output_embeddings()(kept)

        loss = ce = None
        if labels is not None:
            ce = self._text_loss(logits, labels)
            loss = self.config.loss_ce_weight * ce
        mask_logits = bce = dice = iou = None
        if seg_masks is not None and not self._grounding_idle(layout, seg_masks):
            mask_logits, mask_loss, (bce, dice, iou) = self._mask_loss(
                layout, hidden, sam_pixel_values, region_coords, region_coord_labels, seg_masks
            )
            if mask_loss is not None:
                loss = mask_loss if loss is None else loss + mask_loss
        return MimoOutput(
            loss=loss,
            ce_loss=ce,
            bce_loss=bce,
            dice_loss=dice,
            iou_loss=iou,
            logits=logits,
            cache=out.cache if use_cache else None,
            hidden_states=(hidden,) if output_hidden_states else None,
            mask_logits=mask_logits,
        )

    @staticmethod
    def _text_loss(logits: torch.Tensor, labels: torch.LongTensor) -> torch.Tensor:
        """Next-token cross-entropy of the answers (``labels`` -100 elsewhere)."""
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
            labels[:, 1:].reshape(-1).to(logits.device),
            ignore_index=-100,
        )

    def _mask_loss(
        self,
        layout: TokenLayout | None,
        hidden: torch.Tensor,
        sam_pixel_values: torch.Tensor | None,
        region_coords: torch.Tensor | None,
        region_coord_labels: torch.Tensor | None,
        seg_masks: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None, tuple]:
        """``(mask logits per sample, weighted mask loss, (bce, dice, iou))`` of the ``<SEG>``
        tokens against ``seg_masks`` (the loss and its parts None when the batch has no ``<SEG>``)."""
        if layout is None or sam_pixel_values is None:
            raise ValueError("seg_masks need input_ids (to find <SEG>) and sam_pixel_values")
        decoded = self._ground(layout, hidden, sam_pixel_values, None, region_coords, region_coord_labels)
        mask_logits = [logits for logits, _ in decoded]
        flat = torch.cat(mask_logits) if mask_logits else hidden.new_zeros((0,) + seg_masks.shape[1:])
        if flat.shape[0] != seg_masks.shape[0]:
            raise ValueError(
                f"the inputs hold {flat.shape[0]} <SEG> token(s) but {seg_masks.shape[0]} target mask(s) were given"
            )
        if not flat.shape[0]:
            return mask_logits, None, (None, None, None)
        target = seg_masks.to(flat.dtype)
        bce = sigmoid_bce_loss(flat, target)
        dice = dice_loss(flat, target)
        iou = iou_prediction_loss(torch.cat([scores for _, scores in decoded]), flat, target)
        cfg = self.config
        mask_loss = cfg.loss_bce_weight * bce + cfg.loss_dice_weight * dice + cfg.loss_iou_weight * iou
        return mask_logits, mask_loss, (bce, dice, iou)

    # ----------------------------------------------------------------- grounding
    def _grounding_idle(self, layout: TokenLayout | None, seg_masks: torch.Tensor) -> bool:
        """No mask to learn and a frozen ``<SEG>`` head (stage-1 alignment): skip SAM's encoder.
        Decided by the policy, the same on every rank, never by one batch's content alone."""
        if seg_masks.shape[0] or any(p.requires_grad for p in self.seg_head.parameters()):
            return False
        return layout is None or not sum(layout.seg_counts)

    def sam_embeddings(self, sam_pixel_values: torch.Tensor) -> torch.Tensor:
        """SAM image embeddings, computed once per image; pass them back in to reuse them."""
        return sam_image_embeddings(self.sam, sam_pixel_values)

    def predict_masks(
        self,
        input_ids: torch.LongTensor,
        hidden: torch.Tensor,
        sam_pixel_values: torch.Tensor | None = None,
        sam_embeddings: torch.Tensor | None = None,
        region_coords: torch.Tensor | None = None,
        region_coord_labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Mask logits ``(n_b, S, S)`` per sample, one per ``<SEG>`` id of ``input_ids`` (row-major).

        ``region_coords`` / ``region_coord_labels``: the regions of the ``<region>`` ids of
        ``input_ids`` (processor output), given to SAM when ``config.seg_region_prompts``.
        """
        layout = self.token_layout(input_ids, region_coord_labels)
        decoded = self._ground(
            layout, hidden, sam_pixel_values, sam_embeddings, region_coords, region_coord_labels
        )
        return [logits for logits, _ in decoded]

    def _ground(
        self,
        layout: TokenLayout,
        hidden: torch.Tensor,
        sam_pixel_values: torch.Tensor | None,
        sam_embeddings: torch.Tensor | None,
        region_coords: torch.Tensor | None,
        region_coord_labels: torch.Tensor | None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(mask logits, IoU scores)`` per sample for the ``<SEG>`` tokens of ``layout``."""
        if sam_embeddings is None:
            sam_embeddings = self.sam_embeddings(sam_pixel_values)
        regions = self._sample_region_tokens(layout, region_coords, region_coord_labels)
        return self._decode_segs(
            layout.seg_index, layout.seg_counts, hidden, sam_embeddings, regions, sam_pixel_values
        )

    def _sample_region_tokens(
        self,
        layout: TokenLayout,
        region_coords: torch.Tensor | None,
        region_coord_labels: torch.Tensor | None,
    ) -> list[torch.Tensor] | None:
        """SAM prompt tokens of each sample's regions ``(k_b, C)``, or None when not used."""
        if not self.config.seg_region_prompts or region_coords is None or region_coords.shape[0] == 0:
            return None
        check_region_count(layout.region_index.shape[0], region_coords.shape[0])
        tokens = sam_point_tokens(self.sam, region_coords, region_coord_labels)
        return list(tokens.flatten(0, 1)[layout.point_index].split(layout.point_counts))

    def _decode_segs(
        self,
        seg_index: torch.Tensor,
        seg_counts: tuple[int, ...],
        hidden: torch.Tensor,
        sam_embeddings: torch.Tensor,
        region_tokens: list[torch.Tensor] | None = None,
        sam_pixel_values: torch.Tensor | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(mask logits (n_b, S, S), IoU scores (n_b,))`` per sample, from the hidden states at
        the ``<SEG>`` tokens (``seg_index``: sample and position; ``seg_counts``: per sample),
        each beside the sample's region tokens; one batched decoder call per image, then the
        mask refiner (when the config has one; it reads ``sam_pixel_values``)."""
        if self.mask_refiner is not None and sam_pixel_values is None:
            raise ValueError("sam_pixel_values are needed: this model's mask refiner reads the image")
        seg_hidden = hidden[seg_index[:, 0], seg_index[:, 1]].split(seg_counts)
        out = []
        for b, rows in enumerate(seg_hidden):
            prompts = self.seg_head(rows).unsqueeze(1)
            if region_tokens is not None and region_tokens[b].shape[0]:
                extra = region_tokens[b].to(prompts.dtype)
                prompts = torch.cat([prompts, extra.expand(prompts.shape[0], -1, -1)], dim=1)
            logits, iou = decode_masks(
                self.sam, sam_embeddings[b : b + 1], prompts, self.config.sam_image_size
            )
            if self.mask_refiner is not None and logits.shape[0]:
                features = self.mask_refiner.image_features(sam_pixel_values[b : b + 1])
                logits = self.mask_refiner(features, logits)
            out.append((logits, iou))
        return out

    @torch.no_grad()
    def generate_with_masks(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        sam_pixel_values: torch.Tensor | None = None,
        image_sizes: list[tuple[int, int]] | torch.Tensor | None = None,
        instruction_mask: torch.Tensor | None = None,
        region_coords: torch.Tensor | None = None,
        region_coord_labels: torch.Tensor | None = None,
        region_types: torch.Tensor | None = None,
        region_masks: torch.Tensor | None = None,
        patch_features: torch.Tensor | None = None,
        sam_embeddings: torch.Tensor | None = None,
        layout: TokenLayout | None = None,
        mask_threshold: float = MASK_THRESHOLD,
        fast: bool = False,
        compile: bool = False,
        **generate_kwargs,
    ) -> MimoGenerateOutput:
        """Generate answers (KV cache on) and decode one mask per generated ``<SEG>``.

        Inputs are left-padded prompts from the processor. ``patch_features`` / ``sam_embeddings``
        may be given instead of pixels to reuse a per-image cache. Masks come back at each image's
        own size (``image_sizes``: ``(height, width)`` per sample), a pixel set where its mask
        probability exceeds ``mask_threshold`` (MedPLIB-comparable numbers use 0.1).
        ``fast``: greedy decoding with a static KV cache (``compile``: and a compiled decoder
        step), same tokens and masks (see :mod:`mimo.model.fast_decode`); calls that are not
        plain greedy decoding take ``generate``. ``layout``: the processor's for ``input_ids``
        (found in them when None).
        """
        if not 0.0 < mask_threshold < 1.0:
            raise ValueError(f"mask_threshold: expected a probability in (0, 1), got {mask_threshold}")
        if layout is None:
            layout = self.token_layout(input_ids, region_coord_labels)
        embeds = self.embed_inputs(
            input_ids,
            pixel_values,
            instruction_mask,
            region_coords,
            region_coord_labels,
            region_types,
            region_masks,
            patch_features=patch_features,
            layout=layout,
        )
        generate_kwargs.setdefault("do_sample", False)
        generate_kwargs.setdefault("pad_token_id", self.config.pad_token_id)
        if fast and fast_supported(self, generate_kwargs):
            sequences, hidden = FastDecoder.of(self, compile).generate(
                embeds,
                attention_mask,
                generate_kwargs.get("max_new_tokens") or self.generation_config.max_new_tokens or 20,
                generate_kwargs.get("eos_token_id", self.generation_config.eos_token_id),
                generate_kwargs["pad_token_id"],
                self.config.seg_token_id,
                suppress_token_ids=self.input_only_token_ids(),
            )
        else:
            suppress = [*(generate_kwargs.pop("suppress_tokens", None) or []), *self.input_only_token_ids()]
            generate_kwargs["suppress_tokens"] = suppress
            sequences, hidden = self._generate_default(embeds, attention_mask, generate_kwargs)
        if sam_embeddings is None:
            sam_embeddings = self.sam_embeddings(sam_pixel_values)
        masks, scores = [], []
        regions = self._sample_region_tokens(layout, region_coords, region_coord_labels)
        seg_index, seg_counts = token_positions(sequences[:, : hidden.shape[1]], self.config.seg_token_id)
        decoded = self._decode_segs(seg_index, seg_counts, hidden, sam_embeddings, regions, sam_pixel_values)
        for b, (logits, iou) in enumerate(decoded):
            height, width = (int(v) for v in image_sizes[b])
            frame = SquareFrame(height, width, self.config.sam_image_size)
            masks.append(frame.logits_to_image(logits).sigmoid() > mask_threshold)
            scores.append(iou.float())
        return MimoGenerateOutput(sequences=sequences, masks=masks, scores=scores)

    def input_only_token_ids(self) -> list[int]:
        """``<image>`` and ``<region>``: tokens of the input that an answer never holds (the model
        has nothing to put in their place), so generation never picks them."""
        ids = (self.config.image_token_id, self.config.region_token_id)
        return [i for i in ids if i is not None]

    def _generate_default(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor, generate_kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``generate`` with its default cache: the answer ids and each generated token's hidden state."""
        out = self.generate(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            output_hidden_states=True,
            return_dict_in_generate=True,
            use_cache=True,
            **generate_kwargs,
        )
        sequences = out.sequences
        # hidden state of each generated token: it is the input of the following step
        step_hidden = [h[0][:, -1] for h in out.hidden_states[1:]]
        if sequences.shape[1] and (sequences[:, -1] == self.config.seg_token_id).any():
            step_hidden.append(self._last_token_hidden(embeds, attention_mask, sequences))
        hidden = (
            torch.stack(step_hidden, dim=1)
            if step_hidden
            else embeds.new_zeros((embeds.shape[0], 0, embeds.shape[-1]))
        )
        return sequences, hidden[:, : sequences.shape[1]]

    def _last_token_hidden(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor, sequences: torch.Tensor
    ) -> torch.Tensor:
        """Hidden state of the final generated token (never fed back by ``generate``)."""
        full = torch.cat([embeds, self.get_input_embeddings()(sequences)], dim=1)
        mask = torch.cat([attention_mask, torch.ones_like(sequences, dtype=attention_mask.dtype)], dim=1)
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.language_model.get_decoder()(
            inputs_embeds=full, attention_mask=mask, position_ids=position_ids
        )
        return out.last_hidden_state[:, -1]

    # ----------------------------------------------------------------- tokenizer
    def resize_for_tokenizer(self, tokenizer, new_from: int | None = None) -> None:
        """Record the special-token ids of ``tokenizer`` in the config and resize the embeddings.

        Rows of ids ``new_from ..`` (default: the rows the resize adds) start at the mean of the
        rows before them (as LLaVA does for added tokens). ``new_from`` matters where the
        checkpoint's matrix was padded beyond its tokenizer (llava-1.5-hf: 32064 rows, 32002 tokens).
        """
        from mimo.model.tokenizer import special_token_ids

        ids = special_token_ids(tokenizer)
        old = self.get_input_embeddings().weight.shape[0]
        if len(tokenizer) != old:
            self.language_model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        start = min(old, len(tokenizer)) if new_from is None else new_from
        if 0 < start < len(tokenizer):
            with torch.no_grad():
                for emb in (self.get_input_embeddings().weight, self.get_output_embeddings().weight):
                    emb[start:] = emb[:start].mean(0, keepdim=True)
        self.config.text_config.vocab_size = len(tokenizer)
        self.config.image_token_id = ids["image"]
        self.config.region_token_id = ids["region"]
        self.config.seg_token_id = ids["seg"]
        self.config.phrase_start_token_id = ids["phrase_start"]
        self.config.phrase_end_token_id = ids["phrase_end"]
        self.config.pad_token_id = tokenizer.pad_token_id
        self.generation_config.pad_token_id = tokenizer.pad_token_id
        self.generation_config.eos_token_id = tokenizer.eos_token_id
        self.generation_config.bos_token_id = tokenizer.bos_token_id

    @classmethod
    def from_components(
        cls,
        llm: str | None = None,
        vision: str | None = None,
        sam: str | None = None,
        tokenizer=None,
        *,
        llava: str | None = None,
        **config_kwargs,
    ):
        """Assemble from local transformers checkpoints: ``llm`` + ``vision`` + ``sam``, or
        ``llava`` (a ``LlavaForConditionalGeneration`` directory) + ``sam``; returns
        ``(model, tokenizer)`` (see :mod:`mimo.model.components`)."""
        from mimo.model.components import assemble, assemble_llava

        if sam is None:
            raise ValueError("from_components: sam= (a SAM checkpoint directory) is required")
        if llava is not None:
            if llm is not None or vision is not None:
                raise ValueError("from_components: give llava= or llm= and vision=, not both")
            return assemble_llava(cls, llava=llava, sam=sam, tokenizer=tokenizer, **config_kwargs)
        if llm is None or vision is None:
            raise ValueError("from_components: give llm= and vision= (or llava=) beside sam=")
        return assemble(cls, llm=llm, vision=vision, sam=sam, tokenizer=tokenizer, **config_kwargs)


def _check_config(config: MimoConfig) -> None:
    sam = config.sam_config
    embed = sam.vision_config.image_size // sam.vision_config.patch_size
    pe = sam.prompt_encoder_config
    if pe.image_size != sam.vision_config.image_size or pe.image_embedding_size != embed:
        raise ValueError(
            f"sam_config: prompt_encoder_config.image_size={pe.image_size} and image_embedding_size="
            f"{pe.image_embedding_size} must match vision_config.image_size={sam.vision_config.image_size} "
            f"and image_size // patch_size = {embed}"
        )
    if (
        sam.vision_config.output_channels != pe.hidden_size
        or sam.mask_decoder_config.hidden_size != pe.hidden_size
    ):
        raise ValueError(
            "sam_config: vision output_channels, prompt encoder and mask decoder hidden sizes must agree"
        )
    if config.vision_config.image_size % config.vision_config.patch_size:
        raise ValueError("vision_config: image_size must be a multiple of patch_size")
    if config.vision_feature_select_strategy not in ("default", "full"):
        raise ValueError(
            f"vision_feature_select_strategy: expected 'default' or 'full', got {config.vision_feature_select_strategy!r}"
        )


def _init_sam_positional_frequencies(sam: SamModel) -> None:
    """Random Fourier frequencies of SAM's positional encoding at scale 1, as the original SAM
    draws them; transformers draws them at ``hidden_size // 2``, which for a model trained from
    scratch makes every position look like noise. Pretrained weights overwrite this."""
    if sam.shared_image_embedding.positional_embedding.is_meta:
        return
    with torch.no_grad():
        frequencies = torch.randn_like(sam.shared_image_embedding.positional_embedding)
        sam.shared_image_embedding.positional_embedding.copy_(frequencies)
        sam.prompt_encoder.shared_embedding.positional_embedding.copy_(frequencies)


def _group_rows(
    rows: torch.Tensor | None, layout: TokenLayout, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a flat ``(R, D)`` tensor of the regions into ``(B, W, D)`` by sample (the layout's
    slots), with its keep-mask."""
    keep = layout.region_keep
    padded = like.new_zeros((*keep.shape, like.shape[-1]))
    if rows is not None and rows.shape[0]:
        padded = padded.index_put((layout.region_index[:, 0], layout.region_index[:, 2]), rows)
    return padded, keep


__all__ = ["MimoForConditionalGeneration", "MimoPreTrainedModel", "MimoOutput", "MimoGenerateOutput"]
