"""Bad records and configs fail before training starts, naming the record or key (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mimo.cli import app
from mimo.core.errors import MimoDataError
from mimo.train.trainer import Trainer


def rewrite(src: Path, dst: Path, edit) -> Path:
    lines = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    edit(lines)
    dst.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return dst


def test_record_failing_validation(records, make_config):
    bad = rewrite(
        records["train"], records["folder"] / "bad_schema.jsonl", lambda r: r[2].pop("conversations")
    )
    with pytest.raises(MimoDataError, match=r"bad_schema\.jsonl:3 \(record 'train_002'\).*conversations"):
        Trainer(make_config(f"data.train=[{bad}]"))


def test_mask_missing_for_seg(records, make_config):
    def drop(lines):
        lines[1]["conversations"][1]["masks"] = []

    bad = rewrite(records["train"], records["folder"] / "bad_seg.jsonl", drop)
    with pytest.raises(MimoDataError, match=r"bad_seg\.jsonl:2 \(record 'train_001'\).*1 <SEG> but 0 mask"):
        Trainer(make_config(f"data.train=[{bad}]"))


def test_unreadable_and_missing_image(records, make_config):
    folder = records["folder"]
    (folder / "images" / "broken.png").write_bytes(b"not a png at all")

    def breaks(lines):
        lines[0]["image"] = "images/broken.png"
        lines[3]["image"] = "images/nowhere.png"

    bad = rewrite(records["train"], folder / "bad_image.jsonl", breaks)
    with pytest.raises(MimoDataError) as info:
        Trainer(make_config(f"data.train=[{bad}]"))
    text = str(info.value)
    assert "2 bad record(s)" in text
    assert "bad_image.jsonl:1 (record 'train_000'): image file not readable" in text
    assert "bad_image.jsonl:4 (record 'train_003'): image file not found" in text


def test_cli_errors_exit_2_before_training(records, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'out'}\ndata:\n  train: [{records['train']}]\n")
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(cfg), "optim.lrr=1"])
    assert result.exit_code == 2, result.output
    assert "optim.lrr: unknown key" in result.output
    result = runner.invoke(app, ["train", str(cfg), "optim.max_steps=many"])
    assert result.exit_code == 2 and "optim.max_steps" in result.output
    bad = rewrite(records["train"], tmp_path / "b.jsonl", lambda r: r[0].update(image="images/x.png"))
    result = runner.invoke(app, ["train", str(cfg), f"data.train=[{bad}]"])
    assert result.exit_code == 2 and "b.jsonl:1 (record 'train_000')" in result.output
    assert not (tmp_path / "out").exists()


def test_image_placeholder_count_is_the_schemas(records, make_config):
    def twice(lines):
        lines[1]["conversations"][0]["value"] += " <image>"

    bad = rewrite(records["train"], records["folder"] / "two_images.jsonl", twice)
    with pytest.raises(
        MimoDataError, match=r"two_images\.jsonl:2 \(record 'train_001'\).*exactly one <image>"
    ):
        Trainer(make_config(f"data.train=[{bad}]"))
