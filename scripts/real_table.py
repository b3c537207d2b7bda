"""Per-structure table of the model beside the U-Net on the held-out real patients (docs/results.md).

    python scripts/real_table.py runs/eval-real/report.json runs/eval-unet/report.json

Dice is the mean over the reference masks of the records where the structure is named in the
question (perspective I "Segment the X." and the measurement questions, so the structure is
present in the slice and both networks are told which one); the U-Net answers the same records.
The measurement rows compare the number in the answer (recomputed from each network's mask)
with the value measured on the reference mask and with the published value (HC18).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

NAMED = ("I", "measure")


def dice_by_structure(report: dict) -> dict[str, tuple[int, float]]:
    scores = defaultdict(list)
    for sample in report["samples"]:
        if sample["perspective"] in NAMED:
            for s in sample["mask_scores"]:
                scores[s["structure"]].append(s["dice"])
    return {k: (len(v), sum(v) / len(v)) for k, v in sorted(scores.items())}


def main(model_path: str, unet_path: str) -> None:
    model, unet = (json.loads(Path(p).read_text()) for p in (model_path, unet_path))
    ours, theirs = dice_by_structure(model), dice_by_structure(unet)
    print("| structure | masks | Dice mimo-tiny | Dice U-Net | ratio |")
    print("|---|---|---|---|---|")
    for term, (n, d) in ours.items():
        u = theirs.get(term, (0, float("nan")))[1]
        print(f"| {term} | {n} | {d:.3f} | {u:.3f} | {d / u:.2f} |")
    print()
    print(
        "| measurement | n | MAE mimo-tiny | MAE U-Net | MAE vs published mimo-tiny | MAE vs published U-Net |"
    )
    print("|---|---|---|---|---|---|")
    for key, m in model.get("measurements", {}).items():
        u = unet.get("measurements", {}).get(key, {})
        cells = [m.get("mae"), u.get("mae"), m.get("mae_published"), u.get("mae_published")]
        shown = " | ".join("-" if v is None else f"{v:.2f}" for v in cells)
        print(f"| {key} ({m['unit']}) | {m['n']} ({m['n_missing']} without a number) | {shown} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
