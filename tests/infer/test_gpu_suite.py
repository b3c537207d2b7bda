"""``benchmarks/gpu_suite.py`` runs in CPU mode (tiny preset): every step measured, the JSON
written whole, the fast decoding path giving the default path's tokens, the planner's estimate
beside each training step; a failing step is recorded and the others still run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.py"
QUICK = ["--cpu", "--tokens", "4", "--seq-len", "100", "--steps", "1", "--repeat", "1", "--skip", "deepspeed"]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_mode_measures_every_step(suite, tmp_path):
    out = tmp_path / "suite.json"
    results = suite.main([*QUICK, "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(results, default=str))
    assert results["environment"]["preset"] == "tiny" and results["environment"]["device"] == "cpu"
    for step in ("encoders", "prefill", "decode", "grounded_answer", "train_b2", "train_b8"):
        assert "error" not in results[step], results[step]
    assert results["encoders"]["clip_ms"] > 0 and results["encoders"]["sam_ms"] > 0
    assert results["decode"]["same_tokens"] is True
    assert results["decode"]["fast_tokens_per_s"] > 0 and results["decode"]["default_tokens_per_s"] > 0
    assert results["train_b8"]["tokens"] > results["train_b2"]["tokens"] > 2 * 60
    assert results["train_b8"]["plan"]["estimate_gb"] > results["train_b2"]["plan"]["estimate_gb"] > 0
    assert results["deepspeed"] == {"skipped": "--skip"}


def test_a_failing_step_is_recorded_and_the_rest_run(suite, tmp_path, monkeypatch):
    def broken(self):
        raise RuntimeError("no SAM today")

    monkeypatch.setattr(suite.Suite, "step_encoders", broken)
    skip = ["--skip", "decode", "--skip", "grounded_answer", "--skip", "train_b2", "--skip", "train_b8"]
    results = suite.main([*QUICK, *skip, "--out", str(tmp_path / "s.json")])
    assert results["encoders"]["error"] == "RuntimeError: no SAM today"
    assert "error" not in results["prefill"] and results["prefill"]["prefill_ms"] > 0
