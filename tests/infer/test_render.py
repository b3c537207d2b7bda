"""Overlays: masks in their colours, the user's prompts drawn, small images enlarged, legends whole."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mimo.infer.predictor import Prediction, Segment
from mimo.infer.render import PALETTE, PROMPT_COLOR, overlay


def test_overlay_enlarges_small_images_and_outlines_boxes():
    image = np.zeros((40, 30), dtype=np.uint8)
    mask = np.zeros((40, 30), dtype=bool)
    mask[10:20, 5:15] = True
    long_phrase = "right cerebral hemisphere of a rather long name"
    prediction = Prediction(answer="", text="", segments=[Segment(long_phrase, mask, 0.9)])
    plain = overlay(image, prediction, legend=False)
    assert plain.size == (30, 40)
    big = overlay(image, prediction, legend=False, boxes=[[5, 10, 15, 20]], min_side=256)
    assert big.size == (7 * 30, 7 * 40)  # whole-pixel scale: ceil(256 / 40) = 7
    pixels = np.asarray(big)
    assert tuple(pixels[70, 35 + 10]) == PROMPT_COLOR  # top edge of the box, scaled by 7
    inside = pixels[105, 70].astype(int)  # masked, away from the outline: tinted towards the colour
    assert inside[2] > 0 and abs(inside[2] - PALETTE[0][2] // 2) <= 1
    with_legend = overlay(image, prediction, boxes=[[5, 10, 15, 20]], min_side=256)
    label = f"[1] {long_phrase}  score 0.90"
    text_width = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(label, font=ImageFont.load_default())
    assert with_legend.width >= 16 + text_width  # the label is not cut
    assert with_legend.height > big.height


def test_overlay_draws_points_scribbles_and_mask_prompts():
    image = np.full((40, 30), 100, dtype=np.uint8)
    prediction = Prediction(answer="", text="", segments=[])
    region = np.zeros((40, 30), dtype=bool)
    region[20:30, 10:20] = True
    picture = overlay(
        image, prediction, min_side=80, points=[(5, 5)], scribbles=[[[(2, 35), (25, 35)]]], masks=[region]
    )
    pixels = np.asarray(picture)
    scale = 2  # ceil(80 / 40)
    assert picture.size == (30 * scale, 40 * scale)
    assert tuple(pixels[5 * scale + 1, 5 * scale + 1]) == PROMPT_COLOR  # the point's dot
    assert tuple(pixels[35 * scale + 1, 12 * scale]) == PROMPT_COLOR  # along the scribble
    assert tuple(pixels[20 * scale, 15 * scale]) == PROMPT_COLOR  # the mask's top border
    assert tuple(pixels[25 * scale, 15 * scale]) == (100, 100, 100)  # its inside is left as it was
    assert tuple(pixels[10 * scale, 25 * scale]) == (100, 100, 100)  # away from every prompt
