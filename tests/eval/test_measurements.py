"""Measurements of masks (mimo.core.measure) and the scoring of numeric answers (mimo.eval.measurements)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mimo.core.measure import (
    area,
    fit_ellipse,
    fit_head_ellipse,
    ground_measurement,
    head_circumference_mm,
    longest_diameter_mm,
    parse_measurement,
)
from mimo.eval.measurements import measurement_metrics, measurement_result


def ellipse_mask(shape, center, a_px, b_px, angle=0.0):
    """Filled ellipse with semi-axes a_px (along columns at angle 0) and b_px, in pixels."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    y, x = rows + 0.5 - center[0], cols + 0.5 - center[1]
    c, s = math.cos(angle), math.sin(angle)
    u, v = x * c + y * s, -x * s + y * c
    return (u / a_px) ** 2 + (v / b_px) ** 2 <= 1


def ramanujan(a, b):
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


@pytest.mark.parametrize("angle", [0.0, 0.6, math.pi / 2])
def test_head_circumference_of_a_filled_ellipse_matches_its_perimeter(angle):
    mask = ellipse_mask((300, 400), (150, 200), 120, 80, angle)
    spacing = 0.15
    expected = ramanujan(120 * spacing, 80 * spacing)
    assert head_circumference_mm(mask, (spacing, spacing)) == pytest.approx(expected, rel=0.005)
    fit = fit_ellipse(mask, (spacing, spacing))
    assert fit.a == pytest.approx(18.0, rel=0.01) and fit.b == pytest.approx(12.0, rel=0.01)


@pytest.mark.parametrize("angle", [0.3, 2.0])
def test_the_head_ellipse_is_the_skulls_when_the_mask_leaks_past_it(angle):
    """A predicted head that spills into the tissue beside it (one connected blob, more than 15% of
    the head's area): the outline fit finds the head's ellipse (centre, axes, angle), the
    moments' ellipse does not."""
    head = ellipse_mask((300, 400), (150, 200), 110, 75, angle)
    leak = ellipse_mask((300, 400), (70, 290), 60, 35, 0.0)
    assert (head & leak).any() and (leak & ~head).sum() > 0.15 * head.sum()
    spacing = (0.2, 0.2)
    expected = ramanujan(110 * 0.2, 75 * 0.2)
    fit = fit_head_ellipse(head | leak, spacing)
    assert fit.perimeter == pytest.approx(expected, rel=0.01)
    assert fit.a == pytest.approx(22.0, rel=0.02) and fit.b == pytest.approx(15.0, rel=0.02)
    assert fit.center == pytest.approx((30.0, 40.0), abs=0.4)
    assert abs(math.remainder(fit.angle - angle, math.pi)) < 0.03
    assert head_circumference_mm(head | leak, spacing) == fit.perimeter
    assert fit_ellipse(head | leak, spacing).perimeter > 1.08 * expected


def test_the_head_ellipse_is_deterministic_and_falls_back_on_tiny_masks():
    mask = ellipse_mask((120, 120), (60, 60), 40, 30, 0.4)
    assert fit_head_ellipse(mask).perimeter == fit_head_ellipse(mask).perimeter
    dot = np.zeros((9, 9), bool)
    dot[4, 4] = True
    assert fit_head_ellipse(dot) == fit_ellipse(dot)


def test_anisotropic_spacing_is_applied_per_axis():
    # a 40 x 80 px ellipse with 2 mm rows and 1 mm columns is a circle of radius 40 mm
    mask = ellipse_mask((100, 200), (50, 100), 40, 20)
    assert head_circumference_mm(mask, (2.0, 1.0)) == pytest.approx(2 * math.pi * 40, rel=0.01)
    assert area(mask, (2.0, 1.0)) == 2.0 * mask.sum()


def test_longest_diameter_is_the_diagonal_of_a_rectangle():
    mask = np.zeros((50, 50), bool)
    mask[10:40, 5:45] = True  # 30 rows x 40 columns
    assert longest_diameter_mm(mask, (0.5, 0.5)) == pytest.approx(0.5 * 50.0)


def test_a_stray_speck_does_not_change_the_measurement():
    mask = ellipse_mask((200, 200), (100, 100), 60, 40)
    speck = mask.copy()
    speck[2, 2] = True
    assert head_circumference_mm(speck) == pytest.approx(head_circumference_mm(mask))
    assert longest_diameter_mm(speck) == pytest.approx(longest_diameter_mm(mask))


def test_empty_mask_measures_zero_and_bad_spacing_is_refused():
    empty = np.zeros((8, 8), bool)
    assert head_circumference_mm(empty) == 0.0 and longest_diameter_mm(empty) == 0.0
    with pytest.raises(ValueError, match="spacing"):
        area(empty, (0.0, 1.0))


def test_parse_measurement_needs_the_unit_of_its_kind():
    assert parse_measurement("The <p>fetal head</p> <SEG> has a head circumference of 172.4 mm.") == (
        "head circumference",
        172.4,
    )
    assert parse_measurement("The area of the <p>liver</p> <SEG> is about 1.7 cm².") is None
    assert parse_measurement("It has an area of 40 mm².") == ("area", 40.0)


def test_ground_measurement_replaces_the_generated_number_with_the_masks():
    mask = ellipse_mask((300, 400), (150, 200), 120, 80)
    answer, info = ground_measurement(
        "The <p>fetal head</p> <SEG> has a head circumference of 12.0 mm.", mask, (0.1, 0.1)
    )
    expected = round(ramanujan(12.0, 8.0), 1)
    assert info["model_value"] == 12.0 and info["value"] == pytest.approx(expected, abs=0.2)
    assert answer == f"The <p>fetal head</p> <SEG> has a head circumference of {info['value']:.1f} mm."
    untouched, none = ground_measurement("It is the <p>liver</p> <SEG>.", mask, (1, 1))
    assert untouched == "It is the <p>liver</p> <SEG>." and none is None


def test_measurement_metrics_absolute_relative_published_and_missing():
    meta = {
        "measurement": {
            "kind": "head circumference",
            "unit": "mm",
            "structure": "fetal head",
            "value": 100.0,
            "reference": 98.0,
        }
    }
    results = [
        measurement_result("... a head circumference of 104.0 mm.", meta),
        measurement_result("... a head circumference of 97.0 mm.", meta),
        measurement_result("It is the <p>fetal head</p> <SEG>.", meta),
    ]
    assert measurement_result("anything", {"task": "segment"}) is None
    m = measurement_metrics(results)["fetal head: head circumference"]
    assert m["n"] == 3 and m["n_missing"] == 1
    assert m["mae"] == pytest.approx(3.5) and m["mean_rel_error"] == pytest.approx(0.035)
    assert m["mae_published"] == pytest.approx((6.0 + 1.0) / 2)


def test_eval_report_scores_numeric_answers_beside_the_masks():
    from eval_helpers import box_mask, make_record

    from mimo.eval import EvaluationReport, PredictedSegment, Prediction, SampleResult, score_sample

    head = box_mask(1, 7, 1, 7)
    meta = {"measurement": {"kind": "area", "unit": "mm²", "structure": "liver", "value": 36.0}}
    record = make_record(
        "m0", "measure", "The <p>liver</p> <SEG> has an area of 36 mm².", {"m0": head}, meta=meta
    )
    predicted = Prediction("The <p>liver</p> <SEG> has an area of 30 mm².", (PredictedSegment(head),))
    result = score_sample(predicted, record)
    assert result.meta["measurement"]["predicted"] == 30.0
    assert SampleResult.from_dict(result.to_dict()).meta == result.meta  # survives predictions.jsonl
    report = EvaluationReport([result])
    m = report.summary()["measurements"]["liver: area"]
    assert (m["n"], m["mae"], m["mean_rel_error"]) == (1, 6.0, pytest.approx(6 / 36))
    assert "## Measurements (numeric answers)" in report.to_markdown()
    assert report.summary()["by_structure"]["liver"]["dice"] == 1.0


def test_every_measurement_answer_template_states_a_parsable_value():
    from mimo.data.templates import BANKS

    kinds = {"M.hc.a": "head circumference", "M.area.a": "area", "M.diameter.a": "longest diameter"}
    for bank, kind in kinds.items():
        for template in BANKS[bank]:
            answer = template.format(P="<p>fetal head</p> <SEG>", v="12.3")
            assert parse_measurement(answer) == (kind, 12.3), template


def test_a_measurement_the_answer_leaves_out_is_appended_from_the_mask():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True  # 100 pixels of 0.5 x 0.5 mm
    answer, info = ground_measurement(
        "Here is the <p>liver</p> <SEG>; its area is 17.", mask, (0.5, 0.5), "What is the area of the liver?"
    )
    assert answer.endswith("Measured on the mask: area 25 mm².")
    assert info == {"kind": "area", "value": 25.0, "unit": "mm²", "model_value": None}
    assert parse_measurement(answer) == ("area", 25.0)
    # a question that asks for no measurement leaves the answer alone
    same, none = ground_measurement("It is the <p>liver</p> <SEG>.", mask, (0.5, 0.5), "Segment the liver.")
    assert same == "It is the <p>liver</p> <SEG>." and none is None
