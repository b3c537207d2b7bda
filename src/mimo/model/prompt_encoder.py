"""Visual prompt encoder: every point, box, scribble or mask prompt becomes one LLM-width embedding.

Each region arrives already normalised by the processor (see ``mimo.model.processing_mimo``):

* ``coords`` ``(R, N, 2)``: coordinates in ``[0, 1]`` (x / width, y / height), padded;
* ``coord_labels`` ``(R, N)``: 1 positive point, 0 negative point, 2 box top-left corner,
  3 box bottom-right corner, -1 padding. Scribbles and masks carry the two corners of their box;
* ``types`` ``(R,)``: 0 point, 1 box, 2 scribble, 3 mask;
* ``masks`` ``(R, H, W)``: the region rasterised on the vision tower's input grid.

Two views are combined. *Where*: Fourier features of the coordinates (random Gaussian
frequencies, as in SAM's prompt encoder) plus a learned embedding of the coordinate's role,
averaged over the region's coordinates, plus a learned type embedding. *What*: the vision
patch features averaged under the rasterised region (mask pooling). An MLP fuses both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NUM_COORD_LABELS = 4  # negative point, positive point, box top-left, box bottom-right
NUM_REGION_TYPES = 4  # point, box, scribble, mask


class FourierFeatures(nn.Module):
    """Random Fourier features of 2D coordinates in ``[0, 1]`` (Tancik et al. 2020; SAM)."""

    def __init__(self, num_frequencies: int, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("frequencies", scale * torch.randn(2, num_frequencies))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        projected = (2 * coords - 1).to(self.frequencies.dtype) @ self.frequencies * (2 * math.pi)
        return torch.cat([projected.sin(), projected.cos()], dim=-1)


class VisualPromptEncoder(nn.Module):
    """Maps regions to embeddings of width ``hidden_size`` that replace ``<region>`` tokens."""

    def __init__(self, vision_hidden_size: int, hidden_size: int, num_frequencies: int = 64) -> None:
        super().__init__()
        self.fourier = FourierFeatures(num_frequencies)
        self.coord_proj = nn.Linear(2 * num_frequencies, hidden_size)
        self.coord_label_embed = nn.Embedding(NUM_COORD_LABELS, hidden_size)
        self.type_embed = nn.Embedding(NUM_REGION_TYPES, hidden_size)
        self.content_proj = nn.Linear(vision_hidden_size, hidden_size)
        self.fuse = nn.Sequential(
            nn.Linear(2 * hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(
        self,
        patch_features: torch.Tensor,
        sample_index: torch.Tensor,
        coords: torch.Tensor,
        coord_labels: torch.Tensor,
        types: torch.Tensor,
        masks: torch.Tensor,
    ) -> torch.Tensor:
        """Embed ``R`` regions.

        Args:
            patch_features: ``(B, P, C)`` vision patch features (CLS dropped), ``P`` a square grid.
            sample_index: ``(R,)`` which image of the batch each region is drawn on.
            coords, coord_labels, types, masks: see the module docstring.

        Returns:
            ``(R, hidden_size)``.
        """
        valid = coord_labels >= 0
        where = self.coord_proj(self.fourier(coords)) + self.coord_label_embed(coord_labels.clamp(min=0))
        where = (where * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        where = where + self.type_embed(types)

        grid = math.isqrt(patch_features.shape[1])
        weights = F.adaptive_avg_pool2d(masks[:, None].to(patch_features.dtype), grid).flatten(1)  # (R, P)
        pooled = torch.einsum("rp,rpc->rc", weights, patch_features[sample_index])
        pooled = pooled / weights.sum(1, keepdim=True).clamp(min=1e-6)
        what = self.content_proj(pooled)
        return self.fuse(torch.cat([where.to(what.dtype), what], dim=-1))
