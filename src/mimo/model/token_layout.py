"""Where a batch's ``<image>``, ``<region>`` and ``<SEG>`` tokens sit, found once on the host.

Finding them in ids that live on a GPU (``nonzero``, boolean indexing, counts read with ``int``)
makes the host wait for the device, several times a training step. ``MimoProcessor.collate``
builds a ``TokenLayout`` from its CPU ids instead; it travels to the device with the batch
(``to``, ``pin_memory``), and the model takes its positions as index tensors and the sizes that
shape its tensors as Python ints, so a training step reads nothing back. Callers that pass no
layout (generation, direct calls) get one built from their ids, read back once (and the
regions' labels, when there are any).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

TENSOR_FIELDS = ("image_index", "region_index", "region_keep", "point_index", "seg_index")


@dataclass
class TokenLayout:
    """Positions of the special tokens of ``B`` samples (row-major, as the model's inputs are).

    ``image_index`` ``(B, L)``: positions of each sample's image tokens (``L = 0``: no image).
    ``region_index`` ``(R, 3)``: sample, position and slot (rank among the sample's regions) of
    each ``<region>``; ``region_keep`` ``(B, W)``: slot ``w`` of sample ``b`` holds a region
    (``W``: the most regions of a sample, at least 1).
    ``point_index`` ``(K,)``: ``r * N + p`` of each valid coordinate (label >= 0) of the regions'
    ``(R, N)`` coordinates; ``point_counts``: how many of them are each sample's.
    ``seg_index`` ``(M, 2)``: sample and position of each ``<SEG>``; ``seg_counts``: per sample.
    ``shape``: ``(B, T)`` of the ids it was found in.
    """

    shape: tuple[int, int]
    image_index: torch.Tensor
    region_index: torch.Tensor
    region_keep: torch.Tensor
    point_index: torch.Tensor
    point_counts: tuple[int, ...]
    seg_index: torch.Tensor
    seg_counts: tuple[int, ...]

    @classmethod
    def of(
        cls,
        input_ids: torch.Tensor,
        coord_labels: torch.Tensor | None,
        *,
        image_id: int,
        region_id: int,
        seg_id: int,
        image_seq_length: int,
    ) -> TokenLayout:
        """The layout of ``input_ids`` ``(B, T)`` and its regions' ``coord_labels`` ``(R, N)``
        (None: no regions), on the ids' device; checks one region per ``<region>`` and the same
        ``image_seq_length`` image tokens in every sample (or none in any)."""
        ids = input_ids.detach().cpu()
        labels = None if coord_labels is None else coord_labels.detach().cpu()
        check_region_count(int((ids == region_id).sum()), 0 if labels is None else labels.shape[0])
        region_index, region_keep = _region_slots(ids, region_id)
        point_index, point_counts = _valid_points(labels, region_index[:, 0], ids.shape[0])
        seg_index, seg_counts = token_positions(ids, seg_id)
        layout = cls(
            shape=tuple(ids.shape),
            image_index=_image_positions(ids, image_id, image_seq_length),
            region_index=region_index,
            region_keep=region_keep,
            point_index=point_index,
            point_counts=point_counts,
            seg_index=seg_index,
            seg_counts=seg_counts,
        )
        return layout.to(input_ids.device)

    def check_fits(self, shape: torch.Size | tuple[int, ...]) -> None:
        """Raise unless the ids (or embeddings) have the ``(B, T)`` this layout was found in: a
        layout of other ids would put tokens in the wrong places."""
        if tuple(shape[:2]) != self.shape:
            raise ValueError(
                f"layout: found in ids of shape {self.shape}, given with inputs of shape "
                f"{tuple(shape[:2])}; pass the layout collate made for these ids, or none"
            )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TokenLayout:
        """The layout's tensors on ``device`` (how the trainer and accelerate move a batch)."""
        moved = {n: getattr(self, n).to(device, non_blocking=non_blocking) for n in TENSOR_FIELDS}
        return dataclasses.replace(self, **moved)

    def pin_memory(self) -> TokenLayout:
        """Pinned copies (a ``DataLoader`` with ``pin_memory`` calls this)."""
        return dataclasses.replace(self, **{n: getattr(self, n).pin_memory() for n in TENSOR_FIELDS})


def check_region_count(n_tokens: int, n_regions: int) -> None:
    if n_tokens != n_regions:
        raise ValueError(f"the inputs hold {n_tokens} <region> token(s) but {n_regions} region(s) were given")


def token_positions(ids: torch.Tensor, token_id: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``(n, 2)`` sample and position of each ``token_id`` in ``ids``, row-major, and the
    per-sample counts (read back when ``ids`` live on a GPU)."""
    slots = ids == token_id
    return slots.nonzero(), tuple(slots.sum(1).tolist())


def _image_positions(ids: torch.Tensor, image_id: int, image_seq_length: int) -> torch.Tensor:
    slots = ids == image_id
    per_sample = slots.sum(1)
    if not slots.any():
        return torch.zeros((ids.shape[0], 0), dtype=torch.long)
    if not bool((per_sample == image_seq_length).all()):
        raise ValueError(
            f"each sample must hold exactly one <image> expanded to {image_seq_length} tokens; "
            f"got {per_sample.tolist()} image tokens per sample"
        )
    return slots.nonzero()[:, 1].reshape(ids.shape[0], image_seq_length)


def _region_slots(ids: torch.Tensor, region_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R, 3)`` sample, position and slot of each ``<region>``, and the ``(B, W)`` keep-mask."""
    index, per_sample = token_positions(ids, region_id)
    counts = torch.tensor(per_sample, dtype=torch.long)
    first = torch.cumsum(counts, 0) - counts  # the row of each sample's first region
    slot = torch.arange(index.shape[0]) - first[index[:, 0]]
    keep = torch.zeros((ids.shape[0], max((1, *per_sample))), dtype=torch.bool)
    keep[index[:, 0], slot] = True
    return torch.cat([index, slot[:, None]], dim=1), keep


def _valid_points(
    labels: torch.Tensor | None, owner: torch.Tensor, batch: int
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Flat indices of the regions' valid coordinates and how many belong to each sample."""
    if labels is None or labels.shape[0] == 0:
        return torch.zeros((0,), dtype=torch.long), (0,) * batch
    valid = labels >= 0
    per_sample = torch.zeros(batch, dtype=torch.long).index_add_(0, owner, valid.sum(1))
    return valid.reshape(-1).nonzero()[:, 0], tuple(per_sample.tolist())
