"""The two real datasets' layouts: HC18's per-image pixel-size CSV (folder2d ``spacing_csv=``),
subjects split by number, and measurement records built from them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mimo.core.errors import MimoDataError
from mimo.core.measure import head_circumference_mm
from mimo.data.build import BuildConfig, build
from mimo.data.readers import list_source, parse_source

# HC18 publishes its pixel sizes and reference circumferences with exactly this header
HC18_HEADER = "filename,pixel size(mm),head circumference (mm)"


def make_hc18(root, rows):
    """HC18-like folder: ``NNN_HC.png`` / ``NNN_2HC.png`` images, filled head masks (255) and the CSV."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:60, :80]
    for name, _px, _hc in rows:
        image = ((xx * 3 + yy) % 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / name)
        mask = (((xx - 40) / 25.0) ** 2 + ((yy - 30) / 18.0) ** 2 <= 1).astype(np.uint8) * 255
        Image.fromarray(mask).save(root / "masks" / name)
    (root / "labels.json").write_text(json.dumps({"labels": {"255": "fetal head"}}))
    lines = [HC18_HEADER] + [f"{n},{px},{hc}" for n, px, hc in rows]
    (root / "pixel_size_and_HC.csv").write_text("\n".join(lines) + "\n")
    return root


ROWS = [("000_HC.png", 0.069135804, 44.3), ("000_2HC.png", 0.07, 45.1), ("001_HC.png", 0.08965852, 56.81)]
SOURCE = "folder2d:{root},modality=US,spacing_csv=pixel_size_and_HC.csv,patient_regex=^(\\d+)_"


def test_spacing_csv_gives_each_image_its_pixel_size_and_published_circumference(tmp_path):
    root = make_hc18(tmp_path / "hc18", ROWS)
    listing = list_source(parse_source(SOURCE.format(root=root)))
    assert [r.patient_id for r in listing.refs] == ["000", "000", "001"]  # NNN_2HC is subject NNN
    case = next(r for r in listing.refs if r.case_id == "001_HC").load()
    assert case.spacing == (0.08965852, 0.08965852)
    assert case.meta["reference_measurements"] == {"head circumference": 56.81}
    assert list(case.labels) == ["fetal head"]


def test_spacing_csv_errors_name_the_file(tmp_path):
    root = make_hc18(tmp_path / "hc18", ROWS)
    csv = root / "pixel_size_and_HC.csv"
    csv.write_text(HC18_HEADER + "\n000_HC.png,0.07,44.3\n")
    with pytest.raises(MimoDataError, match=r"pixel_size_and_HC.csv: no row for image 000_2HC.png"):
        list_source(parse_source(SOURCE.format(root=root)))
    csv.write_text("name,size\n")
    with pytest.raises(MimoDataError, match="expected columns 'filename' and 'pixel size"):
        list_source(parse_source(SOURCE.format(root=root)))
    csv.write_text(HC18_HEADER + "\n000_HC.png,-1,44.3\n000_2HC.png,abc,1\n001_HC.png,0.1,2\n")
    with pytest.raises(MimoDataError, match="line 2: pixel size '-1'"):
        list_source(parse_source(SOURCE.format(root=root)))


def test_build_makes_measurement_records_with_the_published_value(tmp_path):
    root = make_hc18(tmp_path / "hc18", ROWS)
    config = BuildConfig(
        ratios=None,
        splits={"train": 0.5, "test": 0.5},
        perspective={"perspectives": ["I", "measure"]},
    )
    report = build([SOURCE.format(root=root)], tmp_path / "out", config, progress=False)
    assert report["splits"]["train"]["patients"] == 1 and report["splits"]["test"]["patients"] == 1
    records = [json.loads(x) for s in ("train", "test") for x in (tmp_path / "out" / f"{s}.jsonl").open()]
    by_case = {}
    for r in records:
        by_case.setdefault(r["case"], set()).add(r["split"])
    assert by_case["000_HC"] == by_case["000_2HC"]  # one subject, one split
    measures = [r for r in records if r["perspective"] == "measure"]
    assert len(measures) == 3
    published = {n: hc for n, _, hc in ROWS}
    for r in measures:
        m = r["meta"]["measurement"]
        assert m["kind"] == "head circumference" and m["unit"] == "mm"
        assert m["reference"] == published[r["case"] + ".png"]
        # the answer states the value measured on the reference mask with the image's pixel size
        assert f"{m['value']:.1f} mm" in r["conversations"][-1]["value"]
        px = r["spacing"][0]
        expected = np.pi * (25 + 18) * px * (1 + 3 * ((7 / 43) ** 2) / (10 + np.sqrt(4 - 3 * (7 / 43) ** 2)))
        assert m["value"] == pytest.approx(expected, rel=0.03)


def test_max_side_downsamples_large_frames_and_scales_the_pixel_size(tmp_path):
    root = make_hc18(tmp_path / "hc18", ROWS)
    config = BuildConfig(ratios=None, splits={"train": 1.0}, perspective={"perspectives": ["measure"]})
    full = build([SOURCE.format(root=root)], tmp_path / "full", config, progress=False)
    small = build([SOURCE.format(root=root) + ",max_side=40"], tmp_path / "small", config, progress=False)
    assert full["splits"]["train"]["records"] == small["splits"]["train"]["records"] == 3

    def measures(out):
        return {
            r["case"]: r
            for r in map(json.loads, (tmp_path / out / "train.jsonl").open())
            if r["perspective"] == "measure"
        }

    for case, big in measures("full").items():
        little = measures("small")[case]
        assert Image.open(tmp_path / "small" / little["image"]).size == (40, 30)
        assert little["spacing"] == pytest.approx([2 * s for s in big["spacing"]])
        # the head measured on the halved mask with the doubled pixel size stays within 3%
        assert little["meta"]["measurement"]["value"] == pytest.approx(
            big["meta"]["measurement"]["value"], rel=0.03
        )


def test_hc18_as_released_outlines_beside_images_are_filled(tmp_path):
    """HC18 on Zenodo: ``training_set/NNN_HC.png`` with ``NNN_HC_Annotation.png`` (the head drawn
    as an ellipse outline) and ``training_set_pixel_size_and_HC.csv``."""
    root = tmp_path / "HC18"
    folder = root / "training_set"
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:240, :320]
    radius = np.sqrt(((xx - 160) / 120.0) ** 2 + ((yy - 120) / 90.0) ** 2)
    outline = (np.abs(radius - 1) < 0.008).astype(np.uint8) * 255
    for name in ("000_HC", "000_2HC", "001_HC"):
        Image.fromarray(((xx + yy) % 200).astype(np.uint8)).save(folder / f"{name}.png")
        Image.fromarray(outline).save(folder / f"{name}_Annotation.png")
    h = (30 / 210) ** 2
    perimeter_px = np.pi * 210 * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h)))  # the drawn ellipse
    rows = [HC18_HEADER] + [
        f"{n}.png,{px},{perimeter_px * px:.2f}"
        for n, px in (("000_HC", 0.1), ("000_2HC", 0.1), ("001_HC", 0.2))
    ]
    (root / "training_set_pixel_size_and_HC.csv").write_text("\n".join(rows) + "\n")
    source = (
        f"folder2d:{root},images=training_set,masks=training_set,mask_suffix=_Annotation,fill_holes=true,"
        "structure=fetal head,modality=US,spacing_csv=training_set_pixel_size_and_HC.csv,patient_regex=^(\\d+)_"
    )
    listing = list_source(parse_source(source))
    assert [r.case_id for r in listing.refs] == ["000_2HC", "000_HC", "001_HC"]  # annotations are no images
    case = listing.refs[2].load()
    head = case.labels["fetal head"]
    # filled: the whole interior (the outline alone is about 1100 pixels), plus the drawn line
    assert np.pi * 120 * 90 < head.sum() < np.pi * 120 * 90 * 1.03
    published = case.meta["reference_measurements"]["head circumference"]
    assert head_circumference_mm(head, case.spacing) == pytest.approx(published, rel=0.01)
