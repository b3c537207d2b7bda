"""``mimo chat`` and ``mimo eval`` with the overfitted tiny model, and user errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from mimo.cli import app
from mimo.core import rle
from mimo.infer.render import PROMPT_COLOR

from .tiny_model import dice, sample_png

runner = CliRunner()


def run(*args: str, input: str | None = None):
    result = runner.invoke(app, [str(a) for a in args], input=input)
    return result, result.output  # click >= 8.2: stdout and stderr together


def test_chat_prints_the_term_and_writes_masks(tiny, records_file, tmp_path):
    sample = tiny["samples"][1]  # "What is in <region>?" -> "It is the <p>disc</p> <SEG>."
    box = ",".join(str(v) for v in sample["regions"][0]["box"])
    out = tmp_path / "chat"
    result, output = run(
        "chat",
        "--model",
        tiny["dir"],
        "--image",
        sample_png(records_file, 1),
        "--box",
        box,
        "--out",
        out,
        "--no-color",
        "What is in?",
    )
    assert result.exit_code == 0, output
    assert "It is the [1]disc." in output
    data = json.loads((out / "answer.json").read_text())
    assert data["answer"] == "It is the <p>disc</p> <SEG>."
    [segment] = data["segments"]
    mask = np.asarray(Image.open(out / segment["mask_file"])) > 0
    assert dice(mask, sample["masks"]["m0"]) > 0.9
    assert np.array_equal(rle.decode(segment["rle"]), mask)
    overlay = Image.open(out / "answer_overlay.png")
    assert overlay.width >= 64 and overlay.height > 64  # the legend strip below the image
    x0, y0 = (int(v) for v in sample["regions"][0]["box"][:2])
    assert tuple(np.asarray(overlay.convert("RGB"))[y0, x0]) == PROMPT_COLOR  # the user's box is drawn


def test_chat_interactive_reads_questions_until_exit(tiny, records_file, tmp_path):
    result, output = run(
        "chat",
        "--model",
        tiny["dir"],
        "--image",
        sample_png(records_file, 0),
        "--out",
        tmp_path,
        "--no-color",
        input="Segment the square.\nexit\nSegment the disc.\n",
    )
    assert result.exit_code == 0, output
    assert "[1]square." in output and "disc" not in output  # nothing read after "exit"
    mask = np.asarray(Image.open(tmp_path / "turn01_mask1_square.png")) > 0
    assert dice(mask, tiny["samples"][0]["masks"]["m0"]) > 0.9


def test_eval_reports_high_miou_and_resumes(tiny, records_file, tmp_path):
    out = tmp_path / "eval"
    args = (
        "eval",
        "--model",
        tiny["dir"],
        "--data",
        records_file,
        "--out",
        out,
        "--baseline",
        "sam-box",
        "--ablation",
        "text-only",
        "--batch-size",
        "4",
    )
    result, output = run(*args)
    assert result.exit_code == 0, output
    report = json.loads((out / "report.json").read_text())
    n = len(tiny["samples"])
    assert report["n_samples"] == n
    assert report["overall"]["miou"] > 0.9
    assert report["overall"]["id_accuracy"] > 0.9
    assert report["by_perspective"]["negative"]["fp_rate"] == 0.0
    comparisons = report["comparisons"]
    n_region = sum(1 for s in tiny["samples"] if s["regions"])
    assert comparisons["sam-box"]["n_samples"] == n_region
    assert comparisons["text-only"]["n_samples"] == n
    assert "Baseline: SAM" in (out / "report.md").read_text()
    assert Image.open(out / "cases.png").width > 0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 2 * n + n_region
    # interrupted: the last record lost and a half-written line left behind
    (out / "predictions.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    result, output = run(*args)
    assert result.exit_code == 0, output
    again = []
    for line in (out / "predictions.jsonl").read_text().splitlines():
        try:
            again.append(json.loads(line))
        except json.JSONDecodeError:
            assert line == lines[-1][:20]  # the cut line is left, and skipped
    expected = [(json.loads(x)["kind"], json.loads(x)["id"]) for x in lines]
    assert sorted((e["kind"], e["id"]) for e in again) == sorted(expected)
    assert json.loads((out / "report.json").read_text())["overall"] == report["overall"]


def _dicom_without_pixels(path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.save_as(path, enforce_file_format=True)


def test_user_errors_exit_2_with_a_clear_message(tiny, records_file, tmp_path):
    png = sample_png(records_file, 0)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    no_pixels = tmp_path / "empty.dcm"
    _dicom_without_pixels(no_pixels)
    (tmp_path / "empty_model").mkdir()
    cases = [
        (["--image", text_file], "not a readable image"),
        (["--image", tmp_path / "missing.png"], "file not found"),
        (["--image", png, "--point", "500,20"], "outside the 64x64 image"),
        (["--image", png, "--box", "1,2,3"], "--box '1,2,3': expected X0,Y0,X1,Y1"),
        (["--image", png, "--box", "9,9,1,1"], "x0 <= x1"),
        (["--image", no_pixels], "without pixel data"),
    ]
    for extra, message in cases:
        result, output = run("chat", "--model", tiny["dir"], *extra, "What is in?")
        assert result.exit_code == 2, (extra, output)
        assert message in output, (extra, output)
        assert "Traceback" not in output
    result, output = run("chat", "--model", tmp_path / "empty_model", "--image", png, "Hi")
    assert result.exit_code == 2 and "missing config.json" in output, output
    result, output = run("eval", "--model", tiny["dir"], "--data", tmp_path / "none.jsonl")
    assert result.exit_code == 2 and "records file not found" in output, output
    result, output = run("segment-volume", "--model", tiny["dir"], png, "Segment the square.")
    assert result.exit_code == 2 and "expected a NIfTI volume" in output, output
