"""A record from every public format trains the tiny model for a step and is evaluated by
the ``mimo eval`` runner, whose report carries the benchmark's own metrics."""

from __future__ import annotations

import json

import pytest
import torch

from mimo.core.records import read_records, write_records
from mimo.data.build import build
from mimo.infer.evaluate import run_evaluation
from mimo.infer.predictor import Predictor
from mimo.model import MimoForConditionalGeneration, MimoProcessor, tiny_config
from mimo.model.tokenizer import train_tokenizer
from mimo.train.dataset import Collator, RecordDataset
from tests.interop import fixtures as F

SOURCES = [
    ("mecovqa", F.mecovqa),
    ("slake", F.slake),
    ("vqa-rad", F.vqa_rad),
    ("pathvqa", F.pathvqa),
    ("llava-med", F.llava_med),
    ("samed2d", F.samed2d),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("interop")
    specs = []
    for kind, make in SOURCES:
        make(tmp / kind)
        specs.append(f"{kind}:{tmp / kind}")
    out = tmp / "out"
    build(specs, out, progress=False, config=None)
    recs = [r for s in ("train", "val", "test") for r in read_records(out / f"{s}.jsonl")]
    one_each = {}
    for r in recs:
        one_each.setdefault(r.source.split(":")[0], r)
    assert set(one_each) == {k for k, _ in SOURCES}
    path = out / "one_each.jsonl"
    write_records(path, list(one_each.values()))
    texts = [t.value for r in recs for t in r.conversations] + MimoProcessor.template.tokenizer_seed_texts(
        "You are MIMO."
    )
    torch.manual_seed(0)
    tokenizer = train_tokenizer(texts, vocab_size=200)
    model = MimoForConditionalGeneration(tiny_config(vocab_size=len(tokenizer)))
    model.resize_for_tokenizer(tokenizer)
    processor = MimoProcessor.for_model(tokenizer, model.config, system_prompt="You are MIMO.")
    return path, model, processor, tmp


def test_one_record_of_each_format_trains_a_step(built):
    path, model, processor, _ = built
    dataset = RecordDataset([path], processor)
    batch = Collator(processor)([dataset[i] for i in range(len(dataset))])
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    after = [p for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


def test_eval_runner_reports_benchmark_metrics(built):
    path, model, processor, tmp = built
    result = run_evaluation(Predictor(model, processor, max_new_tokens=6), path, tmp / "eval", grid_k=0)
    data = json.loads(result["report"].read_text())
    assert data["n_samples"] == len(read_records(path))
    benches = data["benchmarks"]
    assert {"mecovqa", "slake", "vqa-rad", "pathvqa", "llava-med", "samed2d"} <= set(benches)
    seg = [b for b in benches.values() if "medplib_miou" in b]
    assert seg and all(0.0 <= b["medplib_miou"] <= 1.0 for b in seg)
    assert 0.0 <= benches["samed2d"]["samed2d_instance_dice"] <= 1.0
    assert benches["samed2d"]["n_instances"] >= benches["samed2d"]["n_structures"] > 0
