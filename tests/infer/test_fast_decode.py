"""The fast decoding path (static KV cache, ``mimo.model.fast_decode``) gives the default path's
answers and masks. Checked on the shipped ``mimo-tiny`` with held-out images, whose answers are
real grounded sentences (several ``<SEG>``, different lengths in one batch, EOS mid-batch).
The compiled step is not exercised here: compiling on 2 shared CPU cores takes minutes; it runs
on CUDA (``benchmarks/gpu_suite.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mimo.infer.predictor import Predictor, packaged_model_dir

HELDOUT = packaged_model_dir().parent / "heldout"


def _items(n: int) -> list[dict]:
    items = []
    for line in (HELDOUT / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        regions = record["regions"]
        if regions and regions[0]["type"] != "box":
            continue
        question = record["conversations"][0]["value"].replace("<image>", "").strip()
        item = {"image": str(HELDOUT / record["image"]), "question": question}
        if regions:
            item["boxes"] = [regions[0]["box"]]
        items.append(item)
    # every perspective: spread the picks over the file
    return items[:: max(1, len(items) // n)][:n]


@pytest.fixture(scope="module")
def both():
    default = Predictor.from_pretrained(packaged_model_dir(), max_new_tokens=48, fast=False)
    fast = Predictor(default.model, default.processor, max_new_tokens=48, fast=True)
    return default, fast


def _same(a, b) -> None:
    assert a.answer == b.answer
    assert len(a.segments) == len(b.segments)
    for x, y in zip(a.segments, b.segments, strict=True):
        assert x.phrase == y.phrase
        assert np.array_equal(x.mask, y.mask)
        assert x.score == pytest.approx(y.score, abs=1e-5)


def test_fast_path_gives_the_same_answers_and_masks(both):
    default, fast = both
    items = _items(10)
    expected = default.predict_batch(items, batch_size=4)
    got = fast.predict_batch(items, batch_size=4)
    assert sum(len(p.segments) for p in expected) >= 5  # the check covers masks, not only text
    assert len({p.answer for p in expected}) > 3
    for a, b in zip(expected, got, strict=True):
        _same(a, b)
    # one by one (batch 1) too, and a second call reuses the static cache
    for item in items[:2]:
        _same(default.predict(**item), fast.predict(**item))


def test_fast_path_is_used_and_falls_back_for_sampling(both, monkeypatch):
    default, fast = both
    assert default.decoding() == {"fast": False, "compile": False}
    assert fast.decoding() == {"fast": True, "compile": False}  # CPU: no compile unless asked
    assert Predictor(default.model, default.processor).decoding()["fast"] is False  # auto: CUDA only
    from mimo.model import fast_decode

    calls = []
    original = fast_decode.FastDecoder.generate
    monkeypatch.setattr(
        fast_decode.FastDecoder, "generate", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    item = _items(1)[0]
    fast.predict(**item)
    assert calls == [1]
    sampling = Predictor(
        default.model, default.processor, max_new_tokens=8, fast=True, generation_kwargs={"do_sample": True}
    )
    sampling.predict(**item)
    assert calls == [1]  # sampling is not greedy decoding: generate() answered


def test_a_failing_compile_costs_speed_not_answers(both, monkeypatch, caplog):
    default, _ = both

    def broken(fn, **kwargs):
        def step(*args):
            raise RuntimeError("no compiler here")

        return step

    monkeypatch.setattr("torch.compile", broken)
    compiled = Predictor(default.model, default.processor, max_new_tokens=48, fast=True, compile=True)
    assert compiled.decoding() == {"fast": True, "compile": True}
    item = _items(3)[2]
    _same(default.predict(**item), compiled.predict(**item))
    assert "compiling the decoder step failed (no compiler here)" in caplog.text
    default.model._fast_decoder = None  # the next test builds its own


def test_neither_path_generates_an_input_only_token(both):
    """A model that favours ``<image>`` in an answer (here forced by a hook on the output layer)
    must not emit it: generation has no pixels to put in its place. Both paths suppress it."""
    default, fast = both
    model = default.model
    image_id = model.config.image_token_id
    item = _items(1)[0]

    def favour_image(module, inputs, output):
        output = output.clone()
        output[..., image_id] += 1e4
        return output

    hook = model.get_output_embeddings().register_forward_hook(favour_image)
    try:
        answers = [p.predict_batch([item])[0] for p in (default, fast)]
    finally:
        hook.remove()
    for prediction in answers:
        assert "<image>" not in prediction.answer and "<region>" not in prediction.answer
    _same(*answers)
