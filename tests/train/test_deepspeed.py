"""DeepSpeed ZeRO-2 and ZeRO-3 on two CPU processes (gloo), launched as a user launches them:
``accelerate launch --config_file configs/accelerate/zeroN.yaml -m mimo.train``. Each engine
trains uninterrupted, then again killed (SIGKILL to every process) after a sharded checkpoint,
then resumed: the resumed run ends with the uninterrupted run's weights."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from accelerate import DistributedType
from safetensors.torch import load_file
from train_records import write_synthetic

from conftest import tiny_overrides
from mimo.train.config import OptimSection
from mimo.train.dataset import EpochBatches, RecordDataset, epoch_order, same_kind_chunks
from mimo.train.trainer import check_world, fill_deepspeed_config

REPO = Path(__file__).resolve().parents[2]
STEPS = 4
LAUNCH_TIMEOUT = 600


def accelerate_config(tmp_path: Path, stage: int) -> Path:
    """The shipped accelerate config for ZeRO-``stage``, set to 2 processes on this machine."""
    config = yaml.safe_load((REPO / "configs" / "accelerate" / f"zero{stage}.yaml").read_text())
    ds_file = config["deepspeed_config"]["deepspeed_config_file"]
    config["deepspeed_config"]["deepspeed_config_file"] = str(REPO / ds_file)
    config["num_processes"] = 2
    path = tmp_path / f"accelerate-zero{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(acc_config: Path, args: list[str], log: Path, resume: bool = False) -> subprocess.Popen:
    train_config = acc_config.with_name("train.yaml")
    train_config.write_text("output_dir: unused\ndata:\n  train: [unused]\n")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(acc_config)]
    cmd += ["--main_process_port", str(free_port()), "-m", "mimo.train", str(train_config), *args]
    cmd += ["--resume"] if resume else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    with log.open("w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def finish(proc: subprocess.Popen, log: Path) -> None:
    try:
        proc.wait(timeout=LAUNCH_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, log.read_text()[-4000:]


def logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]


def kill_after_step(proc: subprocess.Popen, run_dir: Path, step: int, log: Path) -> None:
    """SIGKILL the launcher and both ranks once ``step`` is logged."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while step not in logged_steps(run_dir):
        assert proc.poll() is None, f"the run ended before step {step}:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, "step {step} was not reached in time"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_world_is_taken_from_the_process_group(monkeypatch):
    """accelerate without the gloo backend reports 1 process on every rank: refused, not trained."""
    acc = SimpleNamespace(num_processes=1, process_index=0, distributed_type=DistributedType.DEEPSPEED)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(RuntimeError, match="reports process 0 of 1, the launcher started process 1 of 2"):
        check_world(acc)
    check_world(SimpleNamespace(num_processes=2, process_index=1, distributed_type=DistributedType.DEEPSPEED))


def test_deepspeed_batch_counts_every_process():
    ds = json.loads((REPO / "configs" / "deepspeed" / "zero3.json").read_text())
    opt = OptimSection(batch_size=3, grad_accum=4, max_grad_norm=None)
    fill_deepspeed_config(ds, opt, 2, SimpleNamespace(text_config=SimpleNamespace(hidden_size=64)))
    assert ds["train_batch_size"] == 3 * 4 * 2
    assert ds["train_micro_batch_size_per_gpu"] == 3 and ds["gradient_accumulation_steps"] == 4
    assert ds["gradient_clipping"] == 0.0
    assert ds["zero_optimization"]["reduce_bucket_size"] == 64 * 64
    assert ds["zero_optimization"]["stage3_param_persistence_threshold"] == 640


def test_zero3_steps_hold_one_kind_of_record_on_every_rank(records):
    """ZeRO-3 gathers a module's shards as it runs: in each step all ranks run the same modules."""
    kinds = RecordDataset([records["train"]], processor=None).module_kinds()
    assert len(set(kinds)) == 2  # with and without a region: the synthetic records alternate
    kinds = kinds * 5 + [(False, False)] * 3  # and VQA records without a mask
    order = epoch_order([None] * len(kinds), None, seed=0, epoch=0)
    batch, world = 2, 2
    arranged = same_kind_chunks(order, kinds, batch * world, seed=0, epoch=0)
    assert set(arranged) == set(order) and len(arranged) % (batch * world) == 0
    assert arranged == same_kind_chunks(order, kinds, batch * world, seed=0, epoch=0)
    shares = [EpochBatches(arranged, batch, rank, world).batches for rank in range(world)]
    for step in zip(*shares, strict=True):
        assert len({kinds[i] for b in step for i in b}) == 1, step


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_kill_and_resume_end_with_the_uninterrupted_weights(stage, tmp_path):
    data = tmp_path / "data"
    records = write_synthetic(data, 8, seed=0, name="all")  # half with a region
    acc = accelerate_config(tmp_path, stage)
    common = ["optim.batch_size=1", "optim.grad_accum=2", f"optim.max_steps={STEPS}", "save_steps=2"]
    # LoRA with dropout (each rank's random state is restored too) and tuned token rows
    common.append("policy=finetune")

    full_dir = tmp_path / "full"
    finish(
        launch(acc, [*tiny_overrides(full_dir, records), *common], tmp_path / "full.log"),
        tmp_path / "full.log",
    )

    cut_dir = tmp_path / "cut"
    args = [*tiny_overrides(cut_dir, records), *common]
    kill_after_step(launch(acc, args, tmp_path / "cut.log"), cut_dir, 3, tmp_path / "cut.log")
    assert (cut_dir / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (cut_dir / "final").exists()
    finish(launch(acc, args, tmp_path / "resume.log", resume=True), tmp_path / "resume.log")

    for run_dir in (full_dir, cut_dir):
        info = json.loads((run_dir / "final" / "training_info.json").read_text())
        assert info["world_size"] == 2 and info["distributed_type"] == "DEEPSPEED", info
        # one main process: every step logged once (two would log each twice)
        assert logged_steps(run_dir) == list(range(1, STEPS + 1))
    state = json.loads((cut_dir / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["sharded"]
    # both ranks wrote their shard of the optimizer state
    shards = list((cut_dir / "checkpoint-2").rglob("*optim_states.pt"))
    assert len(shards) == 2, shards
    assert "resumed from" in (tmp_path / "resume.log").read_text()

    a = load_file(full_dir / "final" / "model.safetensors")
    b = load_file(cut_dir / "final" / "model.safetensors")
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    # the final model is a plain one, LoRA and token rows merged: ZeRO-2 holds whole weights
    # (merged as under DDP), ZeRO-3 gathers them by parameter name (folded into the gathered state)
    assert not any("lora" in key or "base_layer" in key or key.endswith(".rows") for key in a)
    from mimo.model import MimoForConditionalGeneration

    loaded, info = MimoForConditionalGeneration.from_pretrained(cut_dir / "final", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
