"""bf16 training stores the frozen backbone in bf16 (half its memory) and still learns."""

from __future__ import annotations

import pytest
import torch
from accelerate.state import AcceleratorState
from train_records import read_log

from mimo import Predictor
from mimo.train.plan import state_bytes
from mimo.train.trainer import Trainer


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one process-wide state, whose mixed precision cannot change: this test's
    bf16 must not leak into the fp32 runs that share its test process."""
    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


@pytest.mark.usefixtures("fresh_accelerator_state")
def test_bf16_run_keeps_frozen_weights_in_bf16_and_learns(make_config, records, tmp_path):
    out = tmp_path / "run"
    config = make_config(
        "policy=finetune", "optim.precision=bf16", "optim.max_steps=30", "optim.lr=3e-3",
        "optim.lr_schedule=constant", "optim.batch_size=4", "log_steps=5", out=out,
    )  # fmt: skip
    trainer = Trainer(config)
    params = dict(trainer.model.named_parameters())
    frozen = {n for n, p in params.items() if not p.requires_grad}
    assert frozen and all(params[n].dtype == torch.bfloat16 for n in frozen)
    assert all(p.dtype == torch.float32 for p in params.values() if p.requires_grad)
    # the planner counts what the trainer holds: 2 bytes a frozen weight, 4 a trained one
    held = sum(p.numel() * p.element_size() for p in params.values())
    assert state_bytes(trainer.model, "single", 1, "bf16")["weights"] == held
    trainer.train()
    train, _ = read_log(out)
    assert train[-1]["loss"] < 0.8 * train[0]["loss"], (train[0], train[-1])
    # the saved model loads and answers as any other
    predictor = Predictor.from_pretrained(out / "final")
    image = torch.rand(40, 50).numpy()
    prediction = predictor.predict(image, "Segment the lesion.")
    assert isinstance(prediction.answer, str)
