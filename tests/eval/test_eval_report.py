"""EvaluationReport: groups and numbers on a constructed set, JSON and Markdown writers,
best/worst selection and the PNG grid."""

import json
import math

import numpy as np
import pytest
from eval_helpers import box_mask, make_record
from PIL import Image

from mimo.eval.report import EvaluationReport, grid_case, group_metrics
from mimo.eval.sample import Prediction, score_sample
from mimo.eval.visualize import GridCase, grid_size, render_cases_grid


@pytest.fixture
def report(liver, spleen) -> EvaluationReport:
    half_spleen = box_mask(4, 8, 4, 6)
    samples = [
        (
            make_record("r1", "I", "<p>liver</p> <SEG>", {"m0": liver}),
            Prediction.from_masks("<p>liver</p> <SEG>", [liver]),
        ),
        (
            make_record("r2", "I", "<p>spleen</p> <SEG>", {"m0": spleen}),
            Prediction.from_masks("<p>spleen</p> <SEG>", [half_spleen]),
        ),
        (
            make_record("r3", "II", "It is the <p>liver</p> <SEG>.", {"m0": liver}, modality="MR"),
            Prediction.from_masks("It is the <p>spleen</p> <SEG>.", [liver]),
        ),
        (
            make_record("n1", "negative", "There is no gallbladder.", meta={"structure": "gallbladder"}),
            Prediction.from_masks("The <p>gallbladder</p> <SEG>.", [spleen]),
        ),
        (
            make_record(
                "n2", "negative", "There is no gallbladder.", modality="MR", meta={"structure": "gallbladder"}
            ),
            Prediction("There is no gallbladder."),
        ),
        (make_record("v1", "vqa", "yes", modality="XR"), Prediction("Yes.")),
        (make_record("v2", "vqa", "left kidney", modality="XR"), Prediction("kidney")),
    ]
    return EvaluationReport(score_sample(prediction, record) for record, prediction in samples)


def test_groups(report):
    assert list(report.groups("perspective")) == ["I", "II", "negative", "vqa"]
    assert {k: [r.id for r in v] for k, v in report.groups("modality").items()} == {
        "CT": ["r1", "r2", "n1"],
        "MR": ["r3", "n2"],
        "XR": ["v1", "v2"],
    }
    assert {k: [r.id for r in v] for k, v in report.groups("structure").items()} == {
        "gallbladder": ["n1", "n2"],
        "liver": ["r1", "r3"],
        "spleen": ["r2"],
    }
    with pytest.raises(ValueError, match="group by"):
        report.groups("patient")


def test_numbers_per_group(report):
    summary = report.summary()
    first = summary["by_perspective"]["I"]
    assert first["n_samples"] == 2 and first["n_masks"] == 2
    assert first["miou"] == pytest.approx(0.75)
    assert first["giou"] == pytest.approx(0.75)
    assert first["ciou"] == pytest.approx((16 + 8) / (16 + 16))
    assert first["dice"] == pytest.approx((1 + 2 * 8 / 24) / 2)
    assert first["ap50"] == pytest.approx(0.5)
    assert first["id_accuracy"] == 1.0 and first["id_macro_f1"] == 1.0
    assert first["grounding_recall"] == pytest.approx(0.5)  # IoU 0.5 is not > 0.5
    assert math.isnan(first["fp_rate"]) and math.isnan(first["closed_accuracy"])
    second = summary["by_perspective"]["II"]
    assert second["miou"] == 1.0 and second["id_accuracy"] == 0.0 and second["id_macro_f1"] == 0.0
    assert second["grounding_recall"] == 0.0
    negative = summary["by_perspective"]["negative"]
    assert negative["fp_rate"] == 0.5 and negative["n_masks"] == 0 and math.isnan(negative["miou"])
    vqa = summary["by_perspective"]["vqa"]
    assert vqa["closed_accuracy"] == 1.0 and vqa["open_recall"] == 0.5
    overall = summary["overall"]
    assert overall["n_samples"] == 7
    assert overall["miou"] == pytest.approx(2.5 / 3)
    assert overall["id_accuracy"] == pytest.approx(2 / 3)
    assert overall["grounding_recall"] == pytest.approx(1 / 3)
    assert summary["by_structure"]["liver"]["miou"] == 1.0
    assert summary["by_structure"]["spleen"]["miou"] == pytest.approx(0.5)
    assert summary["by_structure"]["gallbladder"]["fp_rate"] == 0.5
    assert summary["by_modality"]["XR"]["closed_accuracy"] == 1.0
    assert summary["by_modality"]["MR"]["fp_rate"] == 0.0
    assert group_metrics([])["n_samples"] == 0


def test_write_json_and_markdown(report, tmp_path):
    json_path, md_path = report.write(tmp_path / "eval")
    assert (json_path.name, md_path.name) == ("report.json", "report.md")
    data = json.loads(json_path.read_text())
    assert set(data["by_perspective"]) == {"I", "II", "negative", "vqa"}
    assert data["by_perspective"]["I"]["miou"] == pytest.approx(0.75)
    assert data["by_perspective"]["negative"]["miou"] is None  # NaN written as null
    assert [s["id"] for s in data["samples"]] == ["r1", "r2", "r3", "n1", "n2", "v1", "v2"]
    markdown = md_path.read_text()
    assert "## By perspective" in markdown and "## By modality" in markdown and "## By structure" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| perspective"))
    assert header.split(" | ")[1:4] == ["n", "masks", "mIoU"]
    assert (
        "| I | 2 | 2 | 0.7500 | 0.8333 | 0.7500 | 0.7500 | 0.5000 | 1.0000 | 1.0000 | 0.5000 | - |"
        in markdown
    )
    assert "| all | 7 | 3 |" in markdown
    assert "| liver | 2 | 2 | 1.0000 |" in markdown
    structure_header = next(line for line in markdown.splitlines() if line.startswith("| structure"))
    assert "Closed acc" not in structure_header  # no structure group has VQA samples
    assert report.write_json(tmp_path / "only.json", include_samples=False).exists()
    assert "samples" not in json.loads((tmp_path / "only.json").read_text())


def test_best_and_worst(report):
    best, worst = report.best_and_worst(2)
    assert [r.id for r in best] == ["r1", "r3"]
    assert worst[0].id == "r2"


def test_render_cases_grid(report, tmp_path, liver):
    image = np.full((8, 8), 100, dtype=np.uint8)
    cases = [grid_case(r, image, liver, liver) for r in report.best_and_worst(2)[0]]
    cases.append(GridCase(np.zeros((4, 8, 3), np.float32), [liver[:4]], None, "Q?", "A long answer " * 20))
    path = render_cases_grid(cases, tmp_path / "grid" / "cases.png", columns=2, tile_size=64, text_lines=4)
    assert grid_size(3, columns=2, tile_size=64, text_lines=4) == (128, 2 * (64 + 4 * 12 + 8))
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert png.size == (128, 240)
        pixels = np.asarray(png.convert("RGB")).astype(int)
    # Predicted overlay inside the liver (top-left quarter of the tile): red dominates.
    r, g, b = pixels[16, 16]
    assert r > g + 40 and r > b + 40
    # Reference outline at the liver's edge is green.
    assert tuple(pixels[0, 0]) == (0, 230, 64)
    # Outside both masks the gray image shows through.
    assert tuple(pixels[48, 48]) == (100, 100, 100)
    assert cases[0].title.startswith("r1 [I] IoU 1.000")
    with pytest.raises(ValueError, match="at least one case"):
        render_cases_grid([], tmp_path / "none.png")
