"""The training forward never makes the host wait for the device.

On CUDA every read of a device value (``.item()``, ``bool(t)``, ``.tolist()``), every operation
whose output size depends on the data (``nonzero``, boolean-mask indexing, ``bincount``) and the
backward of ``masked_scatter`` (a ``masked_select``) stalls the step. There is no
``torch.cuda.set_sync_debug_mode`` on the CPU, so these tests spy on those calls when they come
from the model's own modules (``src/mimo/model``) during one training forward and backward of a
collated batch with regions and ``<SEG>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mimo.model
from mimo.model.synthetic import grounding_samples, multi_and_negative_samples, shape_image
from tests.model.conftest import batch_of, build_tiny

MODEL_DIR = str(Path(mimo.model.__file__).parent)
HOST_READS = ("item", "__bool__", "__int__", "__float__", "tolist", "numpy", "nonzero", "cpu")
SIZE_FROM_DATA = ("masked_select", "masked_scatter", "unique")  # the backward of masked_scatter selects
TORCH_SIZE_FROM_DATA = ("nonzero", "bincount", "unique", "masked_select", "argwhere")


def two_region_sample() -> dict:
    """Three points and a box in one question, two ``<SEG>`` in its answer."""
    image, masks = shape_image(np.random.default_rng(5), 64)
    return {
        "image": image,
        "conversations": [
            {"from": "human", "value": "<image>\nCompare <region> with <region>."},
            {"from": "gpt", "value": "<p>square</p> <SEG> beside <p>disc</p> <SEG>.", "masks": ["a", "b"]},
        ],
        "regions": [
            {"type": "point", "points": [[10, 12], [30, 40], [50, 5]], "labels": [1, 0, 1]},
            {"type": "box", "box": [3, 4, 20, 30]},
        ],
        "masks": {"a": masks["square"], "b": masks["disc"]},
    }


@pytest.fixture(scope="module")
def mixed():
    """Samples with and without regions, with one, two and no ``<SEG>``, in one batch."""
    samples = grounding_samples(2) + multi_and_negative_samples() + [two_region_sample()]
    model, processor = build_tiny(samples, seed=4)
    batch = batch_of(processor, samples)
    batch.pop("image_size")
    return model, batch


def _model_caller(depth: int = 2) -> str | None:
    """``file:line`` of the call ``depth`` frames up when it is in the model's modules."""
    frame = sys._getframe(depth)
    if not frame.f_code.co_filename.startswith(MODEL_DIR):
        return None
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"


def spy_on_syncs(monkeypatch) -> list[str]:
    """Record every host-synchronising call made from ``mimo/model/*.py``."""
    calls: list[str] = []

    def wrap(owner, name: str, when=lambda *args: True) -> None:
        original = getattr(owner, name)

        def spy(*args, **kwargs):
            where = _model_caller()
            if where and when(*args):
                calls.append(f"{name} at {where}")
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)

    for name in HOST_READS + SIZE_FROM_DATA:
        wrap(torch.Tensor, name)
    for name in TORCH_SIZE_FROM_DATA:
        wrap(torch, name)
    wrap(torch.Tensor, "__getitem__", lambda _self, index: _has_bool_tensor(index))
    return calls


def _has_bool_tensor(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


def test_training_forward_and_backward_make_no_host_synchronisation(mixed, monkeypatch):
    model, batch = mixed
    model.train()
    calls = spy_on_syncs(monkeypatch)
    out = model(**batch)
    out.loss.backward()
    monkeypatch.undo()
    assert not calls, f"host synchronisations in the training step: {calls}"
    # every path ran: regions (prompt encoder, aligner, SAM prompts) and the masks of every <SEG>
    assert [m.shape[0] for m in out.mask_logits] == [1, 1, 2, 0, 2]
    assert out.bce_loss is not None and model.config.seg_region_prompts
    assert model.prompt_encoder.fuse[0].weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_the_spy_sees_a_synchronisation_in_the_model(mixed, monkeypatch):
    """The spy is not blind: the same forward without the processor's layout reads the ids back."""
    model, batch = mixed
    calls = spy_on_syncs(monkeypatch)
    with torch.no_grad():
        model(**{k: v for k, v in batch.items() if k != "layout"})
    monkeypatch.undo()
    assert calls
