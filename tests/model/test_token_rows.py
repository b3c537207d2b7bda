"""Row-tuned token embeddings: only MIMO's own tokens' rows train, and the model saves plain."""

from __future__ import annotations

import torch

from mimo.model import MimoForConditionalGeneration
from mimo.model.policy import TrainingPolicy, apply_policy, merge_lora, mimo_token_ids, plain_state_dict
from mimo.model.synthetic import grounding_samples
from mimo.model.token_rows import RowTunedEmbedding

from .conftest import batch_of, build_tiny


def _trained(steps: int = 3):
    samples = grounding_samples(2)
    model, processor = build_tiny(samples, seed=7)
    batch = batch_of(processor, samples)
    batch.pop("image_size")
    original = model.get_input_embeddings().weight.detach().clone()
    model.eval()
    with torch.no_grad():
        plain_logits = model(**batch).logits
    apply_policy(model, TrainingPolicy.preset("finetune"))
    with torch.no_grad():
        wrapped_logits = model(**batch).logits
    assert torch.equal(plain_logits, wrapped_logits)  # the rows start as they were
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    return model, batch, original


def test_only_the_rows_of_mimo_tokens_train():
    model, _, original = _trained()
    embedding = model.get_input_embeddings()
    assert isinstance(embedding, RowTunedEmbedding)
    ids = mimo_token_ids(model.config)
    assert embedding.rows.shape == (len(ids), original.shape[1])
    trainable_llm = [n for n, p in model.language_model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or n.endswith(".rows") for n in trainable_llm), trainable_llm
    merged = embedding.merged_weight()
    changed = (merged != original).any(dim=1).nonzero().flatten().tolist()
    assert changed and set(changed) <= set(ids)
    # a handful of rows instead of the whole matrices
    assert not embedding.weight.requires_grad and not model.get_output_embeddings().weight.requires_grad
    rows = {id(p): p.numel() for n, p in model.named_parameters() if n.endswith(".rows")}
    assert 0 < sum(rows.values()) <= 2 * len(ids) * original.shape[1] < original.numel()


def test_the_state_dict_is_a_plain_models_and_reloads_the_trained_rows(tmp_path):
    model, batch, _ = _trained()
    model.eval()
    keys = set(model.state_dict())
    assert not any(k.endswith(".rows") for k in keys)
    with torch.no_grad():
        trained = model(**batch).logits
    merge_lora(model)
    assert not isinstance(model.get_input_embeddings(), RowTunedEmbedding)
    model.save_pretrained(tmp_path / "m")
    loaded = MimoForConditionalGeneration.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        again = loaded(**batch).logits
    assert torch.allclose(trained, again, atol=1e-4)


def test_a_checkpoint_state_dict_loads_back_into_a_row_tuned_model():
    model, batch, _ = _trained()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fresh, _, _ = _trained(steps=0)
    fresh.load_state_dict(state)
    model.eval()
    fresh.eval()
    assert torch.equal(fresh.get_input_embeddings().rows, model.get_input_embeddings().rows)
    with torch.no_grad():
        assert torch.allclose(fresh(**batch).logits, model(**batch).logits, atol=1e-5)


def test_a_state_gathered_by_parameter_name_saves_as_the_merged_model():
    """ZeRO-3 gathers weights parameter by parameter (no state-dict hooks): LoRA matrices beside
    their base weights, the tuned ``rows`` beside their matrix. ``plain_state_dict`` must give
    what merging the whole model gives, or a ZeRO-3 run would save its LoRA and token rows as
    unexpected keys that loading ignores."""
    import copy

    model, batch, _ = _trained()
    with torch.no_grad():  # LoRA's B starts at zero: give it a value so folding it matters
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05 * torch.randn_like(p))
    gathered = {n: p.detach().clone() for n, p in model.named_parameters(remove_duplicate=False)}
    gathered.update({n: b.clone() for n, b in model.named_buffers() if n in model.state_dict()})
    assert any("lora_A" in k for k in gathered) and any(k.endswith(".rows") for k in gathered)
    merged = copy.deepcopy(model)
    merge_lora(merged)
    expected = merged.state_dict()
    plain = plain_state_dict(gathered, model)
    assert set(plain) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(plain[key], value, rtol=1e-5, atol=1e-6, msg=key)
