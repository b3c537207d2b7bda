"""``EvaluationReport``: aggregate ``SampleResult``s by perspective, modality and structure.

Every group gets the metrics that apply to its samples (NaN, written as ``null`` in JSON
and "-" in Markdown, where none do):

- segmentation (``segmentation.SegmentationMeter``): ``n_masks, miou, giou, ciou, dice,
  ap50`` over the reference masks; per structure, only that structure's masks;
- identification (``text.identification_metrics``): ``id_accuracy, id_macro_f1`` over the
  samples whose reference names a structure in ``<p>..</p>``;
- ``grounding_recall``: grounded reference phrases hit / all grounded reference phrases;
- ``fp_rate``: fraction of ``negative`` samples answered with a ``<SEG>`` or mask;
- ``closed_accuracy`` / ``open_recall``: over ``vqa`` samples of each type;
- ``bleu1..bleu4`` (corpus BLEU) and ``rouge_l`` (mean ROUGE-L F) of the answer texts
  without markup, over every sample.

A per-structure group holds the samples whose reference names that structure (or, for a
negative, whose ``meta["structure"]`` is it); its segmentation metrics count only that
structure's masks, its other metrics are those of the whole samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path

from mimo.core.files import atomic_write_text
from mimo.core.schema import PERSPECTIVES
from mimo.eval.measurements import measurement_markdown, measurement_metrics
from mimo.eval.sample import SampleResult
from mimo.eval.segmentation import SegmentationMeter
from mimo.eval.text import bleu, identification_metrics
from mimo.eval.visualize import GridCase, MaskLike

GROUPINGS = ("perspective", "modality", "structure")

# Markdown columns: (metric key, header).
MARKDOWN_COLUMNS = (
    ("n_samples", "n"),
    ("n_masks", "masks"),
    ("miou", "mIoU"),
    ("dice", "Dice"),
    ("giou", "gIoU"),
    ("ciou", "cIoU"),
    ("ap50", "AP50"),
    ("id_accuracy", "Id acc"),
    ("id_macro_f1", "Id F1"),
    ("grounding_recall", "Grd recall"),
    ("fp_rate", "FP rate (neg)"),
    ("closed_accuracy", "Closed acc"),
    ("open_recall", "Open recall"),
    ("bleu1", "BLEU-1"),
    ("bleu4", "BLEU-4"),
    ("rouge_l", "ROUGE-L"),
)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def group_metrics(results: Iterable[SampleResult], structure: str | None = None) -> dict[str, float]:
    """All metrics of one group of samples (see the module docstring).

    ``structure``: for a per-structure group, score only the masks of that structure.
    """
    results = list(results)
    meter = SegmentationMeter()
    for result in results:
        for score in result.mask_scores:
            if structure is None or score.structure == structure:
                meter.add_counts(score.counts, image_id=result.image)
    identified = [r for r in results if r.reference_structures]
    negatives = [r for r in results if r.negative]
    closed = [r for r in results if r.closed_correct is not None]
    opened = [r for r in results if r.open_recall is not None]
    grounding_total = sum(r.grounding_total for r in results)
    metrics: dict[str, float] = {"n_samples": len(results)}
    metrics.update(meter.compute())
    metrics.update(
        identification_metrics(
            [r.predicted_structures for r in identified], [r.reference_structures for r in identified]
        )
    )
    metrics["grounding_recall"] = (
        sum(r.grounding_hits for r in results) / grounding_total if grounding_total else math.nan
    )
    metrics["fp_rate"] = _mean([float(bool(r.false_positive)) for r in negatives])
    metrics["closed_accuracy"] = _mean([float(bool(r.closed_correct)) for r in closed])
    metrics["open_recall"] = _mean([float(r.open_recall) for r in opened if r.open_recall is not None])
    metrics.update(bleu([r.predicted_text for r in results], [r.reference_text for r in results]))
    metrics["rouge_l"] = _mean([r.rouge_l for r in results])
    return metrics


def _perspective_order(name: str) -> tuple[int, str]:
    return (PERSPECTIVES.index(name) if name in PERSPECTIVES else len(PERSPECTIVES), name)


def _clean(value: object) -> object:
    """NaN -> None, recursively, so the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class EvaluationReport:
    """Per-sample results and their aggregates.

    Typical use by a runner::

        report = EvaluationReport()
        for record, prediction in ...:
            report.add(score_sample(prediction, record))
        report.write("runs/eval")  # report.json, report.md
        best, worst = report.best_and_worst(4)  # then grid_case(...) + render_cases_grid(...)
    """

    def __init__(self, results: Iterable[SampleResult] = ()) -> None:
        self.results: list[SampleResult] = list(results)

    def add(self, result: SampleResult) -> None:
        self.results.append(result)

    def extend(self, results: Iterable[SampleResult]) -> None:
        self.results.extend(results)

    def __len__(self) -> int:
        return len(self.results)

    def groups(self, by: str) -> dict[str, list[SampleResult]]:
        """Results keyed by ``perspective``, ``modality`` or ``structure`` (a sample naming
        several structures is in each of their groups; one naming none is in none)."""
        if by not in GROUPINGS:
            raise ValueError(f"group by {by!r}: expected one of {GROUPINGS}")
        grouped: dict[str, list[SampleResult]] = {}
        for result in self.results:
            if by == "structure":
                keys: Iterable[str] = result.structures
            else:
                keys = [result.perspective if by == "perspective" else result.modality]
            for key in keys:
                grouped.setdefault(key, []).append(result)
        order: Callable[[str], object] = _perspective_order if by == "perspective" else str
        return {key: grouped[key] for key in sorted(grouped, key=order)}

    def summary(self) -> dict:
        """``{"overall": metrics, "by_perspective": {name: metrics}, "by_modality": ...,
        "by_structure": ...}``; metrics NaN where not applicable."""
        from mimo.eval.benchmarks import benchmark_metrics

        benchmarks = benchmark_metrics(self.results)  # public benchmarks' own metrics, beside ours
        measurements = measurement_metrics(
            r.meta["measurement"] for r in self.results if isinstance(r.meta.get("measurement"), dict)
        )
        return {
            "n_samples": len(self.results),
            **({"benchmarks": benchmarks} if benchmarks else {}),
            **({"measurements": measurements} if measurements else {}),
            "overall": group_metrics(self.results),
            **{
                f"by_{by}": {
                    key: group_metrics(results, structure=key if by == "structure" else None)
                    for key, results in self.groups(by).items()
                }
                for by in GROUPINGS
            },
        }

    def best_and_worst(self, k: int = 4) -> tuple[list[SampleResult], list[SampleResult]]:
        """The ``k`` samples of highest and of lowest mean IoU (samples with reference masks
        only; ties broken by id). The two lists overlap when there are fewer than 2k."""
        scored = sorted((r for r in self.results if r.mean_iou is not None), key=lambda r: r.id)
        by_iou = sorted(scored, key=lambda r: r.mean_iou, reverse=True)
        return by_iou[:k], list(reversed(by_iou))[:k]

    # ------------------------------------------------------------------ writers

    def to_json(self, *, include_samples: bool = True) -> dict:
        data = self.summary()
        if include_samples:
            data["samples"] = [r.to_dict() for r in self.results]
        return _clean(data)

    def write_json(self, path: str | Path, *, include_samples: bool = True) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_json(include_samples=include_samples), indent=2) + "\n")
        return path

    def to_markdown(self, summary: dict | None = None) -> str:
        """Tables per perspective (plus an "all" row), per modality and per structure.
        Columns where no row has a value are left out; values are fractions in [0, 1]."""
        summary = summary or self.summary()
        sections = ["# Evaluation report", "", f"Samples: {summary['n_samples']}.", ""]
        titles = {"perspective": "By perspective", "modality": "By modality", "structure": "By structure"}
        for by in GROUPINGS:
            rows = dict(summary[f"by_{by}"])
            if by == "perspective":
                rows["all"] = summary["overall"]
            sections += [f"## {titles[by]}", "", _markdown_table(by, rows), ""]
        sections += measurement_markdown(summary.get("measurements", {}))
        for name, metrics in summary.get("benchmarks", {}).items():
            lines = [f"- {key}: {_format(value)}" for key, value in metrics.items()]
            sections += [
                f"## Benchmark {name} (its authors' definitions, see docs/benchmarks.md)",
                "",
                *lines,
                "",
            ]
        return "\n".join(sections)

    def write_markdown(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_markdown())
        return path

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """Write ``report.json`` and ``report.md`` into ``directory``."""
        directory = Path(directory)
        summary = self.summary()
        data = dict(summary)
        data["samples"] = [r.to_dict() for r in self.results]
        directory.mkdir(parents=True, exist_ok=True)
        json_path = directory / "report.json"
        atomic_write_text(json_path, json.dumps(_clean(data), indent=2) + "\n")
        md_path = directory / "report.md"
        atomic_write_text(md_path, self.to_markdown(summary))
        return json_path, md_path


def _format(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def _markdown_table(first_header: str, rows: dict[str, dict]) -> str:
    if not rows:
        return "_no samples_"
    columns = [
        (key, header)
        for key, header in MARKDOWN_COLUMNS
        if any(not (isinstance(r.get(key), float) and math.isnan(r[key])) for r in rows.values())
    ]
    lines = [
        "| " + " | ".join([first_header, *(h for _, h in columns)]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for name, metrics in rows.items():
        cells = [name.replace("|", "\\|"), *(_format(metrics[k]) for k, _ in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid_case(
    result: SampleResult,
    image,
    reference_mask: MaskLike = None,
    predicted_mask: MaskLike = None,
) -> GridCase:
    """A ``GridCase`` for ``visualize.render_cases_grid`` from a scored sample and the image
    and masks the runner loaded for it; titled with id, perspective and mean IoU."""
    iou = result.mean_iou
    title = f"{result.id} [{result.perspective}]" + ("" if iou is None else f" IoU {iou:.3f}")
    return GridCase(
        image=image,
        reference_mask=reference_mask,
        predicted_mask=predicted_mask,
        question=result.question,
        answer=result.predicted_text,
        title=title,
    )
