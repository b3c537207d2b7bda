"""The per-perspective table of docs/results.md, from ``mimo eval`` report.json files.

    python scripts/results_table.py MODEL_REPORT.json NO_ALIGNER_REPORT.json

MODEL_REPORT is an evaluation of mimo-tiny run with ``--baseline sam-box --ablation text-only``
(its ``comparisons`` hold both); NO_ALIGNER_REPORT the same records evaluated with the model
trained with ``model.config_overrides.use_aligner=false``. Prints Markdown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The MIMO paper's reported mIoU per perspective (on its own MIMOSeg test data, not on these images).
PAPER_MIOU = {"I": 0.639, "II": 0.665, "III": 0.531, "IV": 0.586}
PERSPECTIVES = ("I", "II", "III", "IV")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(model: dict, no_aligner: dict) -> str:
    columns = [
        ("mimo-tiny", model["by_perspective"]),
        ("no aligner", no_aligner["by_perspective"]),
        ("SAM + box (sam-box)", model["comparisons"].get("sam-box", {}).get("by_perspective", {})),
        ("text only (prompts removed)", model["comparisons"].get("text-only", {}).get("by_perspective", {})),
    ]
    lines = [
        "| perspective | n | " + " | ".join(f"mIoU {name}" for name, _ in columns) + " | paper mIoU |",
        "|---|---|" + "---|" * (len(columns) + 1),
    ]
    for p in PERSPECTIVES:
        cells = [_fmt(groups.get(p, {}).get("miou")) for _, groups in columns]
        n = model["by_perspective"].get(p, {}).get("n_samples", 0)
        lines.append(f"| {p} | {n} | " + " | ".join(cells) + f" | {PAPER_MIOU[p]:.3f} |")
    lines += [
        "",
        "| measure | mimo-tiny | no aligner |",
        "|---|---|---|",
    ]
    rows = [
        ("II: structure named correctly (id accuracy)", "II", "id_accuracy"),
        ("IV: structure named correctly (id accuracy)", "IV", "id_accuracy"),
        ("negatives: answered with a mask (FP rate)", "negative", "fp_rate"),
        ("all: Dice", None, "dice"),
        ("all: ROUGE-L of the answers", None, "rouge_l"),
    ]
    for title, group, key in rows:
        values = [
            (report["by_perspective"].get(group, {}) if group else report["overall"]).get(key)
            for report in (model, no_aligner)
        ]
        lines.append(f"| {title} | " + " | ".join(_fmt(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


def main(model_report: Path, no_aligner_report: Path) -> None:
    model = json.loads(model_report.read_text())
    no_aligner = json.loads(no_aligner_report.read_text())
    sys.stdout.write(table(model, no_aligner))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
