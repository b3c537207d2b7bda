"""Medical VQA benchmarks in their maintainers' forms: VQA-RAD, SLAKE, PathVQA, and
LLaVA-Med's instruction JSON. All become perspective ``vqa`` records; the open/closed
answer type is kept in ``meta["answer_type"]`` (``open``/``closed``) beside the raw fields.

- SLAKE (Liu et al. 2021): ``train.json``, ``validate.json``, ``test.json``, each a list of
  ``{qid, img_id, img_name, question, answer, answer_type: OPEN|CLOSED, q_lang: en|zh,
  modality, location, content_type, base_type, ...}``; images at ``imgs/<img_name>``. Only
  ``q_lang == "en"`` is kept (option ``lang``); ``validate`` is our ``val``.
- VQA-RAD (Lau et al. 2018): ``VQA_RAD Dataset Public.json``, a list of ``{qid, image_name,
  image_organ, question, answer, answer_type: OPEN|CLOSED, question_type, phrase_type, ...}``;
  images in ``VQA_RAD Image Folder/``; ``phrase_type`` ``test_*`` is the test split.
- PathVQA (He et al. 2020): the maintainers ship ``qas/<split>/<split>_qa.pkl`` pickles, which
  are never loaded here (unpickling runs arbitrary code). Accepted instead: the same table
  as CSV, JSON/JSONL (columns ``image``, ``question``, ``answer`` [, ``answer_type``]) with
  images at ``images/<split>/<image>.jpg``, or the Hugging Face parquet (``image`` as
  ``{bytes, path}``; needs pyarrow). Without ``answer_type``, a yes/no answer is closed.
- LLaVA-Med (Li et al. 2023): a JSON list of ``{id, image, conversations: [{from, value}]}``
  with ``<image>`` in the first human turn; images relative to the image folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import ValidationError

from mimo.core.errors import MimoDataError
from mimo.core.images import LIMITS
from mimo.core.schema import IMAGE_TOKEN, REGION_TOKEN, SEG_TOKEN, Record
from mimo.data.interop.common import (
    InteropSource,
    Item,
    UnusableSample,
    answer_type_of,
    copy_image,
    failing,
    iter_json_samples,
    resolve_image,
    resolve_under,
    safe_name,
    source_file,
    source_files,
)

SLAKE_MODALITY = {"ct": "CT", "mri": "MR", "mr": "MR", "x-ray": "XR", "xray": "XR"}
SLAKE_SPLITS = {"train": "train", "validate": "val", "val": "val", "test": "test"}


def _text(value: object, where: str, field: str, role: str | None = None) -> str:
    """A question/answer field as text: integers (VQA-RAD's counts) become text; a missing field
    is an error, an empty one makes the sample unusable (dropped, counted as ``empty <role>``)."""
    if value is None or isinstance(value, dict | list):
        raise MimoDataError(f"{where}: field {field!r} is missing (expected text)")
    text = str(value).strip()
    if not text:
        raise UnusableSample(f"empty {role or field}", where)
    for token in (REGION_TOKEN, SEG_TOKEN):
        if token in text:
            raise MimoDataError(f"{where}: field {field!r} uses the reserved token {token}")
    return text


def _answer_type(raw: object, answer: str) -> str:
    """The published answer type; without one, a yes/no answer is closed."""
    return answer_type_of(raw) or ("closed" if answer.strip().lower() in ("yes", "no") else "open")


def vqa_record(
    *,
    rid: str,
    kind: str,
    name: str,
    image_rel: str | None,
    question: str,
    answer: str,
    answer_type: str,
    modality: str | None,
    fields: dict,
    where: str,
) -> Record:
    obj = {
        "id": rid,
        "image": image_rel,
        "modality": modality,
        "source": f"{kind}:{name}",
        "perspective": "vqa",
        "conversations": [
            {"from": "human", "value": f"{IMAGE_TOKEN}\n{question}" if image_rel else question},
            {"from": "gpt", "value": answer},
        ],
        "meta": {"benchmark": kind, "answer_type": answer_type, kind: fields},
    }
    try:
        return Record.model_validate({k: v for k, v in obj.items() if v is not None})
    except ValidationError as exc:
        raise MimoDataError(f"{where}: not a valid record ({exc.errors()[0]['msg']})") from None


def _qa_item(
    kind,
    name,
    root,
    out_dir,
    where,
    rid,
    sample,
    *,
    image_field,
    image_dir,
    question_field="question",
    answer_field="answer",
    modality=None,
    split=None,
    image_suffix="",
):
    def make() -> Record:
        if not isinstance(sample, dict):
            raise MimoDataError(f"{where}: expected an object, got {type(sample).__name__}")
        question = _text(sample.get(question_field), where, question_field)
        answer = _text(sample.get(answer_field), where, answer_field)
        img = sample.get(image_field)
        if not isinstance(img, str) or not img.strip():
            raise MimoDataError(f"{where}: field {image_field!r} must name the image file")
        rel = f"{image_dir}/{img.strip()}{image_suffix}" if image_dir else img.strip() + image_suffix
        src = resolve_under(root, rel, where, image_field)
        image_rel = copy_image(src, out_dir, Path("images") / name / rel)
        mod = modality(sample) if callable(modality) else modality
        fields = {k: v for k, v in sample.items()}
        return vqa_record(
            rid=rid,
            kind=kind,
            name=name,
            image_rel=image_rel,
            question=question,
            answer=answer,
            answer_type=_answer_type(sample.get("answer_type"), answer),
            modality=mod,
            fields=fields,
            where=where,
        )

    return Item(where, make, split, rid)


# ------------------------------------------------------------------------------ SLAKE


def read_slake(
    root,
    out_dir=None,
    *,
    json: str | None = None,
    lang: str = "en",
    name: str | None = None,  # noqa: A002
    split: str | None = None,
) -> InteropSource:
    """SLAKE (see the module docstring); ``json=`` picks one file, default all three."""
    root = Path(root)
    files = (
        [source_file(root, json)]
        if json
        else [root / f"{s}.json" for s in ("train", "validate", "test") if (root / f"{s}.json").is_file()]
    )
    if not files:
        raise MimoDataError("expected train.json / validate.json / test.json (SLAKE) or json=FILE", root)
    name = safe_name(name or root.name)
    out = InteropSource()
    for path in files:
        file_split = split or SLAKE_SPLITS.get(path.stem.lower(), "train")
        for where, i, sample in iter_json_samples(path, "SLAKE JSON"):
            rid = f"slake_{name}_{file_split}_{i:06d}"
            if isinstance(sample, MimoDataError):
                out.items.append(Item(where, failing(sample), file_split, rid))
                continue
            if isinstance(sample, dict) and lang and str(sample.get("q_lang", "en")) != lang:
                continue
            out.items.append(
                _qa_item(
                    "slake",
                    name,
                    root,
                    out_dir,
                    where,
                    rid,
                    sample,
                    image_field="img_name",
                    image_dir="imgs",
                    modality=lambda s: SLAKE_MODALITY.get(str(s.get("modality", "")).lower()),
                    split=file_split,
                )
            )
    return out


# ------------------------------------------------------------------------------ VQA-RAD

VQA_RAD_JSON = "VQA_RAD Dataset Public.json"
VQA_RAD_IMAGES = "VQA_RAD Image Folder"


def read_vqa_rad(
    root,
    out_dir=None,
    *,
    json: str | None = None,
    images: str = VQA_RAD_IMAGES,  # noqa: A002
    name: str | None = None,
    split: str | None = None,
) -> InteropSource:
    """VQA-RAD (see the module docstring)."""
    root = Path(root)
    path = source_file(root, json or VQA_RAD_JSON)
    name = safe_name(name or "vqa_rad")
    out = InteropSource()
    for where, i, sample in iter_json_samples(path, "VQA-RAD JSON"):
        rid = f"vqa-rad_{name}_{i:06d}"
        if isinstance(sample, MimoDataError):
            out.items.append(Item(where, failing(sample), split or "train", rid))
            continue
        phrase = str(sample.get("phrase_type", "")) if isinstance(sample, dict) else ""
        s = split or ("test" if phrase.startswith("test") else "train")
        out.items.append(
            _qa_item(
                "vqa-rad",
                name,
                root,
                out_dir,
                where,
                rid,
                sample,
                image_field="image_name",
                image_dir=images,
                split=s,
            )
        )
    return out


# ------------------------------------------------------------------------------ PathVQA

PATHVQA_TABLES = (".csv", ".json", ".jsonl", ".parquet")


def _pathvqa_files(root: Path, json_opt: str | None) -> list[Path]:
    if json_opt:
        return source_files(root, json_opt)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in PATHVQA_TABLES
        and p.is_file()
        and any(s in p.stem.lower() for s in ("train", "val", "test"))
    )
    if not files:
        pickles = sorted(root.rglob("*.pkl"))
        hint = (
            (
                f" (found {len(pickles)} pickle file(s), e.g. {pickles[0].relative_to(root)}: pickles are not loaded "
                "because unpickling can run arbitrary code; export them to CSV/JSON, or use the parquet release)"
            )
            if pickles
            else ""
        )
        raise MimoDataError(f"no PathVQA table (*train*/*val*/*test* .csv/.json/.jsonl/.parquet){hint}", root)
    return files


def _split_of(path: Path) -> str:
    low = path.stem.lower()
    return "test" if "test" in low else "val" if "val" in low else "train"


def _table_rows(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        raise MimoDataError(
            "pickle files are not loaded (unpickling can run arbitrary code); use CSV/JSON/parquet", path
        )
    if suffix in (".json", ".jsonl"):
        yield from iter_json_samples(path, "PathVQA table")
        return
    if suffix == ".csv":
        if not path.is_file():
            raise MimoDataError("PathVQA CSV not found", path)
        with path.open(newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                yield f"{path}:{i + 2}", i, row
        return
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise MimoDataError(f"reading parquet needs pyarrow ({exc}); pip install pyarrow", path) from None
    for i, row in enumerate(frame.to_dict("records")):
        yield f"{path}: row {i}", i, row


def read_pathvqa(
    root,
    out_dir=None,
    *,
    json: str | None = None,
    name: str | None = None,  # noqa: A002
    split: str | None = None,
) -> InteropSource:
    """PathVQA from CSV/JSON/JSONL/parquet tables (never pickles; see the module docstring)."""
    root = Path(root)
    name = safe_name(name or "pathvqa")
    out = InteropSource()
    for path in _pathvqa_files(root, json):
        s = split or _split_of(path)
        for where, i, row in _table_rows(path):
            rid = f"pathvqa_{name}_{s}_{path.stem}_{i:06d}"
            if isinstance(row, MimoDataError):
                out.items.append(Item(where, failing(row), s, rid))
            elif isinstance(row, dict) and isinstance(row.get("image"), dict):
                out.items.append(Item(where, _parquet_maker(row, where, out_dir, name, rid, s), s, rid))
            else:
                img = str(row.get("image", "")) if isinstance(row, dict) else ""
                suffix = "" if Path(img).suffix else ".jpg"
                out.items.append(
                    _qa_item(
                        "pathvqa",
                        name,
                        root,
                        out_dir,
                        where,
                        rid,
                        row,
                        image_field="image",
                        image_dir=f"images/{s}",
                        split=s,
                        image_suffix=suffix,
                    )
                )
    return out


def _parquet_maker(row, where, out_dir, name, rid, split):
    def make() -> Record:
        question = _text(row.get("question"), where, "question")
        answer = _text(row.get("answer"), where, "answer")
        image = row["image"]
        data = image.get("bytes")
        if not data:
            raise MimoDataError(f"{where}: field 'image' has no bytes")
        rel = Path("images") / name / split / f"{safe_name(Path(str(image.get('path') or rid)).stem)}.png"
        if out_dir is not None:
            import io

            from PIL import Image

            dst = Path(out_dir) / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                with Image.open(io.BytesIO(data)) as im:
                    LIMITS.check_image(im.height, im.width, f"{where}: field 'image'")  # before decoding
                    im.save(dst)
            except MimoDataError:
                raise
            except Exception as exc:
                raise MimoDataError(f"{where}: field 'image' is not a readable image ({exc})") from None
        fields = {k: v for k, v in row.items() if k != "image"}
        return vqa_record(
            rid=rid,
            kind="pathvqa",
            name=name,
            image_rel=rel.as_posix(),
            question=question,
            answer=answer,
            answer_type=_answer_type(row.get("answer_type"), answer),
            modality="pathology",
            fields=fields,
            where=where,
        )

    return make


# ------------------------------------------------------------------------------ LLaVA-Med


LLAVA_TURN_KEYS = ("conversations", "conversatons")  # LLaVA-Med's PathVQA test file misspells it
LLAVA_MED_DOMAINS = {"chest_xray": "XR", "ct_scan": "CT", "mri": "MR", "histology": "pathology"}


def _llava_split(path: Path) -> str:
    low = path.stem.lower()
    return "test" if "test" in low or "eval" in low else "val" if "val" in low else "train"


def read_llava_med(
    root,
    out_dir=None,
    *,
    json: str | None = None,
    name: str | None = None,  # noqa: A002
    split: str | None = None,
) -> InteropSource:
    """LLaVA-Med JSON/JSONL (``json=``, relative to ROOT or absolute); images under ROOT.

    Read as published: instruction data (``conversations``), the LLaVA-format VQA-RAD / SLAKE /
    PathVQA test files (``answer_type`` kept; PathVQA's key is spelt ``conversatons``) and the
    evaluation questions ``llava_med_eval_qa50_qa.jsonl`` (``question_id``, ``text``,
    ``gpt4_answer``, ``fig_caption``, ``type``, ``domain``; no conversations). The split comes
    from the file name (``test``/``eval`` -> test, ``val`` -> val, else train) unless ``split=``.
    """
    root = Path(root)
    if not json:
        files = sorted([*root.glob("*.json"), *root.glob("*.jsonl")])
        if len(files) != 1:
            raise MimoDataError("expected json=FILE (e.g. llava_med_instruct_60k_inline_mention.json)", root)
        path = files[0]
    else:
        path = source_file(root, json)
    name = safe_name(name or path.stem)
    file_split = split or _llava_split(path)
    out = InteropSource()
    for where, i, sample in iter_json_samples(path, "LLaVA-Med JSON"):
        rid = f"llava-med_{name}_{i:07d}"
        make = (
            failing(sample)
            if isinstance(sample, MimoDataError)
            else _llava_maker(sample, where, root, out_dir, name, rid)
        )
        out.items.append(Item(where, make, file_split, rid))
    return out


def _llava_turns(sample: dict, where: str) -> list[dict]:
    """The sample's turns: its ``conversations`` (or ``conversatons``), or the evaluation form's
    ``text`` + ``gpt4_answer``."""
    key = next((k for k in LLAVA_TURN_KEYS if k in sample), None)
    if key is None and "text" in sample and "gpt4_answer" in sample:
        return [
            {"from": "human", "value": _text(sample["text"], where, "text", "question")},
            {"from": "gpt", "value": _text(sample["gpt4_answer"], where, "gpt4_answer", "answer")},
        ]
    raw = sample.get(key) if key else None
    if not isinstance(raw, list) or not raw:
        raise MimoDataError(
            f"{where}: expected a non-empty 'conversations' list (LLaVA) or 'text' + 'gpt4_answer' "
            "(LLaVA-Med evaluation questions)"
        )
    turns = []
    for j, turn in enumerate(raw):
        if not isinstance(turn, dict) or turn.get("from") not in ("human", "gpt") or "value" not in turn:
            raise MimoDataError(f"{where}: {key}[{j}] must be {{'from': 'human'|'gpt', 'value': str}}")
        value = _text(turn["value"], where, f"{key}[{j}]", "answer" if turn["from"] == "gpt" else "question")
        turns.append({"from": turn["from"], "value": value})
    if turns[0]["from"] != "human":
        raise MimoDataError(f"{where}: {key}[0] must be a human turn")
    return turns


def _llava_modality(sample: dict) -> str | None:
    domain = sample.get("domain")
    if isinstance(domain, dict):
        found = [m for k, m in LLAVA_MED_DOMAINS.items() if domain.get(k) is True]
        return found[0] if len(set(found)) == 1 else None
    return None


def _llava_maker(sample, where, root, out_dir, name, rid):
    def make() -> Record:
        if not isinstance(sample, dict):
            raise MimoDataError(f"{where}: expected an object, got {type(sample).__name__}")
        turns = _llava_turns(sample, where)
        image_rel = None
        if sample.get("image"):
            src, found = resolve_image(root, sample["image"], where)
            image_rel = copy_image(src, out_dir, Path("images") / name / found)
            if IMAGE_TOKEN not in turns[0]["value"]:
                turns[0]["value"] = f"{IMAGE_TOKEN}\n{turns[0]['value']}"
        fields = {k: v for k, v in sample.items() if k not in LLAVA_TURN_KEYS}
        meta = {"benchmark": "llava-med", "llava-med": fields}
        answer_type = answer_type_of(sample.get("answer_type"))
        if answer_type:
            meta["answer_type"] = answer_type
        obj = {
            "id": rid,
            "image": image_rel,
            "modality": _llava_modality(sample),
            "source": f"llava-med:{name}",
            "perspective": "vqa",
            "conversations": turns,
            "meta": meta,
        }
        try:
            return Record.model_validate({k: v for k, v in obj.items() if v is not None})
        except ValidationError as exc:
            raise MimoDataError(f"{where}: not a valid record ({exc.errors()[0]['msg']})") from None

    return make
