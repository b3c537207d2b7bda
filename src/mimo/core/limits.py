"""What an image may cost before any pixel is decoded (see ``mimo.core.images``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mimo.core.errors import ImageError


@dataclass(frozen=True)
class ImageLimits:
    """What an image may cost before any pixel is decoded.

    ``max_side``: longest side in pixels; ``max_pixels``: height x width of a 2D image;
    ``max_aspect``: longest side / shortest side of a 2D image (the model sees a square);
    ``max_voxels``: all voxels (or frames x pixels) of a volume.
    """

    max_side: int = 16384
    max_pixels: int = 1 << 25  # 33.5 M, e.g. 5792 x 5792; a mammogram is about 14 M
    max_aspect: float = 16.0
    max_voxels: int = 1 << 29  # 537 M, e.g. 512 x 512 x 2048

    def check_image(self, height: int, width: int, where) -> None:
        """Refuse a 2D image of ``height x width`` beyond the limits."""
        size = f"{width} x {height} pixels"
        if min(height, width) < 1:
            raise ImageError(f"image of {size} is empty", where)
        if max(height, width) > self.max_side:
            raise ImageError(f"image of {size}: a side is longer than the limit of {self.max_side}", where)
        if height * width > self.max_pixels:
            raise ImageError(
                f"image of {size} has {height * width} pixels, more than the limit of {self.max_pixels}",
                where,
            )
        if max(height, width) > self.max_aspect * min(height, width):
            raise ImageError(
                f"image of {size} is too elongated: aspect ratio {max(height, width) / min(height, width):.0f}:1, "
                f"the limit is {self.max_aspect:g}:1",
                where,
            )

    def check_volume(self, shape: Sequence[int], where) -> None:
        """Refuse a volume (or a stack of frames) of ``shape`` beyond the limits."""
        shape = tuple(int(s) for s in shape)
        text = " x ".join(map(str, shape))
        if not shape or min(shape) < 1:
            raise ImageError(f"volume of {text} voxels is empty", where)
        if max(shape[:3]) > self.max_side:
            raise ImageError(
                f"volume of {text} voxels: a side is longer than the limit of {self.max_side}", where
            )
        if math.prod(shape) > self.max_voxels:
            raise ImageError(
                f"volume of {text} has {math.prod(shape)} voxels, more than the limit of {self.max_voxels}",
                where,
            )


LIMITS = ImageLimits()
