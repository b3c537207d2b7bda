"""``mimo demo``: the shipped ``mimo-tiny`` answers several kinds of question on held-out images.

The images come from the test splits (``mimo/assets/heldout``): a slice of the real MNI152 brain
MRI template from the slab held out of training, a procedural abdominal CT phantom of a patient
held out of training, a real fetal-head ultrasound of an HC18 subject held out of training and a
real hippocampus MRI slice of an MSD Task04 patient held out of training. For each image the demo
asks

* a visual-referring question: a box drawn on a structure, "What is the structure in this box?";
* a grounding question: "Segment the <structure>.";
* a complex question taken from the image's held-out perspective-III record;
* where the image has a held-out measurement record (the real images), its measurement question,
  asked with the image's pixel size: the number is measured on the predicted mask
  (``mimo.core.measure``) and shown beside the published value where the dataset has one;

prints the answers, and writes an overlay PNG per answer and ``report.md`` with the Dice of
every grounded mask against the reference.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from mimo.core import rle
from mimo.core.files import atomic_save, atomic_write_text
from mimo.eval.segmentation import dice
from mimo.infer.predictor import Prediction, Predictor, resolve_model_dir

DEMO_IMAGES = (
    # (image under heldout/images, structure for the box, structure to segment)
    ("mni152_z058-072_z006.png", "right cerebral hemisphere", "white matter"),
    ("phantom_abdomen_ct_0045_z016.png", "liver", "spleen"),
    ("021_HC.png", "fetal head", "fetal head"),
    ("hippocampus_038_z016.png", "anterior hippocampus", "posterior hippocampus"),
)


def assets_dir() -> Path:
    return Path(str(resources.files("mimo") / "assets"))


@dataclass
class DemoItem:
    image_name: str
    kind: str
    question: str
    box: list[float] | None
    references: dict[str, np.ndarray]
    spacing: tuple[float, float] | None = None
    published: float | None = None


def _heldout() -> tuple[Path, list[dict]]:
    root = assets_dir() / "heldout"
    path = root / "records.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the packaged held-out samples are missing; reinstall mimo-med")
    return root, [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _references(records: list[dict]) -> dict[str, np.ndarray]:
    """Reference mask per grounded term, from the image's held-out records."""
    from mimo.core.answers import parse_answer

    refs: dict[str, np.ndarray] = {}
    for record in records:
        for turn in record["conversations"]:
            if turn["from"] != "gpt" or not turn.get("masks"):
                continue
            for item, key in zip(parse_answer(turn["value"]).items, turn["masks"], strict=False):
                if item.phrase and item.phrase not in refs:
                    refs[item.phrase] = rle.decode(record["masks"][key])
    return refs


def demo_items() -> list[tuple[Path, list[DemoItem]]]:
    root, records = _heldout()
    plan = []
    for image_name, box_term, segment_term in DEMO_IMAGES:
        mine = [r for r in records if Path(r["image"]).name == image_name]
        refs = _references(mine)
        for term in (box_term, segment_term):
            if term not in refs:
                raise ValueError(f"{image_name}: no held-out reference mask for {term!r}")
        ys, xs = np.nonzero(refs[box_term])
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        complex_record = next((r for r in mine if r.get("perspective") == "III"), None)
        items = [
            DemoItem(image_name, "visual-referring (box)", "What is the structure in this box?", box, refs),
            DemoItem(image_name, "grounding", f"Segment the {segment_term}.", None, refs),
        ]
        if complex_record is not None:
            question = complex_record["conversations"][0]["value"].replace("<image>", "").strip()
            items.append(DemoItem(image_name, "complex question", question, None, refs))
        measure_record = next((r for r in mine if r.get("perspective") == "measure"), None)
        if measure_record is not None:
            question = measure_record["conversations"][0]["value"].replace("<image>", "").strip()
            published = measure_record["meta"]["measurement"].get("reference")
            spacing = tuple(measure_record["spacing"])
            items.append(DemoItem(image_name, "measurement", question, None, refs, spacing, published))
        plan.append((root / "images" / image_name, items))
    return plan


def _measurement_note(measurement: dict, item: DemoItem) -> str:
    note = (
        f"{measurement['kind']} measured on the predicted mask: {measurement['value']:g} {measurement['unit']}"
        f" (pixel {item.spacing[0]:.3g} mm)"
    )
    if item.published is not None:
        note += f", published {item.published:g} {measurement['unit']}"
    return note


def run_demo(out_dir: Path, model_dir: Path | None = None, echo=print) -> Path:
    """Run the demo; returns the path of the Markdown report."""
    from mimo.infer.images import load_image
    from mimo.infer.render import overlay

    start = time.perf_counter()
    model_dir = resolve_model_dir(model_dir)
    from transformers.utils import logging

    logging.disable_progress_bar()  # "Loading weights" bars are noise in a demo
    predictor = Predictor.from_pretrained(model_dir)
    loaded = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# MIMO demo",
        "",
        f"Model: `{model_dir}` (loaded in {loaded:.1f} s). Images: held-out test splits "
        "(the MNI152 slice is from the axial slab held out of training; the phantom patient, the HC18 "
        "subject and the MSD hippocampus patient were held out).",
        "",
    ]
    for image_path, items in demo_items():
        image = load_image(image_path)
        lines += [f"## {image_path.name}", ""]
        echo(f"\n{image_path.name}")
        for index, item in enumerate(items):
            boxes = [item.box] if item.box else None
            prediction: Prediction = predictor.predict(
                image, item.question, boxes=boxes, spacing=item.spacing
            )
            picture = out_dir / f"{image_path.stem}_{index}.png"
            atomic_save(picture, overlay(image, prediction, boxes=boxes, min_side=256).save)
            scores = []
            for segment in prediction.segments:
                ref = item.references.get(segment.phrase or "")
                if ref is not None:
                    scores.append(f"{segment.phrase}: Dice {dice(segment.mask, ref):.2f}")
            shown_question = item.question + (f" (box {[round(v) for v in item.box]})" if item.box else "")
            echo(f"  [{item.kind}] Q: {shown_question}")
            if prediction.measurement is not None:
                scores.append(_measurement_note(prediction.measurement, item))
            echo(f"  A: {prediction.text}" + (f"   ({'; '.join(scores)})" if scores else ""))
            lines += [
                f"**{item.kind}.** Q: {shown_question}",
                "",
                f"A: {prediction.answer}",
                "",
                f"Masks against the held-out reference: {'; '.join(scores) if scores else 'none grounded'}",
                "",
                f"![{item.kind}]({picture.name})",
                "",
            ]
    lines.append(f"Total time: {time.perf_counter() - start:.1f} s.")
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    echo(f"\nreport: {report}")
    return report
