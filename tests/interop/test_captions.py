"""The ``caption`` source: LLaVA-Med's alignment JSON and image-caption tables become stage-1
records; bad samples are named by file and line (or sample) and can be skipped."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mimo.cli import app
from mimo.core.errors import MimoDataError
from mimo.core.records import read_records
from mimo.data.build import BuildConfig, build
from mimo.data.interop.captions import read_captions

runner = CliRunner()


def _image(root, rel):
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 30), 90, np.uint8)).save(root / rel)


def _llava_med(root):
    """LLaVA-Med alignment samples: a PMC figure, a short instruction, the figure's caption."""
    for name in ("PMC1_fig1.jpg", "PMC2_fig3.jpg"):
        _image(root, name)
    samples = [
        {
            "id": "PMC1_fig1",
            "image": "PMC1_fig1.jpg",
            "conversations": [
                {"from": "human", "value": "Describe the image concisely.\n<image>"},
                {"from": "gpt", "value": "Axial CT showing a hypodense lesion in the right hepatic lobe."},
            ],
        },
        {
            "id": "PMC2_fig3",
            "image": "PMC2_fig3.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nProvide a brief description of the given image."},
                {"from": "gpt", "value": "Chest radiograph with bilateral infiltrates."},
            ],
        },
    ]
    (root / "llava_med_alignment_500k.json").write_text(json.dumps(samples, indent=2))


def test_llava_med_alignment_becomes_caption_records(tmp_path):
    _llava_med(tmp_path / "med")
    source = read_captions(tmp_path / "med", tmp_path / "out")
    records = [item.make() for item in source.items]
    assert [r.perspective for r in records] == ["caption", "caption"]
    assert records[0].conversations[0].value == "<image>\nDescribe the image concisely."
    assert records[1].conversations[1].value == "Chest radiograph with bilateral infiltrates."
    assert records[0].meta == {"caption": {"id": "PMC1_fig1"}}
    assert (tmp_path / "out" / records[0].image).is_file()


def test_csv_and_jsonl_tables(tmp_path):
    root = tmp_path / "tables"
    _image(root, "a/1.png")
    _image(root, "b/2.png")
    with (root / "pairs.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "caption", "source"])
        writer.writerow(["a/1.png", "MRI of the knee, sagittal", "x"])
        writer.writerow(["b/2.png", 'An "ultrasound", with a comma', "y"])
    records = [i.make() for i in read_captions(root, None, file="pairs.csv", prompt="What is shown?").items]
    assert [r.conversations[0].value for r in records] == ["<image>\nWhat is shown?"] * 2
    assert records[1].conversations[1].value == 'An "ultrasound", with a comma'
    (root / "pairs.jsonl").write_text(json.dumps({"image": "a/1.png", "caption": "A knee."}) + "\n")
    (record,) = [i.make() for i in read_captions(root, None, file="pairs.jsonl").items]
    assert record.conversations[1].value == "A knee."


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({"image": "PMC1_fig1.jpg"}, r"non-empty 'caption'"),
        ({"image": "../x.jpg", "caption": "c"}, r"escapes the root"),
        ({"image": "nope.jpg", "caption": "c"}, r"file 'nope.jpg' not found"),
        ({"image": "PMC1_fig1.jpg", "caption": "see <SEG>"}, r"reserved token <SEG>"),
        (
            {
                "image": "PMC1_fig1.jpg",
                "conversations": [{"from": "human", "value": "Describe."}, {"from": "gpt", "value": "c"}],
            },
            r"conversations\[0\] must hold exactly one <image>",
        ),
        (
            {"image": "PMC1_fig1.jpg", "conversations": [{"from": "gpt", "value": "<image>"}]},
            r"must list a human turn and the gpt caption",
        ),
    ],
)
def test_bad_samples_are_named(tmp_path, sample, message):
    _llava_med(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps([sample]))
    (item,) = read_captions(tmp_path, None, file="bad.json").items
    with pytest.raises(MimoDataError, match=message):
        item.make()
    assert "bad.json: sample 0" in item.where


def test_a_table_without_the_columns_or_a_choice_of_file_is_refused(tmp_path):
    _llava_med(tmp_path)
    (tmp_path / "t.csv").write_text("path,text\na.png,b\n")
    with pytest.raises(MimoDataError, match=r"'image' and 'caption' columns, got \['path', 'text'\]"):
        read_captions(tmp_path, None, file="t.csv")
    with pytest.raises(MimoDataError, match="expected file=FILE"):
        read_captions(tmp_path, None)  # two candidate files now
    with pytest.raises(MimoDataError, match="prompt="):
        read_captions(tmp_path, None, file="t.csv", prompt="<image> what?")


def test_build_keeps_captions_with_ratios_none_and_skips_bad_ones(tmp_path):
    _llava_med(tmp_path / "med")
    path = tmp_path / "med" / "llava_med_alignment_500k.json"
    samples = json.loads(path.read_text())
    path.write_text(json.dumps([*samples, {"image": "PMC1_fig1.jpg", "conversations": "broken"}]))
    spec = f"caption:{tmp_path / 'med'},file=llava_med_alignment_500k.json"
    result = runner.invoke(
        app, ["data", "build", "--source", spec, "--out", str(tmp_path / "o1"), "--ratios", "none"]
    )
    assert result.exit_code == 2 and "sample 2" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["data", "build", "--source", spec, "--out", str(tmp_path / "o3")])
    assert result.exit_code == 2 and "--ratios none" in result.output and not (tmp_path / "o3").exists()
    report = build([spec], tmp_path / "o2", BuildConfig(ratios=None), on_error="skip", progress=False)
    assert report["splits"]["train"]["by_perspective"] == {"caption": 2}
    assert len(read_records(tmp_path / "o2" / "train.jsonl")) == 2
