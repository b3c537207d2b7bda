"""Region prompts lie inside the image and (positive ones) inside the mask."""

import numpy as np

from mimo.data import regions as r


def ring_and_blob():
    yy, xx = np.mgrid[:80, :100]
    m = ((yy - 40) ** 2 / 400 + (xx - 30) ** 2 / 100) <= 1
    m |= (np.abs(yy - 60) < 3) & (xx > 50) & (xx < 98)  # a thin elongated structure
    return m


def test_points_boxes_scribbles_partial_masks():
    m = ring_and_blob()
    h, w = m.shape
    for seed in range(20):
        rng = np.random.default_rng(seed)
        p = r.sample_points(m, rng, n_positive=3, n_negative=2)
        for (x, y), lab in zip(p.points, p.labels, strict=True):
            assert 0 <= x <= w - 1 and 0 <= y <= h - 1
            assert m[int(y), int(x)] == bool(lab)
        x0, y0, x1, y1 = r.jittered_box(m, rng).box
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h
        assert m[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))].any()
        s = r.scribble(m, rng)
        assert len(s.strokes[0]) >= 2
        assert all(m[int(y), int(x)] for x, y in s.strokes[0])
        part = r.partial_mask(m, rng)
        assert part.any() and not (part & ~m).any()
        region, rmask = r.sample_region(m, rng, {"mask": 1.0}, mask_key="m3")
        assert region.mask == "m3" and rmask is not None and not (rmask & ~m).any()


def test_box_clipped_at_border():
    m = np.zeros((20, 20), bool)
    m[0:5, 15:20] = True
    for seed in range(10):
        x0, y0, x1, y1 = r.jittered_box(m, np.random.default_rng(seed), jitter=0.5).box
        assert 0 <= x0 <= x1 <= 20 and 0 <= y0 <= y1 <= 20
