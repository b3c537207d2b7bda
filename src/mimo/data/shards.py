"""Where a build keeps its per-case shards (``out/shards/<source>/<case>.jsonl``) and their done
markers, shared by the case builder (``mimo.data.build``) and the record sources
(``mimo.data.interop.build``)."""

from __future__ import annotations

from pathlib import Path

from mimo.core.files import safe_name


def shard_paths(out_dir: Path, source: str, case_id: str) -> tuple[Path, Path]:
    """``(records shard, done marker)`` of one case (or one chunk of a record source)."""
    base = Path(out_dir) / "shards" / source / safe_name(case_id)
    return base.with_name(base.name + ".jsonl"), base.with_name(base.name + ".done.json")
