"""Scoring numeric answers: a measurement stated in the answer against the record's reference.

A measurement record (perspective ``measure``, built by ``mimo data build`` with
``perspectives=[..., measure]``) keeps in ``meta["measurement"]`` the value measured on the
reference mask (``value``) and, where the dataset publishes one, the published value
(``reference``, e.g. HC18's head circumference). ``measurement_result`` reads the predicted
answer's number (``mimo.core.measure.parse_measurement``) and ``measurement_metrics`` aggregates,
per measured structure and kind, the absolute error in the structure's unit and the relative
error, against both references. An answer that states no number of the asked kind counts as
missing (``n_missing``), not as an error of 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from mimo.core.measure import parse_measurement


def measurement_result(answer: str, meta: Mapping | None) -> dict | None:
    """``{"kind", "unit", "structure", "predicted", "value", "reference"}`` for a measurement
    record (``predicted`` None when the answer states no number of that kind), else None."""
    info = (meta or {}).get("measurement")
    if not isinstance(info, Mapping) or "kind" not in info or "value" not in info:
        return None
    stated = parse_measurement(answer)
    predicted = stated[1] if stated and stated[0] == info["kind"] else None
    return {
        "kind": str(info["kind"]),
        "unit": str(info.get("unit", "")),
        "structure": str(info.get("structure", "")),
        "predicted": predicted,
        "value": float(info["value"]),
        "reference": float(info["reference"]) if info.get("reference") is not None else None,
    }


def _errors(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    if not pairs:
        return math.nan, math.nan
    absolute = [abs(p - r) for p, r in pairs]
    relative = [abs(p - r) / abs(r) for p, r in pairs if r]
    mean_rel = sum(relative) / len(relative) if relative else math.nan
    return sum(absolute) / len(absolute), mean_rel


def measurement_metrics(results: Iterable[Mapping]) -> dict[str, dict]:
    """``{"<structure>: <kind>": {n, n_missing, unit, mae, mean_rel_error, n_published,
    mae_published, mean_rel_error_published}}`` over ``measurement_result`` dicts.

    ``mae`` compares with the value measured on the reference mask; ``*_published`` with the
    dataset's published value, where records have one.
    """
    groups: dict[str, list[Mapping]] = {}
    for r in results:
        groups.setdefault(f"{r['structure']}: {r['kind']}", []).append(r)
    out = {}
    for key in sorted(groups):
        rows = groups[key]
        stated = [r for r in rows if r["predicted"] is not None]
        mae, rel = _errors([(r["predicted"], r["value"]) for r in stated])
        published = [(r["predicted"], r["reference"]) for r in stated if r["reference"] is not None]
        mae_pub, rel_pub = _errors(published)
        out[key] = {
            "n": len(rows),
            "n_missing": len(rows) - len(stated),
            "unit": rows[0]["unit"],
            "mae": mae,
            "mean_rel_error": rel,
            "n_published": len(published),
            "mae_published": mae_pub,
            "mean_rel_error_published": rel_pub,
        }
    return out


def measurement_markdown(metrics: Mapping[str, Mapping]) -> list[str]:
    """A markdown table of ``measurement_metrics`` (empty list when there is none)."""
    if not metrics:
        return []

    def fmt(v: float, pct: bool = False) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{100 * v:.1f}%" if pct else f"{v:.2f}"

    lines = [
        "## Measurements (numeric answers)",
        "",
        "| measurement | n | missing | unit | MAE vs reference mask | rel. error | n published | MAE vs published | rel. error vs published |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, m in metrics.items():
        lines.append(
            f"| {key} | {m['n']} | {m['n_missing']} | {m['unit']} | {fmt(m['mae'])} | "
            f"{fmt(m['mean_rel_error'], True)} | {m['n_published']} | {fmt(m['mae_published'])} | "
            f"{fmt(m['mean_rel_error_published'], True)} |"
        )
    return [*lines, ""]
