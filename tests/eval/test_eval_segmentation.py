"""Segmentation metrics: hand-computed cases, empty-mask conventions, agreement with
torchmetrics and MONAI on random masks."""

import math

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, compute_iou
from torchmetrics.functional.segmentation import dice_score, mean_iou

from mimo.eval.segmentation import MaskCounts, SegmentationMeter, dice, iou, mask_counts


def _mask(shape, *boxes):
    m = np.zeros(shape, dtype=bool)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def test_hand_computed_pair():
    pred = _mask((4, 4), (0, 2, 0, 2))  # 4 px
    target = _mask((4, 4), (0, 2, 1, 4))  # 6 px, overlap 2
    assert mask_counts(pred, target) == MaskCounts(intersection=2, union=8, pred_area=4, target_area=6)
    assert iou(pred, target) == pytest.approx(2 / 8)
    assert dice(pred, target) == pytest.approx(4 / 10)


def test_empty_conventions():
    empty = np.zeros((3, 3), bool)
    full = np.ones((3, 3), bool)
    assert iou(empty, empty) == 1.0 and dice(empty, empty) == 1.0
    assert iou(empty, full) == 0.0 and dice(empty, full) == 0.0
    assert iou(full, empty) == 0.0 and dice(full, empty) == 0.0


def test_non_bool_input_is_foreground_when_nonzero():
    assert iou(np.array([[0, 3], [0, 0]]), np.array([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(0.5)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(3, 3\)"):
        iou(np.ones((2, 2)), np.ones((3, 3)))


def test_meter_hand_computed():
    meter = SegmentationMeter()
    # image a: IoU 1.0 (4/4) and IoU 0.25 (2/8); image b: IoU 0.5 exactly (2/4); image c: both empty.
    meter.update(_mask((4, 4), (0, 2, 0, 2)), _mask((4, 4), (0, 2, 0, 2)), image_id="a")
    meter.update(_mask((4, 4), (0, 2, 0, 2)), _mask((4, 4), (0, 2, 1, 4)), image_id="a")
    meter.update(_mask((4, 4), (0, 1, 0, 2)), _mask((4, 4), (0, 2, 0, 2)), image_id="b")
    meter.update(np.zeros((4, 4), bool), np.zeros((4, 4), bool), image_id="c")
    result = meter.compute()
    assert result["n_masks"] == 4
    assert result["miou"] == pytest.approx((1.0 + 0.25 + 0.5 + 1.0) / 4)
    assert result["giou"] == pytest.approx(((1.0 + 0.25) / 2 + 0.5 + 1.0) / 3)
    assert result["ciou"] == pytest.approx((4 + 2 + 2 + 0) / (4 + 8 + 4 + 0))
    assert result["dice"] == pytest.approx((1.0 + 0.4 + 2 * 2 / 6 + 1.0) / 4)
    # IoU > 0.5 strictly: the 0.5 pair does not count.
    assert result["ap50"] == pytest.approx(2 / 4)


def test_meter_without_image_ids_gives_giou_equal_miou_and_add_counts():
    meter = SegmentationMeter()
    meter.add_counts(MaskCounts(1, 2, 1, 2))
    meter.add_counts(MaskCounts(0, 3, 1, 2))
    result = meter.compute()
    assert result["giou"] == result["miou"] == pytest.approx(0.25)
    assert result["ciou"] == pytest.approx(1 / 5)
    assert len(meter) == 2


def test_empty_meter_is_nan():
    result = SegmentationMeter().compute()
    assert result["n_masks"] == 0
    assert all(math.isnan(result[k]) for k in ("miou", "giou", "ciou", "dice", "ap50"))


def test_all_empty_dataset_ciou_is_one():
    meter = SegmentationMeter()
    meter.update(np.zeros((2, 2), bool), np.zeros((2, 2), bool))
    assert meter.compute()["ciou"] == 1.0


@pytest.fixture
def random_masks():
    rng = np.random.default_rng(0)
    pred = rng.random((16, 24, 20)) > rng.uniform(0.2, 0.8, size=(16, 1, 1))
    target = rng.random((16, 24, 20)) > rng.uniform(0.2, 0.8, size=(16, 1, 1))
    return pred, target


@pytest.mark.filterwarnings("ignore:dice_score metric currently defaults")
def test_agrees_with_torchmetrics(random_masks):
    pred, target = random_masks
    p, t = torch.from_numpy(pred).long(), torch.from_numpy(target).long()
    tm_iou = mean_iou(p, t, num_classes=2, include_background=False, input_format="index")
    tm_dice = dice_score(p, t, num_classes=2, include_background=False, input_format="index", average="micro")
    ours_iou = [iou(a, b) for a, b in zip(pred, target, strict=True)]
    ours_dice = [dice(a, b) for a, b in zip(pred, target, strict=True)]
    np.testing.assert_allclose(ours_iou, tm_iou.double().numpy(), atol=1e-6)
    np.testing.assert_allclose(ours_dice, tm_dice.double().numpy(), atol=1e-6)


def test_agrees_with_monai_including_empty_masks(random_masks):
    pred, target = random_masks
    pred, target = pred.copy(), target.copy()
    pred[0] = target[0] = False  # both empty
    pred[1] = False  # prediction empty
    target[2] = False  # target empty
    p = torch.from_numpy(pred).float()[:, None]
    t = torch.from_numpy(target).float()[:, None]
    monai_iou = compute_iou(p, t, include_background=True, ignore_empty=False)[:, 0]
    monai_dice = DiceMetric(include_background=True, reduction="none", ignore_empty=False)(p, t)[:, 0]
    meter = SegmentationMeter()
    for a, b in zip(pred, target, strict=True):
        meter.update(a, b)
    np.testing.assert_allclose([iou(a, b) for a, b in zip(pred, target, strict=True)], monai_iou, atol=1e-6)
    np.testing.assert_allclose([dice(a, b) for a, b in zip(pred, target, strict=True)], monai_dice, atol=1e-6)
    assert meter.compute()["miou"] == pytest.approx(float(monai_iou.double().mean()), abs=1e-6)
    assert meter.compute()["dice"] == pytest.approx(float(monai_dice.double().mean()), abs=1e-6)
