"""The training config: YAML + overrides, clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mimo.train.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_and_dotted_overrides(tmp_path):
    path = write(
        tmp_path,
        "output_dir: out\ndata:\n  train: [a.jsonl]\n  ratios: {I: 1, II: 2, III: 2, IV: 1, vqa: 1}\npolicy: finetune\n",
    )
    cfg = load_config(
        path, ["optim.lr=3e-4", "optim.precision=bf16", "policy.lora_r=16", "data.ratios.vqa=0"]
    )
    assert cfg.optim.lr == 3e-4 and cfg.optim.precision == "bf16"
    assert cfg.policy.llm == "lora" and cfg.policy.lora_r == 16
    assert cfg.data.ratios == {"I": 1, "II": 2, "III": 2, "IV": 1, "vqa": 0}
    scratch = load_config(path, ["policy=scratch"]).policy
    assert scratch.llm == "full" and scratch.vision_tower and scratch.sam_encoder


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, "output_dir: out\ndata:\n  train: [a.jsonl]\noptim:\n  learning_rate: 1\n")
    with pytest.raises(ConfigError, match=r"optim\.learning_rate: unknown key"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"data\.trian: unknown key"):
        load_config(write(tmp_path, "output_dir: out\ndata:\n  train: [a]\n"), ["data.trian=[b]"])


def test_wrong_type_is_named(tmp_path):
    path = write(tmp_path, "output_dir: out\ndata:\n  train: [a.jsonl]\n")
    with pytest.raises(ConfigError, match=r"optim\.batch_size: .*'two'"):
        load_config(path, ["optim.batch_size=two"])
    with pytest.raises(ConfigError, match=r"optim\.precision"):
        load_config(path, ["optim.precision=fp8"])
    with pytest.raises(ConfigError, match=r"data: required key is missing"):
        load_config(None, ["output_dir=x"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(path, ["optim.lr"])
    with pytest.raises(ConfigError, match=r"optim\.lr\.x': optim\.lr is a int, not a section"):
        load_config(path, ["optim.lr=1", "optim.lr.x=2"])


@pytest.mark.parametrize("name", ["tiny.yaml", "paper.yaml", "paper-stage1.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.data.train


def test_loss_weights_keep_the_models_own_unless_set(tmp_path):
    import json
    import shutil

    from mimo.train.trainer import build_model

    model_dir = tmp_path / "model"
    shutil.copytree(REPO / "src" / "mimo" / "assets" / "mimo-tiny", model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "loss_bce_weight": 3.0}))
    path = write(tmp_path, f"output_dir: out\ndata:\n  train: [a.jsonl]\nmodel:\n  path: {model_dir}\n")
    kept, _ = build_model(load_config(path), [])
    assert (kept.config.loss_bce_weight, kept.config.loss_dice_weight) == (3.0, config["loss_dice_weight"])
    set_, _ = build_model(load_config(path, ["model.loss_dice_weight=0.25"]), [])
    assert (set_.config.loss_bce_weight, set_.config.loss_dice_weight) == (3.0, 0.25)


def test_config_overrides_add_a_mask_refiner_to_a_saved_model(tmp_path, tiny_model_dir):
    """``model.config_overrides`` with ``model.path``: the saved weights load unchanged and the
    new refiner starts at zero (it adds nothing until trained)."""
    import torch

    from mimo.train.trainer import build_model

    path = write(tmp_path, f"output_dir: out\ndata:\n  train: [a.jsonl]\nmodel:\n  path: {tiny_model_dir}\n")
    plain, _ = build_model(load_config(path), [])
    refined, _ = build_model(load_config(path, ["model.config_overrides.mask_refiner_channels=8"]), [])
    assert plain.mask_refiner is None and refined.config.mask_refiner_channels == 8
    saved = plain.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in refined.state_dict().items() if k in saved)
    assert float(refined.mask_refiner.out.weight.abs().sum()) == 0
