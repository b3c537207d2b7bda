"""The paper's "SAM-h" column: the model's own SAM (image encoder, prompt encoder and mask
decoder) prompted with the record's own box or point, with no language model involved.

A box region is SAM's box prompt; a point region its point prompts (with their labels);
a scribble or mask region is given as its bounding box.
"""

from __future__ import annotations

import numpy as np
import torch

from mimo.core.schema import BoxRegion, MaskRegion, PointRegion, ScribbleRegion
from mimo.model.frame import SquareFrame
from mimo.model.grounding import decode_masks


def region_prompt(region, masks: dict[str, np.ndarray] | None = None) -> dict | None:
    """``{"boxes": [x0, y0, x1, y1]}`` or ``{"points": [[x, y], ...], "labels": [...]}`` in image
    pixels; None for a region SAM cannot take."""
    if isinstance(region, BoxRegion):
        return {"boxes": list(region.box)}
    if isinstance(region, PointRegion):
        return {"points": [list(p) for p in region.points], "labels": list(region.labels)}
    if isinstance(region, ScribbleRegion):
        pts = np.concatenate([np.asarray(s, dtype=float).reshape(-1, 2) for s in region.strokes])
        return {"boxes": [*pts.min(0).tolist(), *pts.max(0).tolist()]}
    if isinstance(region, MaskRegion) and masks and region.mask in masks and masks[region.mask].any():
        ys, xs = np.nonzero(masks[region.mask])
        return {"boxes": [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]}
    return None


@torch.no_grad()
def sam_prompted_mask(
    model, sam_embeddings: torch.Tensor, prompt: dict, image_size: tuple[int, int], sam_size: int
) -> tuple[np.ndarray, float]:
    """One mask (bool, the image's size) and SAM's IoU score for one box/point prompt.

    The prompt moves from image pixels into SAM's square by the processor's frame
    (``SquareFrame``); SAM's mask decoder makes the logits (``decode_masks``), and the frame
    brings them back to the image, a pixel in where its logit is positive (SAM's own rule).
    """
    sam = model.sam
    frame = SquareFrame(*image_size, sam_size)
    device = sam_embeddings.device
    points = labels = boxes = None
    if "boxes" in prompt:
        boxes = frame.boxes_to_square(torch.tensor([[prompt["boxes"]]], dtype=torch.float32, device=device))
    else:
        points = frame.points_to_square(
            torch.tensor([[prompt["points"]]], dtype=torch.float32, device=device)
        )
        labels = torch.tensor([[prompt["labels"]]], dtype=torch.long, device=device)
    sparse, _ = sam.prompt_encoder(
        input_points=points, input_labels=labels, input_boxes=boxes, input_masks=None
    )
    logits, iou = decode_masks(sam, sam_embeddings, sparse[0], sam_size)
    mask = frame.logits_to_image(logits)[0] > 0
    return mask.cpu().numpy(), float(iou[0])
