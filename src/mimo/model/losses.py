"""Mask losses of the grounding head: BCE + soft Dice per mask (LISA and its lineage), and SAM's
IoU-prediction loss (MSE against the IoU the mask actually reaches), which makes scores meaningful."""

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


def iou_prediction_loss(scores: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE between SAM's predicted IoU ``(M,)`` and the IoU of the thresholded mask with its target
    (no gradient through the measured IoU), as SAM trains its IoU head."""
    with torch.no_grad():
        pred = logits.flatten(1) > 0
        truth = targets.flatten(1) > 0.5
        union = (pred | truth).sum(1)
        measured = torch.where(
            union > 0, (pred & truth).sum(1) / union.clamp(min=1), torch.ones_like(union)
        ).float()
    return F.mse_loss(scores.float(), measured)
