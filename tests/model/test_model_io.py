"""Save/load round trips, assembling from components, the training policy, and input checking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM, SamModel

from mimo.model import MimoForConditionalGeneration, MimoProcessor, tiny_config
from mimo.model.policy import TrainingPolicy, apply_policy, count_parameters, merge_lora
from mimo.model.synthetic import grounding_samples, multi_and_negative_samples, same_image_region_samples
from tests.model.conftest import batch_of, build_tiny


@pytest.fixture(scope="module")
def tiny():
    samples = grounding_samples(2) + multi_and_negative_samples()
    model, processor = build_tiny(samples, seed=3)
    batch = batch_of(processor, samples)
    batch.pop("image_size")
    return model, processor, samples, batch


def test_forward_returns_weighted_loss_of_its_parts(tiny):
    model, _, _, batch = tiny
    out = model(**batch)
    cfg = model.config
    expected = (
        cfg.loss_ce_weight * out.ce_loss
        + cfg.loss_bce_weight * out.bce_loss
        + cfg.loss_dice_weight * out.dice_loss
        + cfg.loss_iou_weight * out.iou_loss
    )
    assert torch.allclose(out.loss, expected)
    assert len(out.mask_logits) == batch["input_ids"].shape[0]
    assert sum(m.shape[0] for m in out.mask_logits) == batch["seg_masks"].shape[0] == 4


def test_gradients_reach_prompt_encoder_aligner_and_grounding(tiny):
    model, _, _, batch = tiny
    model.zero_grad()
    model(**batch).loss.backward()
    for name in ("prompt_encoder", "aligner", "seg_head", "projector", "vision_tower"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0, name
    assert model.sam.mask_decoder.iou_token.weight.grad is not None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.sam.vision_encoder.parameters())
    model.zero_grad()


def _sparse_prompt_shapes(model):
    """Record the shape of every sparse prompt tensor SAM's mask decoder is given."""
    shapes = []

    def hook(_module, _args, kwargs):
        shapes.append(tuple(kwargs["sparse_prompt_embeddings"].shape))

    return shapes, model.sam.mask_decoder.register_forward_pre_hook(hook, with_kwargs=True)


def test_user_regions_reach_sam_beside_each_seg_prompt():
    samples = same_image_region_samples()
    model, processor = build_tiny(samples, seed=4)
    batch = batch_of(processor, samples)
    batch.pop("image_size")
    shapes, handle = _sparse_prompt_shapes(model)
    try:
        model.zero_grad()
        out = model(**batch)
        out.loss.backward()
        # one <SEG> per sample, prompted by its token and the box's two corners
        assert shapes == [(1, 1, 3, model.config.sam_config.prompt_encoder_config.hidden_size)] * len(samples)
        corner_grads = [model.sam.prompt_encoder.point_embed[i].weight.grad for i in (2, 3)]
        assert all(g is not None and g.abs().sum() > 0 for g in corner_grads)
        with_regions = [m.detach() for m in out.mask_logits]

        shapes.clear()
        model.config.seg_region_prompts = False
        without = model(**batch).mask_logits
        assert {s[2] for s in shapes} == {1}
        assert not torch.allclose(torch.cat(with_regions), torch.cat(without).detach())

        # generation gives SAM the regions too
        model.config.seg_region_prompts = True
        shapes.clear()
        question = {**samples[0], "conversations": samples[0]["conversations"][:1], "masks": {}}
        prompt = batch_of(processor, [question], add_generation_prompt=True)
        sizes = prompt.pop("image_size")
        assert "labels" not in prompt and "seg_masks" not in prompt  # no targets at inference
        seg_id = model.config.seg_token_id
        out = model.generate_with_masks(
            **prompt, image_sizes=sizes, max_new_tokens=2, prefix_allowed_tokens_fn=lambda _b, _ids: [seg_id]
        )
        assert out.sequences[0].tolist() == [seg_id, seg_id] and out.masks[0].shape[0] == 2
        assert shapes[-1][:3] == (1, 2, 3)
    finally:
        handle.remove()
        model.zero_grad()


def test_save_and_load_give_identical_outputs(tiny, tmp_path):
    model, processor, _, batch = tiny
    model.eval()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    loaded = MimoForConditionalGeneration.from_pretrained(tmp_path).eval()
    loaded_processor = MimoProcessor.from_pretrained(tmp_path)
    assert loaded.config.seg_token_id == model.config.seg_token_id
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
    assert torch.equal(a.logits, b.logits)
    assert all(torch.equal(x, y) for x, y in zip(a.mask_logits, b.mask_logits, strict=True))
    sample = tiny[2][0]
    again = loaded_processor.process_sample(
        sample["image"], sample["conversations"], sample["regions"], sample["masks"]
    )
    assert (
        again["input_ids"]
        == processor.process_sample(
            sample["image"], sample["conversations"], sample["regions"], sample["masks"]
        )["input_ids"]
    )


def _save_components(tmp_path, processor):
    cfg = tiny_config(vocab_size=len(processor.tokenizer))
    llm = LlamaForCausalLM(LlamaConfig(**cfg.text_config.to_dict()))
    vision = CLIPVisionModel(CLIPVisionConfig(**cfg.vision_config.to_dict()))
    sam = SamModel(cfg.sam_config)
    dirs = {name: tmp_path / name for name in ("llm", "vision", "sam")}
    for name, module in (("llm", llm), ("vision", vision), ("sam", sam)):
        module.save_pretrained(dirs[name])
    processor.tokenizer.save_pretrained(dirs["llm"])
    return dirs, (llm, vision, sam)


def test_from_components_loads_each_part_exactly(tiny, tmp_path):
    _, processor, _, _ = tiny
    dirs, (llm, vision, sam) = _save_components(tmp_path, processor)
    with pytest.warns(UserWarning, match="preprocessor_config.json is missing"):
        model, tokenizer = MimoForConditionalGeneration.from_components(
            llm=dirs["llm"],
            vision=dirs["vision"],
            sam=dirs["sam"],
            aligner_num_queries=4,
            aligner_hidden_size=64,
            aligner_num_heads=4,
            aligner_num_layers=1,
            seg_hidden_size=64,
        )
    assert model.config.seg_token_id == tokenizer.convert_tokens_to_ids("<SEG>")
    for part, reference in ((model.vision_tower, vision), (model.sam, sam)):
        ref = reference.state_dict()
        for key, value in part.state_dict().items():
            assert torch.equal(value, ref[key]), key
    ref = llm.state_dict()
    for key, value in model.language_model.state_dict().items():
        if "embed_tokens" in key or "lm_head" in key:
            continue  # resized only if the tokenizer grew; checked below
        assert torch.equal(value, ref[key]), key
    assert torch.equal(
        model.get_input_embeddings().weight[: ref["model.embed_tokens.weight"].shape[0]],
        ref["model.embed_tokens.weight"],
    )
    assert all(not p.is_meta for p in model.parameters())
    # the assembled model runs
    proc = MimoProcessor.for_model(tokenizer, model.config, system_prompt="You are MIMO.")
    sample = tiny[2][0]
    batch = proc.collate(
        [proc.process_sample(sample["image"], sample["conversations"], sample["regions"], sample["masks"])]
    )
    batch.pop("image_size")
    assert torch.isfinite(model(**batch).loss)


def test_from_components_rejects_missing_or_wrong_directories(tiny, tmp_path):
    _, processor, _, _ = tiny
    dirs, _ = _save_components(tmp_path, processor)
    with pytest.raises(ValueError, match="llm: .*nowhere.* is not a directory"):
        MimoForConditionalGeneration.from_components(
            llm=tmp_path / "nowhere", vision=dirs["vision"], sam=dirs["sam"]
        )
    with pytest.raises(ValueError, match="vision: .*'llama' model"):
        MimoForConditionalGeneration.from_components(llm=dirs["llm"], vision=dirs["llm"], sam=dirs["sam"])
    with pytest.raises(ValueError, match="sam: .*'clip_vision_model'"):
        MimoForConditionalGeneration.from_components(
            llm=dirs["llm"], vision=dirs["vision"], sam=dirs["vision"]
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="config.json is missing"):
        MimoForConditionalGeneration.from_components(
            llm=dirs["llm"], vision=tmp_path / "empty", sam=dirs["sam"]
        )


def test_finetune_policy_freezes_encoders_and_lora_merges_to_same_outputs(tiny):
    samples = grounding_samples(2)
    model, processor = build_tiny(samples, seed=5)
    batch = batch_of(processor, samples)
    batch.pop("image_size")
    apply_policy(model, TrainingPolicy.preset("finetune"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("vision_tower.") for n in trainable)
    assert not any(n.startswith("sam.vision_encoder.") for n in trainable)
    assert any("lora_A" in n for n in trainable)
    assert not any("q_proj.base_layer" in n for n in trainable)
    for prefix in ("projector.", "prompt_encoder.", "aligner.", "seg_head.", "sam.mask_decoder."):
        assert any(n.startswith(prefix) for n in trainable), prefix
    n_train, n_total = count_parameters(model)
    assert 0 < n_train < n_total
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits
        merge_lora(model)
        after = model(**batch).logits
    assert not any("lora" in n for n, _ in model.named_parameters())
    assert torch.allclose(before, after, atol=1e-4)


def test_scratch_policy_trains_everything(tiny):
    model, *_ = tiny
    apply_policy(model, TrainingPolicy.preset("scratch"))
    assert all(p.requires_grad for p in model.parameters())


def test_aligner_can_be_switched_off():
    samples = grounding_samples(2)
    model, processor = build_tiny(samples, use_aligner=False)
    assert model.aligner is None
    assert model.config.image_seq_length == model.config.num_patches
    batch = batch_of(processor, samples)
    batch.pop("image_size")
    assert torch.isfinite(model(**batch).loss)


def test_config_round_trip_and_paper_preset_sizes(tmp_path):
    from mimo.model import MimoConfig, paper_config

    cfg = paper_config()
    assert cfg.text_config.hidden_size == 4096 and cfg.text_config.num_hidden_layers == 32
    assert cfg.vision_config.image_size == 336 and cfg.num_patches == 576
    assert cfg.sam_config.vision_config.hidden_size == 1280 and cfg.sam_image_size == 1024
    cfg.save_pretrained(tmp_path)
    again = MimoConfig.from_pretrained(tmp_path)
    assert json.loads(again.to_json_string()) == json.loads(cfg.to_json_string())


# ------------------------------------------------------------------ bad input


def _sample(**changes):
    sample = dict(grounding_samples(2)[1])
    sample.update(changes)
    return sample


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"regions": []}, r"1 <region> placeholder\(s\) but 0 region\(s\)"),
        (
            {"regions": [{"type": "box", "box": [1, 1, 5, 5]}] * 2},
            r"1 <region> placeholder\(s\) but 2 region\(s\)",
        ),
        ({"regions": [{"type": "box", "box": [10, 1, 5, 5]}]}, r"x0 <= x1"),
        (
            {"regions": [{"type": "box", "box": [1, 1, 500, 5]}]},
            r"regions\[0\] \(box\): coordinate \(500, 5\) lies outside",
        ),
        ({"regions": [{"type": "point", "points": [[-3, 4]], "labels": [1]}]}, r"outside the 64x64 image"),
        (
            {
                "regions": [{"type": "mask", "mask": "m9"}],
                "masks": {"m0": np.ones((64, 64), bool), "m9": np.zeros((64, 64), bool)},
            },
            r"the mask prompt 'm9' is empty",
        ),
        ({"masks": {}}, r"mask 'm0' was not given"),
        ({"image": np.zeros((4, 64, 64))}, r"expected a 2D gray \(H, W\) or RGB \(H, W, 3\)"),
        ({"image": np.zeros((64, 64, 5))}, r"expected a 2D gray"),
    ],
)
def test_bad_input_is_a_clear_value_error(tiny, changes, message):
    _, processor, _, _ = tiny
    s = _sample(**changes)
    with pytest.raises(ValueError, match=message):
        processor.process_sample(s["image"], s["conversations"], s["regions"], s["masks"])


def test_mask_count_must_match_seg_count(tiny):
    _, processor, _, _ = tiny
    s = _sample()
    conversations = [s["conversations"][0], {**s["conversations"][1], "masks": ["m0", "m0"]}]
    with pytest.raises(ValueError, match=r"1 <SEG> but 2 mask\(s\)"):
        processor.process_sample(s["image"], conversations, s["regions"], s["masks"])
    model = tiny[0]
    batch = batch_of(processor, [s])
    batch.pop("image_size")
    batch["seg_masks"] = torch.cat([batch["seg_masks"]] * 2)
    with pytest.raises(ValueError, match=r"1 <SEG> token\(s\) but 2 target mask\(s\)"):
        model(**batch)
    batch = batch_of(processor, [s])
    batch.pop("image_size")
    for key in ("region_coords", "region_coord_labels", "region_types", "region_masks"):
        batch[key] = batch[key][:0]
    with pytest.raises(ValueError, match=r"1 <region> token\(s\) but 0 region\(s\)"):
        model(**batch)


def test_a_prepared_image_gives_the_same_sample_and_inference_builds_no_targets(tiny):
    _, processor, samples, _ = tiny
    s = samples[1]  # a box region and one <SEG>
    direct = processor.process_sample(s["image"], s["conversations"], s["regions"], s["masks"])
    pixels = processor.prepare_image(s["image"])
    again = processor.process_prepared(pixels, s["conversations"], s["regions"], s["masks"])
    assert direct.keys() == again.keys() >= {"labels", "seg_masks"}
    for key, value in direct.items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(again[key])), key
    # a chat: the earlier answer's <SEG> needs no mask when nothing is learned
    chat = [*s["conversations"][:2], {"from": "human", "value": "And this?"}]
    chat[1] = {"from": "gpt", "value": chat[1]["value"]}
    prompt = processor.process_prepared(pixels, chat, s["regions"], add_generation_prompt=True)
    assert "labels" not in prompt and "seg_masks" not in prompt
    with pytest.raises(ValueError, match=r"conversations\[1\]: 1 <SEG> but 0 mask\(s\)"):
        processor.process_prepared(pixels, chat, s["regions"], add_generation_prompt=True, targets=True)
    batch = processor.collate([prompt, prompt], padding_side="left")
    assert "labels" not in batch and "seg_masks" not in batch and batch["input_ids"].shape[0] == 2
    with pytest.raises(ValueError, match="with and without training targets"):
        processor.collate([prompt, direct])


def test_the_conversation_template_lives_in_the_processor_only():
    import mimo

    template = MimoProcessor.template
    assert template.tokenizer_seed_texts("Hi.") == ["Hi.", "USER: ASSISTANT:"]
    root = Path(mimo.__file__).parent
    holders = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if template.user_prefix in p.read_text() or template.assistant_prefix.strip() in p.read_text()
    }
    assert holders == {"model/processing_mimo.py"}
