"""Interrupt and resume: same steps, same data order, same final weights; atomic checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

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
    assert steps == [1, 2, 3, 3, 4, 5]  # steps 1-3, then 3-5 again after resuming from step 2

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
    assert steps == [1, 2, 2]
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        run(make_config("optim.max_steps=2", out=out), resume=out / "checkpoint-9")
