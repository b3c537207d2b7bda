"""Stage 1 (image-caption alignment, only the projector trains) -> stage 2 (MIMO, starting from
stage 1's projector), on the tiny preset, from caption data in LLaVA's published layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from tests.model.test_llava_start import SMALL, llava_tokenizer, save_llava, save_sam

from mimo.data.build import BuildConfig, build
from mimo.infer.predictor import packaged_model_dir
from mimo.model.policy import TrainingPolicy
from mimo.train.config import load_config
from mimo.train.trainer import Trainer

CAPTIONS = ["a bright disc on a dark field", "two squares side by side", "a ring near the top edge"]


def _caption_folder(root: Path) -> Path:
    """LLaVA's blip_laion_cc_sbu_558k.json layout: zero-padded string ids, images in sub-folders,
    ``<image>`` after the instruction in one sample and before it in another."""
    rng = np.random.default_rng(0)
    samples = []
    for i, caption in enumerate(CAPTIONS * 2):
        rel = f"0045{i % 2}/00453937{i}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(root / rel)
        human = (
            "Render a clear and concise summary of the photo.\n<image>"
            if i % 2
            else "<image>\nWrite a terse but informative summary of the picture."
        )
        samples.append(
            {
                "id": f"00453937{i}",
                "image": rel,
                "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": caption}],
            }
        )
    (root / "blip_laion_cc_sbu_558k.json").write_text(json.dumps(samples))
    return root


def _projector(directory: Path) -> dict[str, torch.Tensor]:
    with safe_open(directory / "model.safetensors", "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys() if k.startswith("projector.")}  # noqa: SIM118


def test_stage_one_trains_only_the_projector_and_stage_two_starts_from_it(tmp_path, records):
    source = _caption_folder(tmp_path / "pretrain")
    report = build(
        [f"caption:{source},file=blip_laion_cc_sbu_558k.json"],
        tmp_path / "stage1",
        BuildConfig(ratios=None),
        progress=False,
    )
    assert report["splits"]["train"]["by_perspective"] == {"caption": 6}
    first = json.loads((tmp_path / "stage1" / "train.jsonl").read_text().splitlines()[0])
    assert first["conversations"][0]["value"].startswith("<image>\n")

    stage1 = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run1'}",
            f"data.train=[{tmp_path / 'stage1' / 'train.jsonl'}]",
            "data.ratios=null",
            "policy=align",
            "model.config_overrides={use_aligner: false}",
            "tokenizer.vocab_size=200",
            "optim.lr=1e-2",
            "optim.batch_size=2",
            "optim.max_steps=2",
        ],
    )
    trainer = Trainer(stage1)
    trains = {name.split(".")[0] for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert trains == {"projector"}
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    final = trainer.train()
    after = _projector(final)
    assert all(not torch.equal(after[k], before[k]) for k in after)  # the projector learned
    assert torch.equal(
        trainer.model.language_model.get_input_embeddings().weight,
        before["language_model.model.embed_tokens.weight"],
    )
    log = [json.loads(line) for line in (tmp_path / "run1" / "log.jsonl").read_text().splitlines()]
    assert "ce_loss" in log[-1] and "bce_loss" not in log[-1]  # no mask loss: SAM never ran

    stage2 = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run2'}",
            f"data.train=[{records['train']}]",
            "data.ratios=null",
            "policy=scratch",
            f"model.projector_from={tmp_path / 'run1'}",
            "tokenizer.vocab_size=200",
            "optim.batch_size=2",
        ],
    )
    start = Trainer(stage2).model
    assert start.aligner is not None
    for key, value in after.items():
        assert torch.equal(start.state_dict()[key], value), key


def test_projector_from_a_different_setup_is_refused(tmp_path, records):
    base = [f"output_dir={tmp_path / 'run'}", f"data.train=[{records['train']}]", "data.ratios=null"]
    config = load_config(None, [*base, f"model.projector_from={tmp_path / 'nowhere'}"])
    with pytest.raises(ValueError, match="neither a run folder with final/ nor a saved MIMO model"):
        Trainer(config)
    config = load_config(
        None,
        [
            *base,
            f"model.projector_from={packaged_model_dir()}",
            "model.config_overrides={vision_feature_layer: -2}",
        ],
    )
    with pytest.raises(ValueError, match="trained with vision_feature_layer=-1, this model uses -2"):
        Trainer(config)


def test_align_policy_and_llava_config_keys():
    policy = TrainingPolicy.preset("align")
    assert (policy.llm, policy.adapters, policy.sam_decoder, policy.token_rows) == (
        "frozen",
        ["projector"],
        False,
        False,
    )
    with pytest.raises(ValueError, match="unknown adapter"):
        TrainingPolicy(adapters=["projector", "decoder"])
    base = ["output_dir=x", "data.train=[a.jsonl]"]
    assert load_config(None, [*base, "model.llava=/m/llava", "model.sam=/m/sam"]).model.llava == "/m/llava"
    with pytest.raises(ValueError, match="model.llava needs model.sam"):
        load_config(None, [*base, "model.llava=/m/llava"])
    with pytest.raises(ValueError, match="give model.llava"):
        load_config(None, [*base, "model.llava=/m/llava", "model.sam=/m/sam", "model.llm=/m/llm"])


def test_training_config_starts_from_a_llava_checkpoint(tmp_path, records):
    llava = save_llava(tmp_path / "llava", llava_tokenizer())
    save_sam(tmp_path / "sam")
    overrides = ", ".join(f"{k}: {v}" for k, v in SMALL.items())
    config = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            f"data.train=[{records['train']}]",
            "data.ratios=null",
            f"model.llava={tmp_path / 'llava'}",
            f"model.sam={tmp_path / 'sam'}",
            f"model.config_overrides={{{overrides}}}",
            "optim.batch_size=2",
            "optim.max_steps=1",
        ],
    )
    trainer = Trainer(config)  # policy finetune: LoRA on LLaVA's q/v
    assert torch.equal(trainer.model.projector.linear_2.bias, llava.model.multi_modal_projector.linear_2.bias)
    assert trainer.processor.settings.vision_resample == "bicubic"
    final = trainer.train()
    assert json.loads((final / "processor_config.json").read_text())["vision_resample"] == "bicubic"
