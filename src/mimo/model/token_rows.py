"""Training only some rows of the LLM's input embedding and output layer: MIMO's own tokens.

A pretrained LLM knows every token but ``<image> <region> <p> </p> <SEG>``. Training the whole
embedding and output matrices for them (LISA's recipe) makes 262M of a 7B model's parameters
trainable, 4.2 GB with their gradients and AdamW moments; training their rows alone costs a few
kB. ``RowTunedEmbedding`` and ``RowTunedLinear`` replace the two layers: the full matrix stays
frozen (``weight``), the tuned rows are a small parameter (``rows``) that the forward pass puts in
their place, with no host synchronisation.

Their state dict is that of the plain layer, with the tuned rows already written into ``weight``:
checkpoints, ``save_pretrained`` and ``from_pretrained`` see an ordinary ``nn.Embedding`` /
``nn.Linear``, and loading such a state dict reads the rows back from it. (Under ZeRO-3, whose
weights are sharded, DeepSpeed checkpoints hold ``weight`` and ``rows`` as they are, and the
final model's gathered state is merged by ``mimo.model.policy.plain_state_dict``.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class _RowTuned:
    """What both layers share: the ``rows`` parameter, its token ids and the id -> slot table."""

    weight: nn.Parameter

    def _tune_rows(self, token_ids: Sequence[int]) -> None:
        vocab = self.weight.shape[0]
        ids = sorted({int(i) for i in token_ids})
        if not ids or ids[0] < 0 or ids[-1] >= vocab:
            raise ValueError(f"token rows {ids}: expected ids in 0..{vocab - 1}")
        device = self.weight.device
        index = torch.tensor(ids, dtype=torch.long, device=device)
        slot = torch.full((vocab,), -1, dtype=torch.long, device=device)
        slot[index] = torch.arange(len(ids), device=device)
        self.register_buffer("token_index", index, persistent=False)
        self.register_buffer("row_slot", slot, persistent=False)
        self.rows = nn.Parameter(self.weight.detach()[index].clone().float())
        self.weight.requires_grad_(False)

    def merged_weight(
        self, weight: torch.Tensor | None = None, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``weight`` with the tuned rows written in (a copy; ``weight`` itself stays frozen).
        ``weight`` and ``rows`` default to the layer's own; a gathered state dict's (ZeRO-3,
        whose layer holds only placeholders) may be given instead."""
        weight = self.weight if weight is None else weight
        rows = self.rows if rows is None else rows
        merged = weight.detach().clone()
        merged[self.token_index.to(merged.device)] = rows.detach().to(merged.dtype)
        return merged

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        if self.weight.numel() == 0 or self.rows.numel() == 0:
            # a ZeRO-3 partition placeholder (the weights live sharded elsewhere): the
            # parameters as they are, as DeepSpeed's own checkpoint expects them
            super()._save_to_state_dict(destination, prefix, keep_vars)
            return
        destination[prefix + "weight"] = self.merged_weight()
        bias = getattr(self, "bias", None)
        if bias is not None:
            destination[prefix + "bias"] = bias if keep_vars else bias.detach()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "weight"
        if key in state_dict and prefix + "rows" not in state_dict:
            state_dict = dict(state_dict)
            state_dict[prefix + "rows"] = state_dict[key][self.token_index.to(state_dict[key].device)].float()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class RowTunedEmbedding(_RowTuned, nn.Embedding):
    """An ``nn.Embedding`` whose ``token_ids`` rows train and the rest stay frozen."""

    def __init__(self, base: nn.Embedding, token_ids: Sequence[int]) -> None:
        nn.Module.__init__(self)
        for name in ("num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type"):
            setattr(self, name, getattr(base, name))
        self.scale_grad_by_freq, self.sparse = base.scale_grad_by_freq, base.sparse
        self.weight = base.weight
        self._tune_rows(token_ids)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = super().forward(input_ids)
        slot = self.row_slot[input_ids]
        tuned = self.rows[slot.clamp(min=0)].to(out.dtype)
        return torch.where((slot >= 0)[..., None], tuned, out)

    def plain(self) -> nn.Embedding:
        """A plain ``nn.Embedding`` holding the merged weight."""
        layer = nn.Embedding(self.num_embeddings, self.embedding_dim, self.padding_idx, device="meta")
        layer.weight = nn.Parameter(self.merged_weight(), requires_grad=False)
        return layer


class RowTunedLinear(_RowTuned, nn.Linear):
    """An output ``nn.Linear`` whose ``token_ids`` rows (output logits) train."""

    def __init__(self, base: nn.Linear, token_ids: Sequence[int]) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self._tune_rows(token_ids)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = F.linear(hidden, self.weight, self.bias)
        rows = self.rows if torch.is_autocast_enabled(hidden.device.type) else self.rows.to(hidden.dtype)
        tuned = F.linear(hidden, rows)
        if self.bias is not None:
            tuned = tuned + self.bias[self.token_index]
        return out.index_copy(-1, self.token_index, tuned.to(out.dtype))

    def plain(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the merged weight."""
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        layer.weight = nn.Parameter(self.merged_weight(), requires_grad=False)
        if self.bias is not None:
            layer.bias = nn.Parameter(self.bias.detach(), requires_grad=False)
        return layer


def tune_token_rows(language_model: nn.Module, token_ids: Sequence[int]) -> None:
    """Replace the LLM's input embedding and output layer by row-tuned ones (in place)."""
    embedding = language_model.get_input_embeddings()
    output = language_model.get_output_embeddings()
    tuned = RowTunedEmbedding(embedding, token_ids)
    language_model.set_input_embeddings(tuned)
    if output is not None:
        tied = output.weight is embedding.weight
        tuned_output = RowTunedLinear(output, token_ids)
        if tied:  # one matrix, so one set of rows
            tuned_output.rows = tuned.rows
        language_model.set_output_embeddings(tuned_output)


def merge_token_rows(language_model: nn.Module) -> None:
    """Put plain layers with the tuned rows written in back in place (before saving a model)."""
    embedding = language_model.get_input_embeddings()
    if isinstance(embedding, RowTunedEmbedding):
        language_model.set_input_embeddings(embedding.plain())
    output = language_model.get_output_embeddings()
    if isinstance(output, RowTunedLinear):
        language_model.set_output_embeddings(output.plain())
