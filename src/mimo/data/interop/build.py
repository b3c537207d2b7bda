"""Passing a record source (a ``record`` kind of ``mimo.data.readers.READERS``) through the builder.

Samples are converted one by one into shards of ``CHUNK`` records (per publisher split, or
per patient where a source has no split), each finished by a ``.done.json`` marker: an
interrupted build resumes after the last finished shard. With ``on_error="skip"`` a bad
sample is skipped and listed (file, line or sample index, error) in the build report;
with ``"raise"`` the first one stops the build with that message. A sample that is well formed
but unusable (``UnusableSample``: an empty answer) is dropped either way and counted per reason
(``dropped`` in the shard's stats).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mimo.core.errors import MimoDataError
from mimo.core.files import atomic_write_text
from mimo.core.records import record_line
from mimo.data.interop.common import Item, UnusableSample, safe_name
from mimo.data.readers import SourceSpec, reader_options
from mimo.data.shards import shard_paths

CHUNK = 1000


def _chunks(items: list[Item], kind: str, name: str) -> list[tuple[str, str, str | None, list[Item]]]:
    """``(chunk id, patient, fixed split, items)`` in a deterministic order."""
    by_split: dict[str | None, list[Item]] = {}
    for item in items:
        by_split.setdefault(item.split, []).append(item)
    chunks = []
    for split in sorted(by_split, key=lambda s: (s is None, s or "")):
        group = by_split[split]
        if split is None:  # split by patient: one shard per patient
            per: dict[str, list[Item]] = {}
            for item in group:
                per.setdefault(item.group, []).append(item)
            for patient in sorted(per):
                chunks.append((f"p-{safe_name(patient)}", f"{kind}:{patient}", None, per[patient]))
        else:
            for k in range(0, len(group), CHUNK):
                chunks.append(
                    (f"{split}-{k // CHUNK:05d}", f"{kind}:{name}:{split}", split, group[k : k + CHUNK])
                )
    return chunks


def build_record_source(
    spec: SourceSpec, name: str, out: Path, *, on_error: str, progress: bool
) -> tuple[list[dict], list[dict], int]:
    """Convert one record source into shards; returns ``(shard stats, skipped samples, shards resumed)``."""
    from tqdm.auto import tqdm

    source = spec.source_kind.function()(spec.path, out, **reader_options(spec))
    stats_all, skipped, resumed = [], [], 0
    bar = tqdm(total=len(source.items), desc=name, unit="sample", disable=not progress)
    try:
        for chunk_id, patient, split, items in _chunks(source.items, spec.kind, name):
            shard, marker = shard_paths(out, name, chunk_id)
            if marker.is_file():
                stats = json.loads(marker.read_text())
                stats_all.append(stats)
                skipped.extend(stats.get("skipped_samples", []))
                resumed += 1
                bar.update(len(items))
                continue
            stats = _convert_chunk(items, (name, chunk_id, patient, split), shard, marker, on_error, bar)
            stats_all.append(stats)
            skipped.extend(stats["skipped_samples"])
    finally:
        bar.close()
    return stats_all, skipped, resumed


def _convert_chunk(
    items: list[Item], ids: tuple[str, str, str, str | None], shard: Path, marker: Path, on_error: str, bar
) -> dict:
    """Convert one chunk's samples into its shard and write its marker; returns its stats.
    ``ids`` is ``(source name, chunk id, patient, fixed split or None)``."""
    name, chunk_id, patient, split = ids
    lines, perspectives, modalities, bad, dropped = [], Counter(), Counter(), [], Counter()
    for item in items:
        try:
            rec = item.make()
        except UnusableSample as exc:
            dropped[exc.reason] += 1
            continue
        except MimoDataError as exc:
            if on_error == "raise":
                raise
            bad.append({"source": name, "case": chunk_id, "sample": item.where, "error": str(exc)})
            continue
        finally:
            bar.update(1)
        perspectives[rec.perspective or "vqa"] += 1
        modalities[rec.modality or "unknown"] += 1
        lines.append(record_line(rec))
    atomic_write_text(shard, "".join(line + "\n" for line in lines))
    stats = {
        "source": name,
        "case": chunk_id,
        "patient": patient,
        "modality": modalities.most_common(1)[0][0] if modalities else "unknown",
        "modalities": dict(sorted(modalities.items())),
        "dropped": dict(sorted(dropped.items())),
        "slices": 0,
        "records": len(lines),
        "perspectives": dict(sorted(perspectives.items())),
        "structures": {},
        "present_labels": [],
        "skipped_samples": bad,
    }
    if split is not None:
        stats["fixed_split"] = split
    atomic_write_text(marker, json.dumps(stats, sort_keys=True) + "\n")
    return stats
