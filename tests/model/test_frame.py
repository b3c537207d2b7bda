"""``SquareFrame``: image <-> square transforms and their inverses on non-square shapes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from scipy import ndimage

from mimo.model import frame as frame_module
from mimo.model.frame import SquareFrame, pad_to_square, resize

SHAPES = [(37, 211), (300, 90), (1, 500), (500, 1), (64, 64), (3, 2), (173, 256)]
SIZES = [64, 333, 1024]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("height,width", SHAPES)
def test_points_and_boxes_go_to_the_square_and_back_within_half_a_pixel(height, width, size):
    frame = SquareFrame(height, width, size)
    rng = np.random.default_rng(height * 1000 + width)
    xy = rng.random((50, 2)) * [width, height]
    square = frame.points_to_square(xy)
    assert (square >= 0).all() and (square <= size + 1e-9).all()
    assert np.abs(frame.points_to_image(square) - xy).max() < 0.5
    boxes = np.concatenate([xy[:25], xy[25:]], axis=1)
    assert np.abs(frame.boxes_to_image(frame.boxes_to_square(boxes)) - boxes).max() < 0.5
    # the box corners move exactly as points do
    assert np.array_equal(frame.boxes_to_square(boxes)[:, 2:], frame.points_to_square(xy[25:]))
    # tensors keep their dtype, as the SAM prompts need
    assert frame.points_to_square(torch.tensor(xy, dtype=torch.float32)).dtype == torch.float32


@pytest.mark.parametrize("height,width", SHAPES)
def test_the_image_far_corner_lands_on_the_square_edge_of_the_longest_side(height, width):
    frame = SquareFrame(height, width, 333)
    x, y = frame.points_to_square(np.array([width, height], dtype=np.float64))
    longest, other = (x, y) if width >= height else (y, x)
    assert longest == pytest.approx(333, abs=1e-9)
    assert other == pytest.approx(min(height, width) * 333 / max(height, width), abs=1e-9)
    # and the image's rows and columns of the square (where logits are cropped) end there too
    rows, cols = frame.image_extent
    assert abs(cols - x) <= 0.5 + 1e-9 or cols == 1
    assert abs(rows - y) <= 0.5 + 1e-9 or rows == 1
    assert np.allclose(frame.points_to_unit(np.array([width, height])), [x / 333, y / 333])


@pytest.mark.parametrize("size", [64, 333])
@pytest.mark.parametrize("height,width", [(37, 211), (300, 90), (173, 256), (21, 37)])
def test_a_mask_goes_to_the_square_and_its_logits_come_back_on_the_image(height, width, size):
    frame = SquareFrame(height, width, size)
    whole = frame.mask_to_square(np.ones((height, width), bool))
    rows, cols = frame.image_extent
    assert whole[:rows, :cols].all() and not whole[rows:].any() and not whole[:, cols:].any()
    # logits of the whole image come back positive everywhere: no padding is cropped in
    back = frame.logits_to_image(torch.where(whole, 8.0, -8.0)[None])
    assert back.shape == (1, height, width) and bool((back > 0).all())

    mask = np.zeros((height, width), bool)
    mask[height // 4 : height - height // 5, width // 3 : width - 2] = True
    back = frame.logits_to_image(torch.where(frame.mask_to_square(mask), 8.0, -8.0)[None])[0] > 0
    band = int(np.ceil(1 / frame.scale)) + 1  # a square pixel's footprint on the image, and one
    away = ndimage.binary_erosion(mask, iterations=band) | ~ndimage.binary_dilation(mask, iterations=band)
    assert np.array_equal(back.numpy()[away], mask[away])  # only the mask's edge may move
    iou = (back.numpy() & mask).sum() / (back.numpy() | mask).sum()
    assert iou > 0.8


def test_a_one_pixel_tall_image():
    frame = SquareFrame(1, 500, 64)
    assert frame.side == 500 and frame.image_extent == (1, 64)
    image = torch.rand(1, 3, 1, 500)
    for mode, antialias in (("bilinear", True), ("bicubic", True), ("nearest", False)):
        square = frame.image_to_square(image, mode, antialias)
        assert square.shape == (1, 3, 64, 64)
        assert square[..., 0, :].abs().sum() > 0 and not square[..., 2:, :].any()
        expected = resize(pad_to_square(image, 500), 64, mode, antialias)
        assert torch.allclose(square, expected, atol=1e-6)
    logits = torch.zeros(2, 64, 64)
    logits[:, 0] = torch.linspace(-1, 1, 64)
    logits[:, 1:] = -100  # padding: never read back
    back = frame.logits_to_image(logits)
    assert back.shape == (2, 1, 500) and back.min() >= -1 and bool((back[:, 0, -1] > 0.9).all())
    assert np.allclose(frame.points_to_square(np.array([499.5, 0.5])), [499.5 * 0.128, 0.5 * 0.128])


def test_an_empty_stack_of_logits_comes_back_empty():
    assert SquareFrame(5, 7, 16).logits_to_image(torch.zeros(0, 16, 16)).shape == (0, 5, 7)


def test_wrong_shapes_and_sizes_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="SquareFrame: height must be a positive integer, got 0"):
        SquareFrame(0, 5, 64)
    with pytest.raises(ValueError, match="SquareFrame: size must be a positive integer"):
        SquareFrame(5, 5, 64.0)
    frame = SquareFrame(5, 7, 16)
    with pytest.raises(
        ValueError, match=r"pixels: shape \(1, 3, 7, 5\) does not end in the image size \(5, 7\)"
    ):
        frame.image_to_square(torch.zeros(1, 3, 7, 5))
    with pytest.raises(ValueError, match=r"logits: expected \(n, 16, 16\), got \(2, 32, 32\)"):
        frame.logits_to_image(torch.zeros(2, 32, 32))
    with pytest.raises(ValueError, match="resample 'area' is not one of"):
        frame.image_to_square(torch.zeros(1, 3, 5, 7), "area")


def test_a_long_thin_image_is_squared_without_building_the_padded_square():
    """The padded square of a 1 x 16384 image (the longest side ``mimo.core.limits`` admits)
    holds 268 M values, 1 GB as float32; only the rows a kernel reaches are added."""
    script = textwrap.dedent(
        """
        import importlib.util, json, resource, sys, torch
        spec = importlib.util.spec_from_file_location("frame", sys.argv[1])  # not mimo's heavy __init__
        frame = sys.modules["frame"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(frame)
        SquareFrame = frame.SquareFrame
        image = torch.rand(1, 1, 1, 16384)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for mode, antialias in (("bilinear", True), ("bicubic", True), ("nearest", False)):
            square = SquareFrame(1, 16384, 336).image_to_square(image, mode, antialias)
        mask = SquareFrame(16384, 1, 1024).mask_to_square(torch.ones(16384, 1))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"grew_kb": after - before, "shape": list(square.shape), "in": int(mask.sum())}))
        """
    )
    command = [sys.executable, "-c", script, frame_module.__file__]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout)
    assert result["shape"] == [1, 1, 336, 336] and result["in"] == 0  # a 1-pixel column covers under half
    assert result["grew_kb"] < 128 * 1024
