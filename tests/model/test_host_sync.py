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
from mimo.model.token_layout import TokenLayout
from tests.model.conftest import batch_of, build_tiny

MODEL_DIR = str(Path(mimo.model.__file__).parent)
HOST_READS = ("item", "__bool__", "__int__", "__index__", "__float__", "tolist", "numpy", "nonzero", "cpu")
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


def _step(model, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(**batch)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out.loss.detach(), grads


def test_without_the_processors_layout_the_model_finds_the_tokens_itself_to_the_same_step(mixed, monkeypatch):
    """Direct callers pass no layout: the model reads the ids back (the spy sees it) and its
    loss and gradients are those of the processor's layout, bit for bit."""
    model, batch = mixed
    model.train()
    loss, grads = _step(model, batch)
    calls = spy_on_syncs(monkeypatch)
    direct_loss, direct_grads = _step(model, {k: v for k, v in batch.items() if k != "layout"})
    monkeypatch.undo()
    # all in the layout's builder, which copies the ids to the host first (``cpu``)
    files = {call.split(" at ")[1].split(":")[0] for call in calls}
    assert calls[0].startswith("cpu at ") and files == {"token_layout.py"}
    assert torch.equal(loss, direct_loss)
    assert grads.keys() == direct_grads.keys() and len(grads) > 100
    assert all(torch.equal(grads[n], direct_grads[n]) for n in grads)


IMAGE, REGION, SEG = 1, 2, 3


def layout_of(ids: list[list[int]], labels: list[list[int]] | None) -> TokenLayout:
    coord_labels = None if labels is None else torch.tensor(labels, dtype=torch.long).reshape(-1, 3)
    return TokenLayout.of(
        torch.tensor(ids), coord_labels, image_id=IMAGE, region_id=REGION, seg_id=SEG, image_seq_length=2
    )


def test_the_layout_holds_each_tokens_place_slot_and_each_samples_counts():
    ids = [[0, 1, 1, 2, 0, 3, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 2, 2, 3, 3]]
    # a box (two corners), three clicks, one click: coordinates padded to 3 with -1
    layout = layout_of(ids, [[2, 3, -1], [1, 0, 1], [1, -1, -1]])
    assert layout.shape == (3, 8)
    assert layout.image_index.tolist() == [[1, 2], [0, 1], [2, 3]]
    assert layout.region_index.tolist() == [[0, 3, 0], [2, 4, 0], [2, 5, 1]]
    assert layout.region_keep.tolist() == [[True, False], [False, False], [True, True]]
    assert layout.point_index.tolist() == [0, 1, 3, 4, 5, 6] and layout.point_counts == (2, 0, 4)
    assert layout.seg_index.tolist() == [[0, 5], [2, 6], [2, 7]] and layout.seg_counts == (1, 0, 2)
    moved = layout.to("meta")
    assert moved.seg_index.device.type == "meta" and moved.seg_counts == (1, 0, 2)
    plain = layout_of([[0, 3, 0], [3, 3, 0]], None)  # text only: no image, no region
    assert plain.image_index.shape == (2, 0) and plain.region_keep.tolist() == [[False], [False]]
    assert plain.point_counts == (0, 0) and plain.seg_counts == (1, 2)


def test_the_layout_refuses_what_the_model_cannot_place():
    with pytest.raises(ValueError, match=r"exactly one <image> expanded to 2 tokens; got \[2, 1\]"):
        layout_of([[1, 1, 0], [1, 0, 0]], None)
    with pytest.raises(ValueError, match=r"1 <region> token\(s\) but 2 region\(s\)"):
        layout_of([[1, 1, 2]], [[1, -1, -1], [1, -1, -1]])
    with pytest.raises(
        ValueError, match=r"layout: found in ids of shape \(1, 3\), given with inputs of shape \(1, 4\)"
    ):
        layout_of([[1, 1, 2]], [[1, -1, -1]]).check_fits((1, 4))
