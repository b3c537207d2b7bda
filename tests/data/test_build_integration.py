"""The builder with the real record generator (mimo.data.perspectives) on a generated nnU-Net set."""

import numpy as np
from dataset_fixtures import label_volume, make_nnunet

from mimo.core import rle
from mimo.core.records import read_records
from mimo.core.schema import REGION_TOKEN, SEG_TOKEN, BoxRegion, MaskRegion, PointRegion, ScribbleRegion
from mimo.data import imaging
from mimo.data.build import BuildConfig, build
from mimo.data.validate import validate_records

TERM_TO_ID = {"liver": 1, "left kidney": 2, "spleen": 3}


def _slice_masks(case_seed: int, k: int) -> dict[str, np.ndarray]:
    lab = label_volume(seed=case_seed)[::-1, ::-1, :]  # fixture is LPS; canonical is RAS+
    out = {}
    for term, v in TERM_TO_ID.items():
        m = imaging.slice_to_display(lab == v, 2, k)
        out[term] = m
    return out


def test_real_generator_four_perspectives_masks_regions(tmp_path):
    root = make_nnunet(tmp_path / "Dataset001_Toy")
    out = tmp_path / "out"
    report = build(
        [f"nnunet:{root}"],
        out,
        BuildConfig(ratios=None, splits={"train": 0.5, "test": 0.5}),
        seed=2,
        progress=False,
    )
    assert report["unmapped_labels"] == []  # kidney_left -> left kidney through the knowledge base
    recs = read_records(out / "train.jsonl") + read_records(out / "test.jsonl")
    assert {r.perspective for r in recs} >= {"I", "II", "III", "IV", "negative"}
    case_seed = {"pat01_a": 0, "pat02_a": 1}
    n_checked = 0
    for r in recs:
        # placeholders match
        assert sum(t.value.count(REGION_TOKEN) for t in r.conversations if t.from_ == "human") == len(
            r.regions
        )
        for t in r.conversations:
            assert t.value.count(SEG_TOKEN) == len(t.masks or [])
            assert "kidney_left" not in t.value  # raw names are never shown
        if r.perspective == "negative":
            assert all(not t.masks for t in r.conversations)
            continue
        truth = _slice_masks(case_seed[r.case], r.slice.index)
        union = np.logical_or.reduce(list(truth.values()))
        gpt_keys = [k for t in r.conversations if t.from_ == "gpt" for k in (t.masks or [])]
        for key in gpt_keys:
            m = rle.decode(r.masks[key])
            # every answer mask is exactly the label voxels of one structure in this slice
            assert any(np.array_equal(m, t) for t in truth.values()), (r.id, key)
            n_checked += 1
        if len(gpt_keys) == len(r.meta["structures"]):
            for key, term in zip(gpt_keys, r.meta["structures"], strict=True):
                np.testing.assert_array_equal(rle.decode(r.masks[key]), truth[term])
        for reg in r.regions:
            if isinstance(reg, PointRegion):
                for (x, y), lab in zip(reg.points, reg.labels, strict=True):
                    if lab == 1:
                        assert union[int(y), int(x)], (r.id, reg)
            elif isinstance(reg, ScribbleRegion):
                pts = [p for s in reg.strokes for p in s]
                inside = sum(union[int(round(y)), int(round(x))] for x, y in pts)
                assert inside >= 0.8 * len(pts), (r.id, reg)
            elif isinstance(reg, MaskRegion):
                m = rle.decode(r.masks[reg.mask])
                assert m.any() and not (m & ~union).any()
            elif isinstance(reg, BoxRegion):
                x0, y0, x1, y1 = (int(v) for v in reg.box)
                assert union[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1].any()
    assert n_checked > 20
    for split in ("train", "test"):
        rep = validate_records(out / f"{split}.jsonl")
        assert rep.ok, rep.summary()


def test_real_generator_same_seed_byte_identical(tmp_path):
    root = make_nnunet(tmp_path / "D", case_ids=("pat01_a", "pat02_a", "pat03_a"))
    outs = []
    for name, workers in (("a", 1), ("b", 2)):
        build([f"nnunet:{root}"], tmp_path / name, seed=9, workers=workers, progress=False)
        outs.append(
            b"".join((tmp_path / name / f).read_bytes() for f in ("train.jsonl", "val.jsonl", "test.jsonl"))
        )
    assert outs[0] == outs[1] and len(outs[0]) > 0
