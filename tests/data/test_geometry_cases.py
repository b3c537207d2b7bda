"""Geometry on constructed masks, for radiological and flipped orientations."""

import numpy as np
import pytest

from mimo.data import geometry as g


def box(y0, y1, x0, x1, shape=(64, 64)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


A = box(20, 30, 45, 55)  # drawn on the image right
B = box(20, 30, 5, 15)  # drawn on the image left


def test_laterality_radiological_and_flipped():
    # radiological axial: image right = patient left
    assert g.body_side(A, "L", "P") == "left" and g.body_side(B, "L", "P") == "right"
    assert g.more_left(A, B, "L", "P") is True
    # flipped display: image right = patient right
    assert g.body_side(A, "R", "P") == "right"
    assert g.more_left(A, B, "R", "P") is False
    assert g.body_side(box(20, 30, 30, 34), "L", "P") == "midline"
    assert g.body_side(A, None, None) is None and g.more_left(A, B, None, "P") is None


def test_above_below_named_per_orientation():
    top, bottom = box(2, 10, 20, 30), box(40, 50, 20, 30)
    assert g.relative_directions(top, bottom, "L", "I") == ["S"]  # coronal: up is superior
    assert g.relative_directions(top, bottom, "L", "P") == ["A"]  # axial: up is anterior
    assert g.relative_directions(bottom, top, "P", "I") == ["I"]  # sagittal
    assert g.relative_directions(top, box(4, 12, 20, 30), "L", "I") == []  # too close to call


def test_invalid_orientation():
    with pytest.raises(ValueError, match="same patient axis"):
        g.relative_directions(A, B, "L", "R")
    with pytest.raises(ValueError, match="image_right"):
        g.body_side(A, "X", None)


def test_adjacency_containment_size_count_area():
    a, b = box(10, 20, 10, 20), box(10, 20, 21, 30)
    assert g.adjacent(a, b, k=2) and not g.adjacent(a, b, k=1)  # one-pixel gap
    assert g.adjacent(a, box(20, 30, 10, 20), k=0) is False and g.adjacent(a, box(19, 30, 10, 20), k=0)
    assert not g.adjacent(a, box(10, 20, 40, 50), k=2)
    organ = box(10, 40, 10, 40)
    hole = box(20, 25, 20, 25)
    assert g.contains(organ & ~hole, hole)  # lesion cut out of the organ mask still counts as inside
    assert not g.contains(hole, organ) and not g.contains(organ, organ)
    assert g.size_ranking({"small": hole, "big": organ}) == ["big", "small"]
    assert g.count_components(a | box(40, 50, 40, 50)) == 2
    assert g.count_components(a | box(40, 41, 40, 41), min_size=2) == 1
    assert g.area_mm2(a, (0.5, 2.0)) == pytest.approx(100.0)
