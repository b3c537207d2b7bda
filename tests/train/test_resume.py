"""Interrupt and resume: same steps, same data order, same final weights; atomic checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from mimo.cli import app
from mimo.model import MimoForConditionalGeneration, MimoProcessor
from mimo.train.checkpoint import latest_checkpoint, list_checkpoints
from mimo.train.trainer import run


class Interrupted(Exception):
    pass


def test_resume_ends_with_the_same_weights(make_config, tmp_path):
    # batch 1 on 4 records: 4 steps per epoch, so resuming at step 2 skips half an epoch.
    # 'finetune' adds LoRA with dropout: the RNG state must be restored too.
    common = (
        "optim.batch_size=1",
        "optim.max_steps=5",
        "save_steps=2",
        "optim.warmup_steps=1",
        "policy=finetune",
    )
    full = run(make_config(*common, out=tmp_path / "full"))

    def stop(trainer, step, logs):
        if step == 3:
            raise Interrupted

    cut_dir = tmp_path / "cut"
    with pytest.raises(Interrupted):
        run(make_config(*common, out=cut_dir), callbacks=[stop])
    assert [p.name for p in list_checkpoints(cut_dir)] == ["checkpoint-2"]
    # a kill while checkpoint-4 was being written leaves a partial .tmp folder: ignored
    partial = cut_dir / "checkpoint-4.tmp"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half a file")
    assert latest_checkpoint(cut_dir).name == "checkpoint-2"

    resumed = run(make_config(*common, out=cut_dir), resume=True)
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not partial.exists()
    assert [p.name for p in list_checkpoints(cut_dir)] == ["checkpoint-4", "checkpoint-5"]

    steps = [json.loads(line)["step"] for line in (cut_dir / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]  # step 3, logged before the kill, is replaced by its rerun

    # the final folder loads as a plain MIMO model (LoRA merged) with its processor
    model = MimoForConditionalGeneration.from_pretrained(resumed)
    processor = MimoProcessor.from_pretrained(resumed)
    assert not any("lora" in k for k in model.state_dict())
    assert processor.tokenizer.convert_tokens_to_ids("<SEG>") == model.config.seg_token_id


def test_resume_from_a_given_checkpoint(make_config, tmp_path):
    out = tmp_path / "run"
    run(make_config("optim.max_steps=2", "save_steps=1", "save_total_limit=5", out=out))
    state = json.loads((out / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["step"] == 1 and state["world_size"] == 1
    # resume from checkpoint-1 explicitly: only step 2 is redone
    run(
        make_config("optim.max_steps=2", "save_steps=1", "save_total_limit=5", out=out),
        resume=out / "checkpoint-1",
    )
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        run(make_config("optim.max_steps=2", out=out), resume=out / "checkpoint-9")


def test_damaged_newest_checkpoints_fall_back_to_the_newest_intact_one(make_config, tmp_path, capsys):
    out = tmp_path / "run"
    common = ("optim.max_steps=4", "save_steps=1", "save_total_limit=4", "data.group_by_length=true")
    run(make_config(*common, out=out))
    assert [p.name for p in list_checkpoints(out)] == [f"checkpoint-{i}" for i in range(1, 5)]
    # a disk that filled up while checkpoint-4 was written: its weights are cut short
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    # a rotation killed halfway through deleting checkpoint-3: trainer_state.json is still there
    files = sorted(
        p for p in (out / "checkpoint-3").rglob("*") if p.is_file() and p.name != "trainer_state.json"
    )
    for path in files[: len(files) // 2]:
        path.unlink()
    # the tail of a log line cut by a kill
    with (out / "log.jsonl").open("a") as fh:
        fh.write('{"loss": 1.0, "st')
    assert latest_checkpoint(out).name == "checkpoint-2"
    capsys.readouterr()

    final = run(make_config(*common, out=out), resume=True)
    said = capsys.readouterr()
    assert "checkpoint-4 is not usable: model.safetensors is" in said.err
    assert "checkpoint-3 is not usable:" in said.err and "missing" in said.err
    assert "resuming from checkpoint-2, the newest intact checkpoint" in said.out
    assert "resumed from" in said.out and "at step 2" in said.out
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # each step once
    state = json.loads((final / "training_info.json").read_text())
    assert state["step"] == 4
    assert [p.name for p in list_checkpoints(out)] == [f"checkpoint-{i}" for i in range(1, 5)]
    assert latest_checkpoint(out).name == "checkpoint-4"  # rewritten whole by the resumed run
    assert not list(out.glob("*.deleting")) and not list(out.glob("*.tmp"))


def test_resuming_a_damaged_checkpoint_by_name_is_refused(make_config, records, tmp_path):
    out = tmp_path / "run"
    run(make_config("optim.max_steps=1", "save_steps=1", out=out))
    optimizer = out / "checkpoint-1" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:-10] + bytes(10))  # same size, other bytes
    with pytest.raises(
        FileNotFoundError, match=r"checkpoint-1: not a complete checkpoint \(optimizer.pt differs"
    ):
        run(make_config("optim.max_steps=2", out=out), resume=out / "checkpoint-1")
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        run(make_config("optim.max_steps=2", out=out), resume=True)
    # on the command line: one line, exit code 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output_dir: {out}\ndata:\n  train: [{records['train']}]\n")
    result = CliRunner().invoke(app, ["train", str(cfg), str(out / "checkpoint-1"), "--resume"])
    assert result.exit_code == 2, result.output
    assert "optimizer.pt differs from what was written" in result.output
    assert "Traceback" not in result.output


def test_rotation_leaves_no_half_deleted_checkpoint(make_config, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    leftover = out / "checkpoint-9.deleting"  # a kill during an earlier rotation
    leftover.mkdir()
    (leftover / "trainer_state.json").write_text('{"step": 9}')
    assert list_checkpoints(out) == []
    run(make_config("optim.max_steps=3", "save_steps=1", "save_total_limit=1", out=out))
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint-3"]
