"""Grounding head: ``<SEG>`` hidden states become SAM prompts, SAM's mask decoder makes the masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SamModel


class MaskRefiner(nn.Module):
    """Sharpens SAM's mask logits at the full SAM input resolution from the image itself.

    SAM's decoder predicts at a quarter of its input side (64 x 64 for a 128 px input); the
    logits are upsampled, so a boundary is only as precise as four input pixels. This head
    reads the image at full resolution (a small convolutional stem, run once per image) beside
    each upsampled mask probability and adds a residual to the logits (dilated convolutions,
    receptive field 37 px). Its last layer starts at zero: a model that gains the refiner
    predicts exactly as before until it learns.
    """

    def __init__(self, channels: int, image_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(image_channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        for i, dilation in enumerate((1, 2, 4, 8)):
            layers += [
                nn.Conv2d(channels + (1 if i == 0 else 0), channels, 3, padding=dilation, dilation=dilation)
            ]
            layers += [nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(channels, 1, 3, padding=1)
        self.out.zero_init = True  # the model's weight init zeroes it too (when missing from a checkpoint)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` features of SAM pixels ``(B, 3, S, S)``."""
        return self.stem(pixels.to(self.out.weight.dtype))

    def forward(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Refined logits ``(n, S, S)`` of ``n`` masks' logits ``(n, S, S)`` on one image
        (``features`` of one image, or of each mask's own)."""
        n = logits.shape[0]
        if n == 0:
            return logits
        probs = logits.sigmoid().unsqueeze(1).to(features.dtype)
        x = torch.cat([features.expand(n, -1, -1, -1), probs], dim=1)
        return logits + self.out(self.body(x))[:, 0].to(logits.dtype)


class SegPromptHead(nn.Module):
    """MLP from the LLM's hidden width to SAM's prompt width: one sparse prompt token per ``<SEG>``."""

    def __init__(self, hidden_size: int, intermediate_size: int, prompt_size: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, intermediate_size), nn.ReLU(), nn.Linear(intermediate_size, prompt_size)
        )

    def forward(self, seg_hidden: torch.Tensor) -> torch.Tensor:
        return self.mlp(seg_hidden)


def sam_image_embeddings(sam: SamModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """SAM image embeddings ``(B, C, h, w)``.

    Calls the vision encoder directly (``SamModel.get_image_embeddings`` runs under
    ``torch.no_grad`` and would stop a trainable encoder from learning). Gradients flow only
    when the encoder has trainable parameters.
    """
    trainable = any(p.requires_grad for p in sam.vision_encoder.parameters())
    with torch.set_grad_enabled(trainable and torch.is_grad_enabled()):
        dtype = sam.vision_encoder.get_input_embeddings().projection.weight.dtype
        return sam.vision_encoder(pixel_values.to(dtype)).last_hidden_state


def sam_point_tokens(sam: SamModel, coords: torch.Tensor, coord_labels: torch.Tensor) -> torch.Tensor:
    """SAM sparse prompt tokens of user regions' coordinates, as SAM's prompt encoder embeds
    points and boxes.

    Args:
        coords: ``(R, N, 2)`` in ``[0, 1]`` of the padded square (the processor's frame).
        coord_labels: ``(R, N)``: 0/1 negative/positive point, 2/3 box corners, -1 padding
            (the same codes as SAM's ``point_embed``).

    Returns:
        ``(R, N, C)``: each coordinate's positional encoding plus the learned embedding of its
        role; the padding's rows are to be left out (``TokenLayout.point_index`` lists the rest).
    """
    encoder = sam.prompt_encoder
    size = encoder.input_image_size
    # SAM shifts pixel coordinates to pixel centres before normalising
    normalised = (coords * size + 0.5) / size
    tokens = encoder.shared_embedding(normalised.to(sam.shared_image_embedding.positional_embedding.dtype))
    roles = torch.stack([embed.weight[0] for embed in encoder.point_embed])  # (4, C)
    return tokens + roles[coord_labels.clamp(min=0)]


def decode_masks(
    sam: SamModel, image_embeddings: torch.Tensor, prompts: torch.Tensor, output_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode all prompts of one image in a single batched mask-decoder call.

    Args:
        image_embeddings: ``(1, C, h, w)`` for one image (computed once, reused for every prompt).
        prompts: ``(n, k, C)``: ``n`` masks to make, each from ``k`` sparse prompt tokens.
        output_size: side of the square output (SAM's input resolution).

    Returns:
        mask logits ``(n, output_size, output_size)`` and predicted IoU scores ``(n,)``.
    """
    n = prompts.shape[0]
    if n == 0:
        empty = image_embeddings.new_zeros((0, output_size, output_size))
        return empty, image_embeddings.new_zeros((0,))
    _, channels, height, width = image_embeddings.shape
    dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, height, width)
    low_res, iou = sam.mask_decoder(
        image_embeddings=image_embeddings,
        image_positional_embeddings=sam.get_image_wide_positional_embeddings().to(image_embeddings.dtype),
        sparse_prompt_embeddings=prompts.unsqueeze(0).to(image_embeddings.dtype),
        dense_prompt_embeddings=dense.to(image_embeddings.dtype),
        multimask_output=False,
    )
    logits = F.interpolate(
        low_res[0].float(), size=(output_size, output_size), mode="bilinear", align_corners=False
    )
    return logits[:, 0], iou[0, :, 0]
