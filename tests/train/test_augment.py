"""Training augmentation keeps answers true: a centred zoom-out moves masks and prompts together,
keeps each structure on its side of the midline, and is a pure function of its draw."""

from __future__ import annotations

import numpy as np
import torch

from mimo.core.schema import BoxRegion, MaskRegion, PointRegion, ScribbleRegion
from mimo.train.augment import Augmentation, augment_sample, jitter_intensity, zoom_out
from mimo.train.trainer import Trainer


def _sample() -> dict:
    image = np.zeros((60, 90), np.uint8)
    image[10:30, 10:40] = 200  # a structure left of the midline (x = 45)
    image[35:55, 60:80] = 120  # and one right of it, below the first
    left = image == 200
    right = image == 120
    regions = [
        PointRegion(points=[[20.0, 15.0]], labels=[1]),
        BoxRegion(box=[60.0, 35.0, 80.0, 55.0]),
        ScribbleRegion(strokes=[[[12.0, 12.0], [38.0, 28.0]]]),
        MaskRegion(mask="m1"),
    ]
    return {"image": image, "conversations": [], "regions": regions, "masks": {"m0": left, "m1": right}}


def _centre(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def test_zoom_out_moves_masks_and_prompts_together_and_keeps_sides():
    sample = _sample()
    out = zoom_out(sample, 0.6)
    assert out["image"].shape == sample["image"].shape
    left, right = out["masks"]["m0"], out["masks"]["m1"]
    assert 0.25 < left.sum() / sample["masks"]["m0"].sum() < 0.5  # area scales by about 0.36
    (lx, ly), (rx, ry) = _centre(left), _centre(right)
    assert lx < 45 < rx and ly < ry  # sides of the midline and the relation stay
    # the prompts landed on their structures
    ((px, py),) = out["regions"][0].points
    assert left[int(py), int(px)]
    x0, y0, x1, y1 = out["regions"][1].box
    assert right[int((y0 + y1) / 2), int((x0 + x1) / 2)]
    ys, xs = np.nonzero(right)
    assert abs(x0 - xs.min()) <= 1.5 and abs(x1 - (xs.max() + 1)) <= 1.5
    stroke = np.asarray(out["regions"][2].strokes[0])
    assert all(left[int(y), int(x)] for x, y in stroke)
    assert out["regions"][3] == sample["regions"][3]  # names its mask, which moved
    # the image shrank about its centre: its corners are zero, the structure's pixels moved in
    assert out["image"][0, 0] == 0 and out["image"][int(ly), int(lx)] == 200


def test_a_structure_that_would_vanish_keeps_the_sample_as_it_is():
    sample = _sample()
    tiny = np.zeros((60, 90), bool)
    tiny[3, 3] = True
    sample["masks"]["m2"] = tiny
    assert zoom_out(sample, 0.6) is sample


def test_intensity_jitter_stays_in_range_and_augment_is_a_function_of_its_draw():
    image = np.linspace(0, 255, 60 * 90).reshape(60, 90).astype(np.uint8)
    jittered = jitter_intensity(image, 0.3, np.random.default_rng(0))
    assert jittered.dtype == np.uint8 and not np.array_equal(jittered, image)
    settings = Augmentation(p=1.0)
    a = augment_sample(_sample(), settings, np.random.default_rng([1, 2, 3]))
    b = augment_sample(_sample(), settings, np.random.default_rng([1, 2, 3]))
    c = augment_sample(_sample(), settings, np.random.default_rng([1, 2, 4]))
    assert np.array_equal(a["image"], b["image"]) and not np.array_equal(a["image"], c["image"])
    untouched = _sample()
    assert augment_sample(untouched, Augmentation(p=0.0), np.random.default_rng(0)) is untouched


def test_trainer_draws_do_not_depend_on_where_a_resumed_epoch_starts(make_config):
    trainer = Trainer(make_config("data.augment={p: 1.0}", "optim.batch_size=1", "optim.max_steps=4"))
    whole = [b for b in trainer.train_loader(0).batch_sampler]
    resumed = [b for b in trainer.train_loader(0, skip_batches=2).batch_sampler]
    assert resumed == whole[2:]
    draws = [item[1] for batch in whole for item in batch]
    assert len(set(draws)) == len(draws)  # every item of the epoch its own draw
    first = trainer.train_set[whole[0][0]]
    again = trainer.train_set[whole[0][0]]
    plain = trainer.train_set[whole[0][0][0]]
    assert torch.equal(first["pixel_values"], again["pixel_values"])
    assert not torch.equal(first["pixel_values"], plain["pixel_values"])


def test_augmentation_can_be_limited_to_sources(make_config):
    settings = Augmentation(sources=["folder2d:hc18"])
    assert settings.applies_to("folder2d:hc18") and not settings.applies_to("msd:hippocampus")
    assert Augmentation().applies_to(None)
    trainer = Trainer(make_config("data.augment={p: 1.0, sources: [elsewhere]}", "optim.batch_size=1"))
    key = trainer.train_loader(0).batch_sampler.batches[0][0]
    assert torch.equal(trainer.train_set[key]["pixel_values"], trainer.train_set[key[0]]["pixel_values"])
