"""``mimo plan``: the planner's numbers for the tiny preset equal a direct count of a real model
(parameters per part, weight bytes, gradient bytes after a backward pass, AdamW state bytes
after a step); the paper preset's sizes come from the meta device; bad options exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mimo.cli import app
from mimo.model import MimoForConditionalGeneration
from mimo.model.policy import apply_policy
from mimo.train.config import load_config
from mimo.train.plan import count_parts, make_plan, parse_memory, planned_model_config

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, *overrides: str):
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: out\nmodel:\n  preset: tiny\ndata:\n  train: [a.jsonl]\n")
    return path, load_config(path, list(overrides))


def _real_model(config):
    model_config, _ = planned_model_config(config)
    torch.manual_seed(0)
    model = MimoForConditionalGeneration(model_config)
    apply_policy(model, config.policy)
    return model


def _one_step(model) -> torch.optim.Optimizer:
    """A backward pass touching every trainable parameter, then one AdamW step."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = sum((p.float() ** 2).sum() for p in params)
    loss.backward()
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    optimizer.step()
    return optimizer


@pytest.mark.parametrize("policy", ["finetune", "scratch"])
def test_tiny_plan_equals_a_direct_count(tmp_path, policy):
    _, config = _config(tmp_path, f"policy={policy}")
    plan = make_plan(config, engine="single")
    model = _real_model(config)
    assert [(p.name, p.total, p.trainable) for p in plan.parts] == [
        (p.name, p.total, p.trainable) for p in count_parts(model)
    ]
    assert plan.total == sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert plan.trainable == sum(p.numel() for p in trainable)
    if policy == "finetune":  # LoRA adapters exist and train; the base LLM weights do not
        names = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
        assert names and plan.trainable < plan.total / 2
    assert plan.weights == sum(p.numel() * p.element_size() for p in model.parameters())
    optimizer = _one_step(model)
    assert plan.grads == sum(p.grad.numel() * p.grad.element_size() for p in trainable)
    states = [t for s in optimizer.state.values() for t in s.values() if t.ndim > 0]
    assert plan.optimizer == sum(t.numel() * t.element_size() for t in states)


def test_sharding_divides_what_the_engine_shards(tmp_path):
    _, config = _config(tmp_path, "policy=finetune", "optim.precision=bf16")
    one = make_plan(config, gpus=1, engine="zero2")
    four = make_plan(config, gpus=4, engine="zero2")
    zero3 = make_plan(config, gpus=4, engine="zero3")
    assert four.weights == one.weights  # ZeRO-2 keeps whole weights
    assert four.optimizer == pytest.approx(one.optimizer / 4)
    assert zero3.weights == pytest.approx(one.weights / 4)
    checkpointed = make_plan(
        load_config(None, ["output_dir=o", "data.train=[a]", "optim.gradient_checkpointing=true"])
    )
    plain = make_plan(load_config(None, ["output_dir=o", "data.train=[a]"]))
    assert checkpointed.activations_per_sample < plain.activations_per_sample


def test_paper_plan_prints_the_paper_sizes():
    result = CliRunner().invoke(app, ["plan", str(REPO / "configs/paper.yaml"), "--gpu-memory", "80GB"])
    assert result.exit_code == 0, result.output
    lines = {
        line.split()[0] + (" " + line.split()[1] if line.split()[0] in ("vision", "MIMO") else ""): line
        for line in result.output.splitlines()
        if line.strip()
    }
    assert "6.74B" in lines["LLM"]
    assert "303.51M" in lines["vision tower"]
    assert "641.09M" in lines["SAM"]
    assert "135.94M" in lines["MIMO modules"]
    assert "7.82B" in lines["all"]
    assert "fits" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu-memory", "lots"], "--gpu-memory 'lots': expected a size in GB"),
        (["--engine", "zero9"], "--engine 'zero9': expected one of"),
        (["optim.nope=1"], "optim.nope: unknown key"),
    ],
)
def test_bad_options_exit_2_with_a_message(tmp_path, args, message):
    path, _ = _config(tmp_path)
    result = CliRunner().invoke(app, ["plan", str(path), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["plan", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "config file not found" in missing.output


def test_memory_sizes_parse():
    assert parse_memory("80GB") == parse_memory("80 GiB") == parse_memory("80") == 80 * 1024**3
    with pytest.raises(ValueError):
        parse_memory("-1GB")


def test_component_directories_need_only_their_config_files(tmp_path):
    """model.llm/vision/sam holding config.json and no weights: planned from the configs."""
    from mimo.model.configuration_mimo import MimoConfig
    from mimo.model.presets import tiny_config
    from mimo.model.tokenizer import SPECIAL_TOKENS

    tiny = tiny_config(vocab_size=300)
    for name, sub in (("llm", tiny.text_config), ("vision", tiny.vision_config), ("sam", tiny.sam_config)):
        sub.save_pretrained(tmp_path / name)
        assert [p.name for p in (tmp_path / name).iterdir()] == ["config.json"]
    parts = [f"model.{n}={tmp_path / n}" for n in ("llm", "vision", "sam")]
    _, config = _config(tmp_path, *parts, "policy=finetune")
    plan = make_plan(config)
    assert plan.notes == []
    # what from_components assembles: the components' configs, MIMO's own modules at their defaults
    text = tiny.text_config.to_dict()
    text["vocab_size"] = 300 + len(SPECIAL_TOKENS)
    expected = MimoConfig(
        text_config=text, vision_config=tiny.vision_config.to_dict(), sam_config=tiny.sam_config.to_dict()
    )
    model = MimoForConditionalGeneration(expected)
    apply_policy(model, config.policy)
    assert plan.total == sum(p.numel() for p in model.parameters())
    assert plan.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
