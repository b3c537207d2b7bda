"""The optimizer step does not wait for the device: its losses stay tensors until logging."""

from __future__ import annotations

import sys

import torch

import mimo.train.trainer as trainer_module
from mimo.train.trainer import Trainer

HOST_READS = ("item", "__float__", "__int__", "__bool__", "tolist", "numpy", "cpu")


def test_train_step_reads_nothing_back_from_the_device(make_config, monkeypatch):
    trainer = Trainer(make_config("optim.max_steps=1", "optim.grad_accum=2", "optim.batch_size=1"))
    batches = iter(trainer.train_loader(0))
    reads: list[str] = []

    def spy_on(name: str) -> None:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, **kwargs):
            if sys._getframe(1).f_code.co_filename == trainer_module.__file__:
                reads.append(name)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)

    for name in HOST_READS:
        spy_on(name)
    losses = trainer.train_step(batches)
    monkeypatch.undo()
    assert reads == []
    assert set(losses) >= {"loss", "ce_loss", "bce_loss"}
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in losses.values())
    # the spy sees the trainer's own reads: the logging window's one read per log
    assert trainer._reduce_window({k: [v] for k, v in losses.items()})["loss"] == float(losses["loss"])
