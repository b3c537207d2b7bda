"""``SquareFrame``: every transform between an image and a model's square input, and back.

The convention, the same for the vision tower, SAM, the region rasters and the masks: an image
of ``height x width`` pixels is padded with zeros at the bottom and the right to a square of
side ``side = max(height, width)`` (the image keeps the top-left corner), and that square is
resized to ``size x size``. One image pixel spans ``scale = size / side`` square pixels.

Coordinates are continuous pixel coordinates, ``x`` (column) then ``y`` (row), with ``(0, 0)``
the top-left corner of the first pixel: pixel ``(row i, column j)`` covers ``[j, j + 1) x
[i, i + 1)``, and the image's far corner ``(width, height)`` lands on the square's far edge
along the image's longest side. Points and boxes are scaled, never rounded; the image's part
of a square (``image_extent``) is rounded to the nearest square pixel, at least one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

RESAMPLE_MODES = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class SquareFrame:
    """An image of ``height x width`` pixels placed in a model's ``size x size`` square input."""

    height: int
    width: int
    size: int

    def __post_init__(self) -> None:
        for name in ("height", "width", "size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SquareFrame: {name} must be a positive integer, got {value!r}")

    @property
    def side(self) -> int:
        """Side of the padded square, in image pixels: the image's longest side."""
        return max(self.height, self.width)

    @property
    def scale(self) -> float:
        """Square pixels per image pixel (``size / side``)."""
        return self.size / self.side

    @property
    def image_extent(self) -> tuple[int, int]:
        """``(rows, columns)`` of the square that hold the image, rounded, at least one each."""
        return max(1, round(self.height * self.scale)), max(1, round(self.width * self.scale))

    # ------------------------------------------------------------------ image -> square
    def image_to_square(
        self, pixels: torch.Tensor, mode: str = "bilinear", antialias: bool = False
    ) -> torch.Tensor:
        """``(N, C, H, W)`` pixels as the ``(N, C, size, size)`` square: the pixels of padding then
        resizing (torch ``interpolate``, ``align_corners=False``; bicubic clamped to the input
        range, as PIL), computed without building the padded square (a 65535 x 1 image would need
        17 GB): resized first with the square's scale, padded after. A sample past the image's
        last row or column reads zeros either way; only the zero rows and columns a kernel can
        reach from the image are added."""
        self._check_shape(pixels, "pixels")
        if mode not in RESAMPLE_MODES:
            raise ValueError(f"processor: resample {mode!r} is not one of nearest, bilinear, bicubic")
        if mode == "nearest":
            return self._nearest_to_square(pixels)
        reach = 4 * math.ceil(self.side / self.size) + 4  # widest kernel: bicubic, antialiased, both sides
        pad = (0, min(reach, self.side - self.width), 0, min(reach, self.side - self.height))
        factor = (self.size / self.side, self.size / self.side)
        resized = resize(F.pad(pixels, pad), factor, mode, antialias)[..., : self.size, : self.size]
        return pad_to_square(resized, self.size)

    def _nearest_to_square(self, pixels: torch.Tensor) -> torch.Tensor:
        """Nearest-neighbour ``image_to_square``: the source index of each square pixel as torch
        computes it (``floor(i * side / size)`` in float32); zero past the image."""
        step = torch.tensor(self.side, dtype=torch.float32) / self.size
        index = torch.floor(torch.arange(self.size, dtype=torch.float32) * step).long()
        index = index.clamp(max=self.side - 1)
        rows, cols = index[index < self.height], index[index < self.width]
        out = pixels.new_zeros((*pixels.shape[:-2], self.size, self.size))
        out[..., : len(rows), : len(cols)] = pixels[..., rows, :][..., cols]
        return out

    def mask_to_square(self, mask: np.ndarray | torch.Tensor) -> torch.Tensor:
        """An ``(H, W)`` mask as a boolean ``(size, size)`` square: bilinear ``image_to_square``
        of the mask as 0/1, a square pixel in where that exceeds one half."""
        square = self.image_to_square(torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None])
        return square[0, 0] > 0.5

    def drawing(self, mask: np.ndarray | None = None) -> Image.Image:
        """A blank 8-bit canvas of the padded square at image resolution (``side x side``), to
        draw regions on in image pixels; ``mask`` (``(H, W)``) fills its top-left part with 255."""
        canvas = np.zeros((self.side, self.side), dtype=np.uint8)
        if mask is not None:
            self._check_shape(mask, "mask")
            canvas[: self.height, : self.width] = np.asarray(mask, dtype=bool) * 255
        return Image.fromarray(canvas)

    def drawing_to_square(self, drawing: Image.Image) -> torch.Tensor:
        """A ``drawing`` as a float ``(size, size)`` square in ``[0, 1]``: PIL's bilinear filter,
        which averages every image pixel a square pixel covers (a thin stroke keeps its area)."""
        resized = drawing.resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(resized, np.float32) / 255)

    # ------------------------------------------------------------------ coordinates
    def points_to_square(self, xy):
        """``(..., 2)`` image pixels ``(x, y)`` (array or tensor, dtype kept) to square pixels."""
        return xy * self.scale

    def boxes_to_square(self, xyxy):
        """``(..., 4)`` boxes ``(x0, y0, x1, y1)`` in image pixels to square pixels."""
        return xyxy * self.scale

    def points_to_image(self, xy):
        """``(..., 2)`` square pixels ``(x, y)`` back to image pixels."""
        return xy / self.scale

    def boxes_to_image(self, xyxy):
        """``(..., 4)`` boxes in square pixels back to image pixels."""
        return xyxy / self.scale

    def points_to_unit(self, xy):
        """``(..., 2)`` image pixels as fractions of the padded square's side: ``[0, 1]`` in every
        square of this image, whatever its ``size`` (the processor's region coordinates)."""
        return xy / self.side

    # ------------------------------------------------------------------ square -> image
    def logits_to_image(self, logits: torch.Tensor) -> torch.Tensor:
        """``(n, size, size)`` mask logits as ``(n, H, W)`` float32 on the image: the square's
        ``image_extent`` cropped and resized bilinearly (``align_corners=False``) to the image."""
        if tuple(logits.shape[-2:]) != (self.size, self.size) or logits.dim() != 3:
            raise ValueError(f"logits: expected (n, {self.size}, {self.size}), got {tuple(logits.shape)}")
        rows, cols = self.image_extent
        cropped = logits[:, :rows, :cols]
        if cropped.shape[0] == 0:
            return cropped.new_zeros((0, self.height, self.width))
        return F.interpolate(
            cropped[:, None].float(), size=(self.height, self.width), mode="bilinear", align_corners=False
        )[:, 0]

    def _check_shape(self, array, name: str) -> None:
        if tuple(array.shape[-2:]) != (self.height, self.width):
            raise ValueError(
                f"{name}: shape {tuple(array.shape)} does not end in the image size ({self.height}, {self.width})"
            )


def pad_to_square(pixels: torch.Tensor, side: int) -> torch.Tensor:
    """``(..., H, W)`` padded with zeros at the bottom and right to ``side x side``."""
    h, w = pixels.shape[-2:]
    return F.pad(pixels, (0, side - w, 0, side - h))


def resize(pixels: torch.Tensor, size: int | tuple[float, float], mode: str, antialias: bool) -> torch.Tensor:
    """``(N, C, H, W)`` resized to ``size x size``, or by the scale factors ``size`` (torch
    ``interpolate``, ``align_corners=False``; bicubic clamped to the input range, as PIL)."""
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"processor: resample {mode!r} is not one of nearest, bilinear, bicubic")
    if isinstance(size, tuple):
        target = {"scale_factor": size, "recompute_scale_factor": False}
    else:
        target = {"size": (size, size)}
    if mode == "nearest":
        return F.interpolate(pixels, mode=mode, **target)
    out = F.interpolate(pixels, mode=mode, align_corners=False, antialias=antialias, **target)
    return out.clamp(0.0, 1.0) if mode == "bicubic" else out
