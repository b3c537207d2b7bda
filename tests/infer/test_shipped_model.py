"""The shipped ``mimo-tiny`` checkpoint: complete, small, and still right on held-out images.

It is trained by ``configs/mimo-tiny.yaml`` (see docs/results.md) and copied into the package by
``scripts/make_assets.py``; a checkpoint that was broken, retrained badly or packaged wrongly
fails here. Thresholds sit below what the shipped model measured on these held-out records
(see ``THRESHOLDS``) by a margin for CPU/thread-count noise.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mimo.infer.evaluate import run_evaluation
from mimo.infer.predictor import Predictor, check_model_dir, packaged_model_dir

HELDOUT = packaged_model_dir().parent / "heldout"

# (perspective, metric, lowest accepted value). Measured on the 96 packaged held-out records with
# the shipped model: mIoU I 0.838, II 0.779, III 0.787, IV 0.770; II identification 0.767;
# 1 of 5 negatives answered with a mask (on the real MNI152 slice).
THRESHOLDS = (
    ("I", "miou", 0.75),
    ("II", "miou", 0.68),
    ("II", "id_accuracy", 0.65),
    ("III", "miou", 0.65),
    ("IV", "miou", 0.6),
)


@pytest.fixture(scope="module")
def heldout_report(tmp_path_factory):
    predictor = Predictor.from_pretrained(packaged_model_dir())
    out = tmp_path_factory.mktemp("shipped-eval")
    return run_evaluation(predictor, HELDOUT / "records.jsonl", out)["summary"]


def test_shipped_checkpoint_is_complete_and_small():
    directory = check_model_dir(packaged_model_dir())
    size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    assert size < 30 * 2**20, f"{size / 2**20:.1f} MB"
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "mimo" and config["seg_region_prompts"] is True
    for name in ("recipe.yaml", "train_config.yaml", "training_info.json"):
        assert (directory / name).is_file(), name
    records = [json.loads(line) for line in (HELDOUT / "records.jsonl").read_text().splitlines()]
    assert records and all((HELDOUT / r["image"]).is_file() for r in records)
    assert all(r["id"].startswith(("mni152_z058-072", "phantom_")) for r in records)


def test_shipped_model_grounds_heldout_questions(heldout_report):
    by_perspective = heldout_report["by_perspective"]
    failures = [
        f"{perspective} {metric} {by_perspective[perspective][metric]:.3f} < {low}"
        for perspective, metric, low in THRESHOLDS
        if not by_perspective[perspective][metric] >= low
    ]
    assert not failures, failures
    negatives = by_perspective.get("negative")
    if negatives is not None:
        assert negatives["fp_rate"] <= 0.25


def test_mimo_demo_runs_on_the_packaged_model(tmp_path):
    from mimo import cli

    result = CliRunner().invoke(cli.app, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "demo" / "report.md").read_text()
    overlays = sorted((tmp_path / "demo").glob("*.png"))
    assert len(overlays) == 6, overlays
    assert report.count("Q: ") == 6 and "Dice" in report
