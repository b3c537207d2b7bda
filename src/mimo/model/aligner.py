"""The Multi-modal Input Aligner (MIMO's key input module).

K learnable queries attend to the concatenation of (a) the image's projected patch tokens,
(b) the instruction's text embeddings and (c) the visual-prompt embeddings, through a few
pre-norm transformer layers (self-attention among the queries, cross-attention to that memory,
an MLP). The K outputs are inserted into the LLM input right after the image tokens, so the
LLM sees image evidence already selected by the instruction and the drawn regions.
"""

from __future__ import annotations

import torch
from torch import nn

MEMORY_IMAGE, MEMORY_TEXT, MEMORY_REGION = 0, 1, 2


class AlignerLayer(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.self_norm = nn.LayerNorm(hidden_size)
        self.self_attn = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)
        self.cross_norm = nn.LayerNorm(hidden_size)
        self.memory_norm = nn.LayerNorm(hidden_size)
        self.cross_attn = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)
        self.mlp_norm = nn.LayerNorm(hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, 4 * hidden_size), nn.GELU(), nn.Linear(4 * hidden_size, hidden_size)
        )

    def forward(
        self, queries: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor
    ) -> torch.Tensor:
        x = self.self_norm(queries)
        queries = queries + self.self_attn(x, x, x, need_weights=False)[0]
        x = self.cross_norm(queries)
        mem = self.memory_norm(memory)
        queries = (
            queries + self.cross_attn(x, mem, mem, key_padding_mask=memory_padding, need_weights=False)[0]
        )
        return queries + self.mlp(self.mlp_norm(queries))


class MultimodalInputAligner(nn.Module):
    """``K`` queries -> ``(B, K, output_size)`` aligned tokens."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_queries: int,
        num_layers: int,
        num_heads: int,
    ) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, hidden_size) * 0.02)
        self.memory_proj = nn.Linear(input_size, hidden_size)
        self.memory_type = nn.Embedding(3, hidden_size)
        self.layers = nn.ModuleList([AlignerLayer(hidden_size, num_heads) for _ in range(num_layers)])
        self.out_norm = nn.LayerNorm(hidden_size)
        self.out_proj = nn.Linear(hidden_size, output_size)

    def forward(
        self,
        image_tokens: torch.Tensor,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor,
        region_embeds: torch.Tensor,
        region_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Args:
        image_tokens: ``(B, P, D)`` projected patch tokens.
        text_embeds: ``(B, L, D)`` token embeddings; ``text_mask`` ``(B, L)`` True for instruction tokens.
        region_embeds: ``(B, R, D)``, padded per sample; ``region_mask`` ``(B, R)`` True for real regions.
        """
        batch = image_tokens.shape[0]
        kinds = [MEMORY_IMAGE, MEMORY_TEXT, MEMORY_REGION]
        parts = [image_tokens, text_embeds, region_embeds]
        memory = torch.cat(
            [
                self.memory_proj(p.to(self.memory_proj.weight.dtype)) + self.memory_type.weight[k]
                for p, k in zip(parts, kinds, strict=True)
            ],
            dim=1,
        )
        keep = torch.cat(
            [
                torch.ones(image_tokens.shape[:2], dtype=torch.bool, device=memory.device),
                text_mask.bool(),
                region_mask.bool(),
            ],
            dim=1,
        )
        queries = self.queries.unsqueeze(0).expand(batch, -1, -1)
        for layer in self.layers:
            queries = layer(queries, memory, ~keep)
        return self.out_proj(self.out_norm(queries))
