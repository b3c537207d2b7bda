"""Overlays: masks in their colours, the user's boxes outlined, small images enlarged, legends whole."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mimo.infer.predictor import Prediction, Segment
from mimo.infer.render import BOX_COLOR, PALETTE, overlay


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
    assert tuple(pixels[70, 35 + 10]) == BOX_COLOR  # top edge of the box, scaled by 7
    inside = pixels[105, 70].astype(int)  # masked, away from the outline: tinted towards the colour
    assert inside[2] > 0 and abs(inside[2] - PALETTE[0][2] // 2) <= 1
    with_legend = overlay(image, prediction, boxes=[[5, 10, 15, 20]], min_side=256)
    label = f"[1] {long_phrase}  score 0.90"
    text_width = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(label, font=ImageFont.load_default())
    assert with_legend.width >= 16 + text_width  # the label is not cut
    assert with_legend.height > big.height
