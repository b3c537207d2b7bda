"""``load_in_4bit``: a clear error without CUDA (CLI: exit 2); on a CUDA machine the LLM's decoder
linears become bitsandbytes 4-bit layers, answers come back and QLoRA trains LoRA only."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from mimo.cli import app
from mimo.infer.predictor import Predictor, packaged_model_dir
from mimo.model.quantize import CUDA_ERROR

HELDOUT = packaged_model_dir().parent / "heldout"


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_without_cuda_the_option_says_so(no_cuda, tmp_path):
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        Predictor.from_pretrained(packaged_model_dir(), load_in_4bit=True)
    image = next((HELDOUT / "images").glob("*.png"))
    result = CliRunner().invoke(app, ["chat", "What is this?", "--image", str(image), "--load-in-4bit"])
    assert result.exit_code == 2
    assert CUDA_ERROR in result.output and "Traceback" not in result.output
    from mimo.train.config import load_config
    from mimo.train.trainer import build_model

    config = load_config(None, ["output_dir=o", "data.train=[a]", "model.load_in_4bit=true"])
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        build_model(config, ["a text"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bitsandbytes 4-bit needs a CUDA GPU")
def test_4bit_llm_answers_and_qlora_trains():
    import bitsandbytes as bnb

    from mimo.model.policy import TrainingPolicy, apply_policy

    predictor = Predictor.from_pretrained(
        packaged_model_dir(), device="cuda", load_in_4bit=True, max_new_tokens=16
    )
    quantized = [m for m in predictor.model.language_model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    layers = predictor.model.config.text_config.num_hidden_layers
    assert len(quantized) == 7 * layers  # q k v o gate up down
    image = next((HELDOUT / "images").glob("*.png"))
    assert predictor.predict(str(image), "Please segment the brain in this image.").answer
    model = predictor.model.train()
    apply_policy(model, TrainingPolicy(token_rows=False))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable)
    assert not any("lora_" not in n and n.startswith("language_model") for n in trainable)
    ids = torch.randint(3, 100, (1, 12), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
    loss.backward()
    lora = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert all(p.grad is not None for p in lora)
