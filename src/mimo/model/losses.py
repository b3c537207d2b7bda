"""Mask losses of the grounding head (as in LISA and its lineage: BCE + soft Dice, per mask)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over pixels, averaged over masks. Shapes ``(M, H, W)``."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).mean(1).mean()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2|P*T| + eps) / (|P| + |T| + eps)``, averaged over masks."""
    probs = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    numerator = 2 * (probs * targets).sum(1) + eps
    denominator = probs.sum(1) + targets.sum(1) + eps
    return (1 - numerator / denominator).mean()
