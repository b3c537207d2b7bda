"""Tiny datasets written exactly in each publisher's form (see mimo.data.interop docstrings)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 32, 40
IMG = "ct_00--AbdomenCT1K--Case_00001--z_0061.png"
IMG2 = "mr_00--BraTS--Case_00007--x_0010.png"


def png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (H, W), dtype=np.uint8)


def mask(y0: int, x0: int, h: int = 8, w: int = 10) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y0 : y0 + h, x0 : x0 + w] = 255
    return m


def mecovqa(root: Path, *, jsonl: bool = False) -> Path:
    """SAMed2D_v1-style image folder + a MeCoVQA-G / region-VQA / G+ JSON list."""
    png(root / "images" / IMG, image(0))
    png(root / "images" / IMG2, image(1))
    png(root / "masks" / (IMG[:-4] + "--liver_000.png"), mask(4, 4))
    png(root / "masks" / (IMG[:-4] + "--spleen_000.png"), mask(18, 22))
    png(root / "masks" / (IMG2[:-4] + "--tumor_000.png"), mask(10, 12))
    samples = [
        {
            "id": "g-0",
            "image": f"images/{IMG}",
            "conversations": [
                {"from": "human", "value": "<image>\nPlease segment the liver in this image."},
                {"from": "gpt", "value": f"Sure, it is <SEG><mask>masks/{IMG[:-4]}--liver_000.png</mask>."},
            ],
        },
        {
            "id": "r-1",
            "image": f"images/{IMG2}",
            "answer_type": "open",
            "conversations": [
                {
                    "from": "human",
                    "value": f"<image>\nWhat is in <region>masks/{IMG2[:-4]}--tumor_000.png</region>?",
                },
                {"from": "gpt", "value": "A tumor."},
            ],
        },
        {
            "id": "gplus-2",
            "image": f"images/{IMG}",
            "conversations": [
                {"from": "human", "value": "<image>\nSegment the liver and the spleen."},
                {
                    "from": "gpt",
                    "value": f"The liver <SEG> <mask>masks/{IMG[:-4]}--liver_000.png</mask> and the spleen "
                    f"<SEG><mask>masks/{IMG[:-4]}--spleen_000.png</mask>.",
                },
            ],
        },
        {
            "id": "vqa-3",
            "image": f"images/{IMG}",
            "answer_type": "closed",
            "conversations": [
                {"from": "human", "value": "<image>\nIs this a CT image?"},
                {"from": "gpt", "value": "Yes"},
            ],
        },
    ]
    path = root / ("MeCoVQA_G_test.jsonl" if jsonl else "MeCoVQA_G_test.json")
    if jsonl:
        path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    else:
        path.write_text(json.dumps(samples, indent=2, ensure_ascii=False) + "\n")
    return path


def samed2d(root: Path) -> Path:
    stems = [IMG[:-4], "ct_00--AbdomenCT1K--Case_00002--z_0030", IMG2[:-4]]
    mapping = {}
    for i, stem in enumerate(stems):
        png(root / "images" / f"{stem}.png", image(i))
        names = [
            ("liver", "000", mask(4, 4)),
            ("kidney_left", "000", mask(18, 4)),
            ("kidney_left", "001", mask(18, 26)),
        ]
        if stem.startswith("mr"):
            names = [("brain", "000", mask(6, 6, 20, 28))]
        mapping[f"images/{stem}.png"] = []
        for label, inst, m in names:
            rel = f"masks/{stem}--{label}_{inst}.png"
            png(root / rel, m)
            mapping[f"images/{stem}.png"].append(rel)
    path = root / "SAMed2D_v1.json"
    path.write_text(json.dumps(mapping, indent=4))
    return path


def slake(root: Path) -> None:
    png(root / "imgs" / "xmlab1" / "source.jpg", image(2))
    png(root / "imgs" / "xmlab2" / "source.jpg", image(3))
    base = {"img_id": 1, "location": "Abdomen", "modality": "CT", "content_type": "Organ", "base_type": "vqa"}
    for split, qs in {
        "train": [
            ("xmlab1", "Does the picture contain liver?", "Yes", "CLOSED", "en"),
            ("xmlab1", "图中有肝脏吗?", "是", "CLOSED", "zh"),
        ],
        "validate": [("xmlab2", "Which organ is abnormal?", "Liver", "OPEN", "en")],
        "test": [("xmlab2", "What modality is used?", "CT", "OPEN", "en")],
    }.items():
        rows = [
            dict(base, qid=i, img_name=f"{d}/source.jpg", question=q, answer=a, answer_type=t, q_lang=lang)
            for i, (d, q, a, t, lang) in enumerate(qs)
        ]
        (root / f"{split}.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1))


def vqa_rad(root: Path) -> None:
    folder = root / "VQA_RAD Image Folder"
    png(folder / "synpic54610.jpg", image(4))
    rows = [
        {
            "qid": 0,
            "image_name": "synpic54610.jpg",
            "image_organ": "HEAD",
            "answer": "Yes",
            "answer_type": "CLOSED",
            "question_type": "PRES",
            "question": "Are regions of the brain infarcted?",
            "phrase_type": "freeform",
        },
        {
            "qid": 1,
            "image_name": "synpic54610.jpg",
            "image_organ": "HEAD",
            "answer": 2,
            "answer_type": "OPEN",
            "question_type": "COUNT",
            "question": "How many lesions are there?",
            "phrase_type": "test_freeform",
        },
    ]
    (root / "VQA_RAD Dataset Public.json").write_text(json.dumps(rows))


def pathvqa(root: Path, form: str = "csv") -> None:
    for split, name in (("train", "train_0001"), ("test", "test_0001")):
        png(root / "images" / split / f"{name}.jpg", image(5))
        rows = [
            {"image": name, "question": "Is there fibrosis?", "answer": "yes"},
            {"image": name, "question": "What is present?", "answer": "granuloma"},
        ]
        path = root / "qas" / split / f"{split}_qa.{form}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if form == "csv":
            with path.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=["image", "question", "answer"])
                writer.writeheader()
                writer.writerows(rows)
        elif form == "json":
            path.write_text(json.dumps(rows))
        else:  # the maintainers' pickle (never loaded)
            path.write_bytes(b"\x80\x04not loaded")


def llava_med(root: Path) -> Path:
    png(root / "images" / "PMC1_fig1.jpg", image(6))
    rows = [
        {
            "id": "PMC1_fig1",
            "image": "images/PMC1_fig1.jpg",
            "conversations": [
                {"from": "human", "value": "What is shown in the image?\n<image>"},
                {"from": "gpt", "value": "A chest CT scan showing a nodule."},
                {"from": "human", "value": "Where is it?"},
                {"from": "gpt", "value": "In the right upper lobe."},
            ],
        },
    ]
    path = root / "llava_med_instruct_fixture.json"
    path.write_text(json.dumps(rows))
    return path
