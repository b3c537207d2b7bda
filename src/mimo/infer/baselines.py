"""The paper's "SAM-h" column: the model's own SAM (image encoder, prompt encoder and mask
decoder) prompted with the record's own box or point, with no language model involved.

A box region is SAM's box prompt; a point region its point prompts (with their labels);
a scribble or mask region is given as its bounding box.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mimo.core.schema import BoxRegion, MaskRegion, PointRegion, ScribbleRegion


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

    Coordinates follow the processor's frame: the image padded bottom/right to a square of
    side ``max(H, W)`` and resized to ``sam_size``.
    """
    sam = model.sam
    height, width = image_size
    scale = sam_size / max(height, width)
    device = sam_embeddings.device
    dtype = sam_embeddings.dtype
    points = labels = boxes = None
    if "boxes" in prompt:
        boxes = torch.tensor([[prompt["boxes"]]], dtype=torch.float32, device=device) * scale
    else:
        points = torch.tensor([[prompt["points"]]], dtype=torch.float32, device=device) * scale
        labels = torch.tensor([[prompt["labels"]]], dtype=torch.long, device=device)
    sparse, dense = sam.prompt_encoder(
        input_points=points, input_labels=labels, input_boxes=boxes, input_masks=None
    )
    low_res, iou = sam.mask_decoder(
        image_embeddings=sam_embeddings,
        image_positional_embeddings=sam.get_image_wide_positional_embeddings().to(dtype),
        sparse_prompt_embeddings=sparse.to(dtype),
        dense_prompt_embeddings=dense.to(dtype),
        multimask_output=False,
    )
    logits = F.interpolate(
        low_res[0].float(), size=(sam_size, sam_size), mode="bilinear", align_corners=False
    )
    crop_h, crop_w = max(1, round(height * scale)), max(1, round(width * scale))
    logits = logits[:, :, :crop_h, :crop_w]
    mask = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)[0, 0] > 0
    return mask.cpu().numpy(), float(iou.reshape(-1)[0])
