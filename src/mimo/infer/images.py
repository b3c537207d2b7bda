"""Loading what a user points the predictor at: arrays, PNG/JPEG, DICOM files, NIfTI slices,
and whole volumes (NIfTI files or DICOM series folders).

The reading itself, with its rules (8/16-bit, gray/RGB/palette, DICOM windows, NIfTI
orientation, NaN/Inf, size limits), lives in ``mimo.core.images``: images come out exactly
the way the data builder and the training dataset see them. ``Volume.to_original`` undoes
the canonical reorientation and the display transform exactly.

Every failure a user can cause raises ``ImageInputError`` (``mimo.core.images.ImageError``)
naming the file and what was expected.
"""

from __future__ import annotations

from mimo.core.images import (
    NIFTI_SUFFIXES,
    RASTER_SUFFIXES,
    ImageError,
    Volume,
    load_volume,
    parse_window,
    read_image,
)

ImageInputError = ImageError  # the name this package has always raised and caught

__all__ = [
    "NIFTI_SUFFIXES",
    "RASTER_SUFFIXES",
    "ImageInputError",
    "Volume",
    "load_image",
    "load_volume",
    "parse_window",
]


# An image as a uint8 (H, W) or (H, W, 3) array, ready for the predictor: the one reader's entry point.
load_image = read_image
