import json

import numpy as np
from dataset_fixtures import make_nnunet
from PIL import Image
from typer.testing import CliRunner

from mimo.cli import app

runner = CliRunner()


def _build(tmp_path, *extra):
    root = make_nnunet(tmp_path / "Dataset001_Toy")
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "data",
            "build",
            "--source",
            f"nnunet:{root}",
            "--out",
            str(out),
            "--generator",
            "standin_generator:generate",
            "--splits",
            "train=0.5,test=0.5",
            "--ratios",
            "none",
            "--no-progress",
            *extra,
        ],
    )
    return res, out


def test_cli_build_stats_validate_preview(tmp_path):
    res, out = _build(tmp_path)
    assert res.exit_code == 0, res.output
    assert "cases: 2 done" in res.output
    res = runner.invoke(app, ["data", "stats", str(out)])
    assert res.exit_code == 0 and "perspective: I=" in res.output
    res = runner.invoke(app, ["data", "validate", str(out)])
    assert res.exit_code == 0, res.output
    assert "no problems" in res.output
    grid = tmp_path / "grid.png"
    res = runner.invoke(app, ["data", "preview", str(out), "--n", "4", "--out", str(grid), "--split", "test"])
    assert res.exit_code == 0, res.output
    im = np.asarray(Image.open(grid))
    assert im.shape[0] > 256 and im.shape[1] > 256 and im.std() > 0


def test_cli_perspective_options_reach_the_generator(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "data",
            "build",
            "--source",
            "phantom:,n=1,size=48,kinds=chest_xray",
            "--out",
            str(out),
            "--splits",
            "train=1",
            "--ratios",
            "none",
            "--no-progress",
            "--perspective",
            "perspectives=[I]",
            "--perspective",
            "ambiguous_box_iou=null",
        ],
    )
    assert res.exit_code == 0, res.output
    kinds = {json.loads(line)["perspective"] for line in (out / "train.jsonl").read_text().splitlines()}
    assert kinds == {"I"}


def test_cli_validate_finds_problems(tmp_path):
    res, out = _build(tmp_path)
    lines = (out / "train.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["image"] = "images/missing.png"
    lines[0] = json.dumps(rec)
    (out / "train.jsonl").write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["data", "validate", str(out)])
    assert res.exit_code == 1
    assert "image file not found" in res.output and "line 1" in res.output


def test_cli_user_errors_exit_2_without_traceback(tmp_path):
    res = runner.invoke(
        app, ["data", "build", "--source", f"nnunet:{tmp_path}", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert "dataset.json" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["data", "build", "--source", "bogus:/x", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "unknown kind 'bogus'" in res.output
    res, _ = _build(tmp_path, "--on-error", "maybe")
    assert res.exit_code == 2 and "--on-error" in res.output
    res, _ = _build(tmp_path, "--perspective", "bogus=1")
    assert res.exit_code == 2 and "--perspective: bogus" in res.output
    res, _ = _build(tmp_path, "--perspective", "iii_per_slice")
    assert res.exit_code == 2 and "KEY=VALUE" in res.output
    res = runner.invoke(app, ["data", "stats", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a folder" in res.output
    res = runner.invoke(app, ["data", "preview", str(tmp_path)])
    assert res.exit_code == 2 and "records file not found" in res.output
