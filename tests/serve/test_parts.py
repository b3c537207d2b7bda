"""The page's parts without a server: click prompts, rendering, the coloured answer, exports,
opening files, and ``mimo serve`` without a model."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from mimo.infer.images import ImageInputError
from mimo.infer.predictor import Prediction, Segment
from mimo.serve.app import examples_dir
from mimo.serve.exports import write_downloads
from mimo.serve.media import open_media, window_of
from mimo.serve.prompts import Prompts, parse_prompts_json
from mimo.serve.view import answer_html, hex_color, legend_html, render


def test_clicks_make_points_boxes_and_scribbles_in_region_order():
    prompts = Prompts()
    prompts.click("box", 30, 40)
    assert prompts.pending_corner == [30.0, 40.0] and len(prompts) == 0
    prompts.click("box", 10, 5)
    prompts.click("scribble", 1, 1)
    prompts.click("scribble", 2, 3)
    prompts.click("point", 7, 8)  # another tool finishes the scribble
    assert prompts.kwargs() == {
        "points": [[7.0, 8.0]],
        "boxes": [[10.0, 5.0, 30.0, 40.0]],
        "scribbles": [[[1.0, 1.0], [2.0, 3.0]]],
    }
    assert [kind for kind, _ in prompts.region_order()] == ["point", "box", "scribble"]
    assert prompts.describe() == "1 point, 1 box, 1 scribble"
    prompts.undo()
    assert prompts.points == [] and len(prompts) == 2
    prompts.clear()
    assert prompts.describe() == "no prompts"
    with pytest.raises(ImageInputError, match="tool 'lasso'"):
        prompts.click("lasso", 1, 1)


def test_prompts_json():
    assert parse_prompts_json("") == {}
    assert parse_prompts_json('{"boxes": [[1, 2, 3, 4]]}')["boxes"] == [[1, 2, 3, 4]]
    with pytest.raises(ImageInputError, match="unknown key"):
        parse_prompts_json('{"circles": []}')


def _prediction() -> Prediction:
    mask = np.zeros((64, 64), bool)
    mask[10:20, 30:50] = True
    return Prediction(
        "It is the <p>left kidney</p> <SEG> near <p>x</p>.",
        [Segment("left kidney", mask, 0.9)],
        text="It is the left kidney near x.",
    )


def test_answer_html_colours_grounded_phrases_like_their_masks():
    html = answer_html(_prediction().answer)
    assert f"background:{hex_color(0)}" in html and "left kidney<sup>1</sup>" in html
    assert "<em>x</em>" in html and "<SEG>" not in html and "<p>" not in html
    legend = legend_html(_prediction(), visible=[])
    assert "mimo-hidden" in legend and "200 px" in legend
    assert "&lt;script&gt;" in answer_html("<p><script>alert(1)</script></p> <SEG>")


def test_render_enlarges_and_draws_masks_only_where_visible():
    image = np.full((64, 64), 100, np.uint8)
    shown = render(image, _prediction())
    hidden = render(image, _prediction(), visible=[])
    assert shown.shape == (768, 768, 3)
    inside, outside = shown[15 * 12, 40 * 12], shown[50 * 12, 5 * 12]
    assert inside[2] > inside[0] + 30 and tuple(outside) == (100, 100, 100)  # blue-ish fill
    assert np.all(hidden == 100)
    prompts = Prompts()
    prompts.click("point", 5, 50)
    assert (render(image, None, prompts=prompts) != 100).any()


def test_downloads_for_a_volume_slice_go_back_on_the_input_grid(tmp_path):
    media = open_media(examples_dir() / "abdomen_ct_phantom.nii.gz")
    assert media.kind == "nifti" and media.is_ct and media.n_slices == 16
    image = media.image(5, window_of("lung -600/1500"))
    assert not np.array_equal(image, media.image(5, window_of("bone 400/1800")))
    paths = write_downloads(tmp_path, image, _prediction(), "turn01", media.volume(None), 5)
    names = [p.name for p in paths]
    assert names[0] == "turn01.json" and "turn01_labels.nii.gz" in names and "turn01_overlay.png" in names
    data = json.loads(paths[0].read_text())
    assert data["segments"][0]["phrase"] == "left kidney" and data["slice"] == 5
    labels = nib.load(str(tmp_path / "turn01_labels.nii.gz"))
    source = nib.load(str(examples_dir() / "abdomen_ct_phantom.nii.gz"))
    assert labels.shape == source.shape and np.allclose(labels.affine, source.affine)
    assert int(np.asarray(labels.dataobj).sum()) == 200


def test_opening_bad_files_names_the_file(tmp_path):
    bad = tmp_path / "upload-123" / "notes.txt"
    bad.parent.mkdir()
    bad.write_text("hello")
    with pytest.raises(ImageInputError) as info:
        open_media(bad)
    assert str(info.value).startswith("notes.txt: not a readable image") and "upload-123" not in str(
        info.value
    )


def test_serve_without_a_model_says_to_pass_one(monkeypatch, tmp_path):
    from mimo import cli
    from mimo.infer import predictor

    monkeypatch.setattr(predictor, "packaged_model_dir", lambda: tmp_path / "mimo-tiny")
    result = CliRunner().invoke(cli.app, ["serve"])
    assert result.exit_code == 2
    assert "pass --model DIR" in result.output
    result = CliRunner().invoke(cli.app, ["serve", "--model", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "model directory not found" in result.output
