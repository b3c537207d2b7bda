"""``mimo eval``: run a model over records and score it with ``mimo.eval``.

For each record the question is its human turn(s) and the reference its last gpt turn with
that turn's masks; earlier turns are given as history (their reference answers, with the
regions of their ``<region>`` placeholders). In the same run:

* ``model``: the model as it is;
* ``sam-box`` (baseline, the paper's "SAM-h" column): the model's own SAM prompted with the
  record's first region of the last human turn (box or point; scribble and mask as their
  box), no language; records without such a region are left out of it. Its answer is a
  bare ``<SEG>``, so only its segmentation metrics mean anything;
* ``text-only`` (ablation): every ``<region>`` of the question replaced by "this region"
  and no visual prompt given. Records without regions ask the same question as the model
  run, so their model results are reused.

Each scored record is appended to ``predictions.jsonl`` (flushed and synced) as
``{"kind", "id", "result": SampleResult.to_dict(), "masks": [RLE...]}``; a rerun skips the
``(kind, id)`` pairs already there, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mimo.core import rle
from mimo.core.files import atomic_write_text
from mimo.core.records import read_records
from mimo.core.results import Prediction, Segment
from mimo.core.schema import REGION_TOKEN, Record
from mimo.eval import (
    EvaluationReport,
    SampleResult,
    decode_record_masks,
    grid_case,
    render_cases_grid,
    score_sample,
)
from mimo.infer.baselines import region_prompt, sam_prompted_mask
from mimo.infer.images import ImageInputError, load_image
from mimo.infer.predictor import ImageState, Predictor

MODEL, SAM_BOX, TEXT_ONLY = "model", "sam-box", "text-only"
BASELINES = (SAM_BOX,)
ABLATIONS = (TEXT_ONLY,)
TEXT_ONLY_REGION = "this region"


def _split_regions(record: Record) -> list[list]:
    """The record's regions, grouped by the human turn whose ``<region>`` they fill (the schema
    checked that the counts match; the processor checks them again as model inputs)."""
    regions, groups, used = list(record.regions), [], 0
    for turn in record.conversations:
        if turn.from_ == "human":
            n = turn.value.count(REGION_TOKEN)
            groups.append(regions[used : used + n])
            used += n
    return groups


def _last_gpt(record: Record) -> int:
    for i in range(len(record.conversations) - 1, -1, -1):
        if record.conversations[i].from_ == "gpt":
            return i
    raise ImageInputError(f"record {record.id!r}: no gpt turn to evaluate against")


def record_item(record: Record, state: ImageState, masks: dict, text_only: bool = False) -> dict:
    """A ``Predictor`` item for the record's last gpt turn (earlier turns as history)."""
    gpt = _last_gpt(record)
    turns = record.conversations[:gpt]
    if not turns or turns[-1].from_ != "human":
        raise ImageInputError(f"record {record.id!r}: conversations[{gpt}] is not preceded by a human turn")
    groups = iter(_split_regions(record))
    history = []
    for turn in turns:
        value = turn.value
        entry = {"from": turn.from_}
        if turn.from_ == "human":
            regions = next(groups)
            if text_only:
                value, regions = value.replace(REGION_TOKEN, TEXT_ONLY_REGION), []
            entry["regions"] = list(regions)  # Region objects, as the processor takes them
            entry["masks"] = {r.mask: masks[r.mask] for r in regions if r.type == "mask"}
        entry["value"] = value
        history.append(entry)
    last = history.pop()
    return {
        "name": f"record {record.id!r}",
        "spacing": tuple(record.spacing) if record.spacing else None,
        "image": state,
        "question": last["value"],
        "regions": last["regions"],
        "region_masks": last["masks"],
        "history": history,
    }


class PredictionLog:
    """``predictions.jsonl``: one scored record per line, appended and synced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[tuple[str, str], dict] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[(entry["kind"], entry["id"])] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by an interruption: recomputed
        self._fh = None

    def done(self, kind: str, record_id: str) -> bool:
        return (kind, record_id) in self.entries

    def add(self, kind: str, result: SampleResult, masks: list[np.ndarray]) -> None:
        encoded = [rle.encode(m) for m in masks]
        entry = {
            "kind": kind,
            "id": result.id,
            "result": result.to_dict(),
            "masks": [{"size": list(e.size), "counts": e.counts} for e in encoded],
        }
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_file() and self.path.stat().st_size:
                with self.path.open("rb") as fh:  # an interrupted line: start a fresh one
                    fh.seek(-1, os.SEEK_END)
                    needs_newline = fh.read(1) != b"\n"
            else:
                needs_newline = False
            self._fh = self.path.open("a", encoding="utf-8")
            if needs_newline:
                self._fh.write("\n")
        self._fh.write(json.dumps(entry) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.entries[(kind, result.id)] = entry

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def results(self, kind: str, ids: list[str]) -> list[SampleResult]:
        return [
            SampleResult.from_dict(self.entries[(kind, i)]["result"])
            for i in ids
            if (kind, i) in self.entries
        ]


def _load(record: Record, root: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if not record.image:
        raise ImageInputError(f"record {record.id!r}: has no 'image'")
    image = load_image(root / record.image)
    masks = decode_record_masks(record)
    for key, mask in masks.items():
        if mask.shape != image.shape[:2]:
            raise ImageInputError(
                f"record {record.id!r}: mask {key!r} is {mask.shape}, its image {root / record.image} "
                f"{image.shape[:2]}"
            )
    return image, masks


def _score(kind: str, record: Record, masks: dict, prediction: Prediction) -> SampleResult:
    result = score_sample(prediction, record, masks)
    return SampleResult.from_dict({**result.to_dict(), "meta": {**result.meta, "kind": kind}})


def run_evaluation(
    predictor: Predictor,
    records_path: str | Path,
    out_dir: str | Path,
    *,
    limit: int | None = None,
    baselines: tuple[str, ...] = (),
    ablations: tuple[str, ...] = (),
    batch_size: int = 8,
    grid_k: int = 4,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Evaluate, resume-safely; write ``report.json``, ``report.md`` and ``cases.png``."""
    for name in baselines:
        if name not in BASELINES:
            raise ImageInputError(f"--baseline {name!r}: expected one of {', '.join(BASELINES)}")
    for name in ablations:
        if name not in ABLATIONS:
            raise ImageInputError(f"--ablation {name!r}: expected one of {', '.join(ABLATIONS)}")
    records_path = Path(records_path)
    records = read_records(records_path)[:limit] if limit else read_records(records_path)
    if not records:
        raise ImageInputError(f"{records_path}: no records")
    root = records_path.parent
    out_dir = Path(out_dir)
    log = PredictionLog(out_dir / "predictions.jsonl")
    kinds = [MODEL, *ablations, *baselines]
    try:
        for kind in kinds:
            todo = [r for r in records if not log.done(kind, r.id)]
            for start in range(0, len(todo), batch_size):
                _run_batch(predictor, kind, todo[start : start + batch_size], root, log, batch_size)
                if progress is not None:
                    progress(kind, min(len(todo), start + batch_size), len(todo))
    finally:
        log.close()
    return write_reports(log, records, root, out_dir, kinds, grid_k)


def _run_batch(
    predictor: Predictor, kind: str, batch: list[Record], root: Path, log, batch_size: int
) -> None:
    loaded = [(r, *_load(r, root)) for r in batch]
    if kind == SAM_BOX:
        states = [predictor.prepare(image) for _, image, _ in loaded]
        predictor.encode(states)
        sam_size = predictor.processor.settings.sam_size
        for (record, image, masks), state in zip(loaded, states, strict=True):
            last_regions = _split_regions(record)[-1] if record.regions else []
            prompt = region_prompt(last_regions[0], masks) if last_regions else None
            if prompt is None:
                continue  # not a box/point task: not part of the SAM baseline
            mask, score = sam_prompted_mask(
                predictor.model, state.sam_embeddings, prompt, image.shape[:2], sam_size
            )
            result = _score(kind, record, masks, Prediction("<SEG>", [Segment(None, mask, score)]))
            log.add(kind, result, [mask])
        return
    items, targets = [], []
    for record, image, masks in loaded:
        if kind == TEXT_ONLY and not record.regions and log.done(MODEL, record.id):
            entry = log.entries[(MODEL, record.id)]
            result = SampleResult.from_dict(
                {**entry["result"], "meta": {**entry["result"]["meta"], "kind": kind}}
            )
            log.add(kind, result, [rle.decode(m) for m in entry["masks"]])
            continue
        state = predictor.prepare(image)
        items.append(record_item(record, state, masks, text_only=kind == TEXT_ONLY))
        targets.append((record, masks))
    if not items:
        return
    for (record, masks), prediction in zip(
        targets, predictor.predict_batch(items, batch_size=batch_size), strict=True
    ):
        result = _score(kind, record, masks, prediction)
        log.add(kind, result, [s.mask for s in prediction.segments])


def write_reports(
    log: PredictionLog, records: list[Record], root: Path, out_dir: Path, kinds, grid_k: int
) -> dict:
    ids = [r.id for r in records]
    reports = {kind: EvaluationReport(log.results(kind, ids)) for kind in kinds}
    main = reports[MODEL]
    json_path, md_path = main.write(out_dir)
    data = json.loads(json_path.read_text())
    data["records"] = str(root)
    data["comparisons"] = {
        kind: {"n_samples": len(report), **report.to_json(include_samples=False)}
        for kind, report in reports.items()
        if kind != MODEL
    }
    atomic_write_text(json_path, json.dumps(data, indent=2) + "\n")
    markdown = [md_path.read_text()]
    titles = {
        SAM_BOX: "Baseline: SAM prompted with the record's box/point (segmentation metrics only)",
        TEXT_ONLY: "Ablation: text only (visual prompts removed from the question)",
    }
    for kind, report in reports.items():
        if kind == MODEL:
            continue
        body = report.to_markdown() if len(report) else "_no samples_\n"
        body = body.replace("# Evaluation report", f"# {titles[kind]}", 1)
        markdown.append(body)
    atomic_write_text(md_path, "\n".join(markdown))
    grid = _cases_grid(main, log, records, root, out_dir / "cases.png", grid_k)
    return {"report": json_path, "markdown": md_path, "grid": grid, "summary": data}


def _cases_grid(report: EvaluationReport, log, records, root: Path, path: Path, k: int) -> Path | None:
    best, worst = report.best_and_worst(k)
    if not best:
        return None
    by_id = {r.id: r for r in records}
    cases = []
    for result in best + worst:
        record = by_id[result.id]
        image, masks = _load(record, root)
        gpt = record.conversations[_last_gpt(record)]
        reference = [masks[key] for key in gpt.masks or []]
        predicted = [rle.decode(m) for m in log.entries[(MODEL, result.id)]["masks"]]
        case = grid_case(result, image, reference or None, predicted or None)
        cases.append(case)
    return render_cases_grid(cases, path, columns=max(1, len(best)))
