"""benchmarks/unet_baseline.py: the MONAI U-Net anchor trains on a build's records and is scored
by mimo.eval's own metrics (masks per structure, measurements from its mask)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mimo.core.measure import head_circumference_mm
from mimo.data.build import BuildConfig, build

pytest.importorskip("monai")
ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("unet_baseline", ROOT / "benchmarks" / "unet_baseline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _heads(root: Path, n: int = 6) -> Path:
    """A folder2d set of bright discs ("fetal head") on noise, with a per-image pixel-size CSV."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :64]
    lines = ["filename,pixel size(mm),head circumference (mm)"]
    for i in range(n):
        cy, cx, r = 20 + i, 28 + 2 * i, 10 + i
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        image = (rng.integers(0, 60, mask.shape) + 150 * mask).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"{i:03d}_HC.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{i:03d}_HC.png")
        lines.append(f"{i:03d}_HC.png,0.2,{2 * np.pi * r * 0.2:.2f}")
    (root / "labels.json").write_text(json.dumps({"255": "fetal head"}))
    (root / "pixel_size_and_HC.csv").write_text("\n".join(lines) + "\n")
    return root


def test_unet_trains_on_the_records_and_is_scored_like_the_model(tmp_path):
    unet = _script()
    root = _heads(tmp_path / "heads")
    source = f"folder2d:{root},modality=US,spacing_csv=pixel_size_and_HC.csv,patient_regex=^(\\d+)_"
    config = BuildConfig(
        ratios=None,
        splits={"train": 0.5, "test": 0.5},
        perspective={"perspectives": ["I", "negative", "measure"]},
    )
    build([source], tmp_path / "out", config, progress=False)
    out = tmp_path / "unet"
    assert (
        unet.main(
            [
                "train",
                str(tmp_path / "out" / "train.jsonl"),
                "--out",
                str(out),
                "--seconds",
                "60",
                "--max-steps",
                "40",
                "--size",
                "32",
                "--batch-size",
                "3",
                "--lr",
                "0.01",
            ]
        )
        == 0
    )
    info = json.loads((out / "unet.json").read_text())
    assert info["classes"] == ["fetal head"] and info["steps"] == 40 and info["cpu_seconds"] > 0
    assert json.loads((out / "snapshots" / "step40" / "unet.json").read_text()) == info
    short = tmp_path / "unet-cpu"
    args = ["train", str(tmp_path / "out" / "train.jsonl"), "--out", str(short), "--size", "32"]
    assert unet.main([*args, "--batch-size", "3", "--seconds", "600", "--cpu-seconds", "0.001"]) == 0
    assert json.loads((short / "unet.json").read_text())["steps"] == 1  # the CPU budget, not the clock

    test = tmp_path / "out" / "test.jsonl"
    assert unet.main(["eval", str(out), str(test), "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert "fetal head" in report["by_structure"]
    assert report["by_structure"]["fetal head"]["dice"] > 0.5  # a bright disc is learnt in 40 steps
    measured = report["measurements"]["fetal head: head circumference"]
    assert measured["n"] == 3 and measured["n_missing"] == 0 and measured["n_published"] == 3
    # the U-Net's number is the measurement of its own mask
    base = unet.UNetBaseline(out)
    sample = next(s for s in report["samples"] if s["perspective"] == "measure")
    image_path = tmp_path / "out" / sample["image"]
    mask = base.probabilities(np.asarray(Image.open(image_path)))[0] > 0.5
    stated = sample["meta"]["measurement"]["predicted"]
    assert stated == pytest.approx(head_circumference_mm(mask, (0.2, 0.2)), abs=0.051)
