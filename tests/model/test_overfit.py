"""The tiny model learns: text and masks of a handful of samples, the region matters, several <SEG>."""

from __future__ import annotations

import torch

from mimo.eval.answers import parse_answer
from tests.model.conftest import batch_of, mask_dice


def generate(model, processor, samples):
    prompts = [{**s, "conversations": s["conversations"][:1], "masks": s["masks"]} for s in samples]
    batch = batch_of(processor, prompts, add_generation_prompt=True)
    out = model.generate_with_masks(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        pixel_values=batch["pixel_values"],
        sam_pixel_values=batch["sam_pixel_values"],
        image_sizes=batch["image_size"],
        instruction_mask=batch["instruction_mask"],
        region_coords=batch["region_coords"],
        region_coord_labels=batch["region_coord_labels"],
        region_types=batch["region_types"],
        region_masks=batch["region_masks"],
        max_new_tokens=48,
    )
    return [processor.decode(seq) for seq in out.sequences], out.masks, out.scores


def test_losses_fall_and_training_masks_reach_dice(overfit):
    first, last = overfit["history"][0], overfit["history"][-1]
    assert last[1] < first[1] / 20, "cross-entropy did not fall"
    assert last[2] < first[2] / 5 and last[3] < first[3] / 5, "mask losses did not fall"
    assert last[4] > 0.95


def test_generated_answers_have_right_words_and_masks(overfit):
    """Generation (KV cache, masks at the image's size) reproduces every training answer, and the
    masks reach a mean Dice above 0.9 (each above 0.8) against the truth; their scores are high."""
    model, processor, samples = overfit["model"], overfit["processor"], overfit["samples"]
    texts, masks, predicted_iou = generate(model, processor, samples)
    scores = []
    for sample, text, predicted in zip(samples, texts, masks, strict=True):
        expected = sample["conversations"][1]
        assert text == expected["value"], (text, expected["value"])
        keys = expected.get("masks") or []
        assert predicted.shape[0] == len(keys)
        for mask, key in zip(predicted, keys, strict=True):
            assert mask.shape == sample["image"].shape
            scores.append(mask_dice(mask, torch.from_numpy(sample["masks"][key])))
    assert len(scores) == 12
    assert sum(scores) / len(scores) > 0.9, scores
    assert min(scores) > 0.8, scores
    # SAM's IoU head learned too: the masks' scores estimate their IoU (here all above 0.7)
    estimated = torch.cat(predicted_iou)
    assert estimated.shape[0] == 12 and float(estimated.mean()) > 0.6, estimated


def test_several_seg_give_one_mask_per_phrase_and_none_without_seg(overfit):
    model, processor, samples = overfit["model"], overfit["processor"], overfit["samples"]
    multi, negative = samples[-2], samples[-1]
    texts, masks, _ = generate(model, processor, [multi, negative])
    phrases = [g.phrase for g in parse_answer(texts[0]).items]
    assert phrases == ["square", "disc"]
    assert masks[0].shape[0] == 2
    assert mask_dice(masks[0][0], torch.from_numpy(multi["masks"]["m0"])) > 0.9
    assert mask_dice(masks[0][1], torch.from_numpy(multi["masks"]["m1"])) > 0.9
    assert parse_answer(texts[1]).items == () and masks[1].shape[0] == 0


def test_the_region_decides_the_answer(overfit):
    """Same image, same text, three boxes: different region embeddings and the right answers."""
    model, processor, samples = overfit["model"], overfit["processor"], overfit["samples"]
    same_image = samples[4:7]
    assert all(s["image"] is same_image[0]["image"] for s in same_image)
    batch = batch_of(
        processor,
        [{**s, "conversations": s["conversations"][:1]} for s in same_image],
        add_generation_prompt=True,
    )
    assert torch.equal(batch["input_ids"][0], batch["input_ids"][1])
    with torch.no_grad():
        region_embeds = model.prompt_encoder(
            model.image_features(batch["pixel_values"]),
            torch.arange(len(same_image)),
            batch["region_coords"],
            batch["region_coord_labels"],
            batch["region_types"],
            batch["region_masks"],
        )
    assert not torch.allclose(region_embeds[0], region_embeds[1], atol=1e-3)
    texts, _, _ = generate(model, processor, same_image)
    assert texts == [s["conversations"][1]["value"] for s in same_image]
    assert len(set(texts)) == 3


def test_tiny_model_learns_six_samples_within_two_minutes():
    """From random weights: six "segment the X" / "what is in <region>?" samples to the right
    words and a mean mask Dice above 0.9 (about 30 s on one CPU core; timed by the suite, not
    asserted)."""
    from mimo.model.synthetic import grounding_samples, overfit_tiny

    samples = grounding_samples(6)
    result = overfit_tiny(samples, max_steps=200, dice_target=0.93, ce_target=0.05)
    texts, masks, _ = generate(result["model"], result["processor"], samples)
    scores = [
        mask_dice(m[0], torch.from_numpy(s["masks"]["m0"])) for s, m in zip(samples, masks, strict=True)
    ]
    assert texts == [s["conversations"][1]["value"] for s in samples]
    assert sum(scores) / len(scores) > 0.9, scores
