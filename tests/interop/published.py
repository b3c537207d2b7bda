"""Tiny datasets laid out as their maintainers publish them, quirks included.

Each function reproduces the published layout (file names, keys, value types) of one release,
as read from the maintainers' files and loaders (cited per function), not our writer's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.interop.fixtures import image, mask, png

# SA-Med2D-20M: SAMed2Dv1/ of the release (README of OpenGVLab/SAM-Med2D, torch_em's loader):
# images/<modality>--<dataset>--<case>--<axis>_<slice>.png, masks/<image stem>--<class id:4>_<instance:3>.png
CT1 = "ct_00--AbdomenCT1K--Case_00011--x_0040"
CT2 = "ct_00--AbdomenCT1K--Case_00012--x_0041"
LITS = "ct_00--LiTS--volume-7--z_0101"


def samed2d_release(root: Path, *, with_classes: bool = True, classes: dict | None = None) -> Path:
    """``SAMed2Dv1/``: images/, masks/ with numeric class ids, ``SAMed2D_v1.json`` (image ->
    masks, paths relative to SAMed2Dv1/) and ``SAMed2D_v1_class_mapping_id.json`` shaped
    ``{dataset: {class name: class id}}``, with a ``union_`` class."""
    index: dict[str, list[str]] = {}

    def add(stem: str, seed: int, masks: dict[str, np.ndarray]) -> None:
        png(root / "images" / f"{stem}.png", image(seed))
        index[f"images/{stem}.png"] = []
        for suffix, m in masks.items():
            rel = f"masks/{stem}--{suffix}.png"
            png(root / rel, m)
            index[f"images/{stem}.png"].append(rel)

    both_kidneys = np.maximum(mask(18, 4), mask(18, 26))
    for i, stem in enumerate((CT1, CT2)):
        add(
            stem,
            i,
            {
                "0000_000": mask(4, 4),
                "0001_000": mask(18, 4),
                "0002_000": mask(18, 26),
                "0003_000": both_kidneys,
            },
        )
    # two liver tumour instances that touch: one blob, two annotated instances
    add(
        LITS, 3, {"0000_001": mask(2, 2, 20, 30), "0001_001": mask(6, 6, 6, 4), "0001_002": mask(6, 10, 6, 4)}
    )
    (root / "SAMed2D_v1.json").write_text(json.dumps(index, indent=4))
    if with_classes:
        classes = classes or {
            "AbdomenCT1K": {
                "liver": 0,
                "kidney_left": 1,
                "kidney_right": 2,
                "union_kidney_left_kidney_right": 3,
            },
            "LiTS": {"liver": 0, "liver_tumor": 1},
        }
        (root / "SAMed2D_v1_class_mapping_id.json").write_text(json.dumps(classes, indent=4))
    return root


def slake_release(root: Path) -> Path:
    """SLAKE 1.0: ``train.json`` etc. are JSON lists of ``{img_id, img_name, question, answer,
    q_lang, location, modality, answer_type, base_type, content_type, triple, qid}``; the
    published ``train.json`` holds a sample whose answer is the empty string."""
    png(root / "imgs" / "xmlab0" / "source.jpg", image(7))
    base = {
        "img_id": 0,
        "img_name": "xmlab0/source.jpg",
        "location": "Lung",
        "modality": "X-Ray",
        "base_type": "vqa",
        "content_type": "Organ",
        "triple": ["vhead", "_", "_"],
    }
    train = [
        dict(base, qid=1, question="Is the lung healthy?", answer="No", q_lang="en", answer_type="CLOSED"),
        dict(
            base,
            qid=2,
            question="Which part of the body does this image belong to?",
            answer="",
            q_lang="en",
            answer_type="OPEN",
        ),
        dict(
            base,
            qid=3,
            question="这张图片属于身体的哪个部位?",
            answer="胸部",
            q_lang="zh",
            answer_type="OPEN",
        ),
    ]
    test = [
        dict(base, qid=9, question="What modality is used?", answer="X-Ray", q_lang="en", answer_type="OPEN")
    ]
    (root / "train.json").write_text(json.dumps(train, ensure_ascii=False, indent=4))
    (root / "test.json").write_text(json.dumps(test, ensure_ascii=False, indent=4))
    return root


def vqa_rad_release(root: Path) -> Path:
    """VQA-RAD (OSF release): ``VQA_RAD Dataset Public.json``, answers that are JSON integers and
    answer types with a trailing space (``"CLOSED "``)."""
    png(root / "VQA_RAD Image Folder" / "synpic29265.jpg", image(8))
    common = {
        "image_name": "synpic29265.jpg",
        "image_organ": "CHEST",
        "evaluation": "not evaluated",
        "question_rephrase": "NULL",
        "question_relation": "NULL",
        "question_frame": "NULL",
        "qid_linked_id": "03f451ca-de62-4617-9679-e836026a7642",
        "image_case_url": "https://medpix.nlm.nih.gov/case?id=48e1dd0e-8552-46ad-a354-5eb55be86de6",
    }
    rows = [
        dict(
            common,
            qid=0,
            answer=2,
            answer_type="OPEN",
            question_type="COUNT",
            question="How many ribs are fractured?",
            phrase_type="freeform",
        ),
        dict(
            common,
            qid=1,
            answer="Yes",
            answer_type="CLOSED ",
            question_type="PRES",
            question="Is there a pneumothorax?",
            phrase_type="test_freeform",
        ),
        dict(
            common,
            qid=2,
            answer=0,
            answer_type="OPEN",
            question_type="COUNT",
            question="How many nodules are seen?",
            phrase_type="test_para",
        ),
    ]
    (root / "VQA_RAD Dataset Public.json").write_text(json.dumps(rows, indent=4))
    return root


def llava_med_eval(root: Path) -> Path:
    """LLaVA-Med ``data/eval/llava_med_eval_qa50_qa.jsonl``: one question per line with
    ``question_id, image, pair_id, text (ending in <image>), gpt4_answer, fig_caption,
    in_text_mention, domain, type, fig_label`` and no conversations; images in the image folder."""
    png(root / "images" / "18063892_F3.jpg", image(9))
    rows = [
        {
            "question_id": 0,
            "image": "18063892_F3.jpg",
            "pair_id": "18063892_F3",
            "text": "What is the organ in the image?\n<image>",
            "gpt4_answer": "The organ in the image is the conjunctiva.",
            "fig_caption": "The gross histopathologic finding disclosed the portion of conjunctiva.",
            "in_text_mention": [{"tokens": "( Fig. 3 )", "entities": []}],
            "domain": {"chest_xray": False, "mri": False, "ct_scan": False, "histology": True, "gross": True},
            "type": "conversation",
            "fig_label": "Fig. 3",
        },
        {
            "question_id": 1,
            "image": "18063892_F3.jpg",
            "pair_id": "18063892_F3",
            "text": "Describe the image in detail.\n<image>",
            "gpt4_answer": "A cystic wall lined by cuboidal epithelium.",
            "fig_caption": "The gross histopathologic finding disclosed the portion of conjunctiva.",
            "in_text_mention": [],
            "domain": {"chest_xray": False, "mri": False, "ct_scan": False, "histology": True, "gross": True},
            "type": "detailed_description",
            "fig_label": "Fig. 3",
        },
    ]
    path = root / "llava_med_eval_qa50_qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def llava_vqa_test(root: Path, *, misspelt: bool = False) -> Path:
    """LLaVA-Med's LLaVA-format downstream test file (``test.json``, read by
    ``llava/eval/run_eval.py``): ``{id, image, answer_type: CLOSED|OPEN, conversations}``, one
    question per sample; PathVQA's file spells the key ``conversatons``."""
    png(root / "images" / "test_0001.jpg", image(10))
    key = "conversatons" if misspelt else "conversations"
    rows = [
        {
            "id": "test_0001_q0",
            "image": "test_0001.jpg",
            "answer_type": "CLOSED",
            key: [
                {
                    "from": "human",
                    "value": "<image>\nIs there fibrosis? Please choose from the following two options: [yes, no]",
                },
                {"from": "gpt", "value": "yes"},
            ],
        },
        {
            "id": "test_0001_q1",
            "image": "test_0001.jpg",
            "answer_type": "OPEN",
            key: [
                {"from": "human", "value": "<image>\nWhat is present?"},
                {"from": "gpt", "value": "granuloma"},
            ],
        },
    ]
    path = root / "test.json"
    path.write_text(json.dumps(rows, indent=1))
    return path


def mecovqa_quirks(data: Path) -> Path:
    """MeCoVQA as MedPLIB uses it: the image folder ``SAMed2Dv1/`` with ``llavamed/`` beside it
    (MedPLIB resolves ``llavamed/...`` against the folder above the image folder); some images
    listed without ``.png``."""
    root = data / "SAMed2Dv1"
    png(root / "images" / f"{CT1}.png", image(11))
    png(root / "masks" / f"{CT1}--0000_000.png", mask(4, 4))
    png(data / "llavamed" / "images" / "PMC100_fig2.jpg", image(12))
    samples = [
        {
            "id": "a",
            "image": f"images/{CT1}",
            "answer_type": "closed",
            "conversations": [
                {"from": "human", "value": "<image>\nIs this a CT scan?"},
                {"from": "gpt", "value": "Yes"},
            ],
        },
        {
            "id": "b",
            "image": "llavamed/images/PMC100_fig2.jpg",
            "answer_type": "open",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat does the figure show?"},
                {"from": "gpt", "value": "A chest radiograph."},
            ],
        },
        {
            "id": "c",
            "image": f"images/{CT1}.png",
            "conversations": [
                {"from": "human", "value": "<image>\nSegment the liver."},
                {"from": "gpt", "value": f"It is <SEG><mask>masks/{CT1}--0000_000.png</mask>."},
            ],
        },
    ]
    path = data / "MeCoVQA" / "test" / "MeCoVQA_Complex_VQA_test.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(samples, indent=2))
    return root


def samed2d_demo(repo: Path) -> Path:
    """SAM-Med2D's ``data_demo/`` (OpenGVLab/SAM-Med2D): class names in the mask file names
    (``amos_0004_75_liver_000.png``), ``image2label_train.json`` (image -> masks) and
    ``label2image_test.json`` (mask -> image), paths written from the repository root
    (``data_demo/images/...``), masks stored as 0/255."""
    root = repo / "data_demo"
    train = {"amos_0006_90": ["liver_000", "spleen_000", "aorta_000"]}
    test = {"s0619_32": ["hip_left_000", "hip_left_001", "colon_000"]}
    places = {
        "liver_000": (4, 4),
        "spleen_000": (18, 26),
        "aorta_000": (18, 4),
        "hip_left_000": (4, 4),
        "hip_left_001": (4, 26),
        "colon_000": (20, 14),
    }
    index: dict[str, list[str]] = {}
    inverse: dict[str, str] = {}
    for k, (stem, masks) in enumerate([*train.items(), *test.items()]):
        png(root / "images" / f"{stem}.png", image(20 + k))
        for m in masks:
            png(root / "masks" / f"{stem}_{m}.png", mask(*places[m]))
            if stem in train:
                index.setdefault(f"data_demo/images/{stem}.png", []).append(f"data_demo/masks/{stem}_{m}.png")
            else:
                inverse[f"data_demo/masks/{stem}_{m}.png"] = f"data_demo/images/{stem}.png"
    (root / "image2label_train.json").write_text(json.dumps(index, indent=4))
    (root / "label2image_test.json").write_text(json.dumps(inverse, indent=4))
    return root
