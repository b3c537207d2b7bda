"""Two real processes (torchrun, gloo on CPU) through ``mimo train --nproc 2``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from safetensors.torch import load_file

from conftest import tiny_overrides


def test_two_process_run_keeps_ranks_identical(records, tmp_path):
    out = tmp_path / "ddp"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output_dir: unused\ndata:\n  train: [unused]\n")
    args = [*tiny_overrides(out, records["train"]), "optim.batch_size=1", "optim.max_steps=2", "save_steps=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mimo.cli", "train", str(cfg), *args, "--nproc", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "final" / "training_info.json").read_text())
    assert info["world_size"] == 2 and info["step"] == 2
    digests = info["rank_weight_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    assert (out / "checkpoint-2" / "rng_state_1.pt").is_file()
    # 2 ranks x batch 1 per step: 4 records are one epoch of 2 steps
    assert state["epoch"] == 1
    assert load_file(out / "final" / "model.safetensors")


def test_sharding_asked_for_without_a_gpu_says_it_runs_ddp(records, tmp_path):
    """accelerate runs FSDP and DeepSpeed on GPUs only; on CPUs the run says so and records DDP."""
    out = tmp_path / "fsdp-on-cpu"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output_dir: unused\ndata:\n  train: [unused]\n")
    args = [*tiny_overrides(out, records["train"]), "optim.batch_size=1", "optim.max_steps=1", "save_steps=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_FSDP": "true"}  # what an FSDP config sets
    cmd = [sys.executable, "-m", "mimo.cli", "train", str(cfg), *args, "--nproc", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("asks for FSDP") == 1  # said once, by the main process
    assert "DDP over gloo" in result.stderr
    info = json.loads((out / "final" / "training_info.json").read_text())
    assert info["world_size"] == 2 and info["distributed_type"] == "MULTI_CPU"
