"""The MIMOSeg builder: sources in, four-perspective grounded records out.

Layout of the output folder::

    out/images/<source>/<case>_z057.png        8-bit slices
    out/shards/<source>/<case>.jsonl           the records of one case (atomic)
    out/shards/<source>/<case>.done.json       written after the shard: the case is finished
    out/shards/<source>/settings.json          what shaped the source's shards (checked on resume)
    out/train.jsonl, val.jsonl, test.jsonl     merged, split by patient, mixed by ratio
    out/build_report.json

Cases are processed in parallel (a process pool with a bounded number of cases in flight,
so memory grows with ``workers``, not with the dataset). Each slice's random generator is
seeded from ``(seed, source, case, slice)``, so the output does not depend on scheduling.
A build that is interrupted resumes where it stopped: finished cases (those with a
``.done.json``) are not redone. A resume with other settings for a source (its options, path,
slicing, perspective options or seed) is refused rather than mixing two builds' shards. Every
file is written atomically.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mimo.core.errors import MimoDataError
from mimo.core.files import atomic_open, atomic_write_text
from mimo.core.records import parse_record, record_line
from mimo.core.schema import Record
from mimo.data.case import Case
from mimo.data.mix import DEFAULT_RATIOS, MIX_STREAM, mix_targets
from mimo.data.readers import CASE, RECORD, Listing, SourceSpec, list_source, parse_source, read_source
from mimo.data.readers.base import CaseRef, check_declared_present
from mimo.data.shards import shard_paths
from mimo.data.slices import SliceConfig, iter_slice_samples, slice_seed
from mimo.data.split import DEFAULT_FRACTIONS, split_patients

Generator = Callable[..., list]
MIX_KEYS = ("I", "II", "III", "IV", "vqa")
SETTINGS_FILE = "settings.json"  # in shards/<source>/: the settings its shards were made with
PARENT_POLL_S = 0.2  # how often a worker checks that the build that started it still runs


class BuildConfig(BaseModel):
    """Everything that shapes a build's output (besides the sources and the seed)."""

    model_config = ConfigDict(extra="forbid")

    slices: SliceConfig = Field(default_factory=SliceConfig)
    splits: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    ratios: dict[str, float] | None = Field(
        default_factory=lambda: dict(DEFAULT_RATIOS),
        description="I:II:III:IV:VQA mix applied to the train split (None: keep everything)",
    )
    negative_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of negatives in the mixed train split"
    )
    perspective: dict = Field(default_factory=dict, description="options for perspectives.PerspectiveConfig")


def parse_ratios(text: str) -> dict[str, float]:
    """Parse ``I:II:III:IV:VQA`` weights, e.g. ``1:2:2:1:1``."""
    parts = text.split(":")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != len(MIX_KEYS) or any(v < 0 for v in vals) or not any(vals):
        raise MimoDataError(
            f"--ratios {text!r}: expected five non-negative numbers I:II:III:IV:VQA, e.g. 1:2:2:1:1"
        )
    return dict(zip(MIX_KEYS, vals, strict=True))


# ---------------------------------------------------------------- per case (runs in workers)


@dataclass
class _Job:
    source: str  # source name (folder under shards/ and images/)
    case_id: str
    ref: CaseRef | None
    case: Case | None
    out_dir: str
    slice_config: SliceConfig
    seed: int
    generator: Generator | None
    generator_config: object


def _default_generator(config: dict) -> tuple[Generator, object]:
    try:
        from mimo.data.perspectives import PerspectiveConfig, generate_records
    except ImportError as exc:
        raise MimoDataError(f"the record generator mimo.data.perspectives is not available ({exc})") from None
    return generate_records, PerspectiveConfig(**config)


def _process(job: _Job) -> dict:
    case = job.case if job.case is not None else job.ref.load()
    generator, gconf = job.generator, job.generator_config
    if generator is None:
        generator, gconf = _default_generator(gconf or {})
    lines: list[str] = []
    perspectives: Counter[str] = Counter()
    structures: Counter[str] = Counter()
    n_slices = 0
    images: list[Path] = []
    try:
        for sample in iter_slice_samples(case, job.slice_config, job.out_dir, job.source):
            n_slices += 1
            images.append(Path(job.out_dir) / sample.image_path)
            key = f"{sample.slice[0]}:{sample.slice[1]}" if sample.slice else "2d"
            rng = np.random.default_rng(slice_seed(job.seed, job.source, case.case_id, key))
            structures.update(list(sample.labels))
            for rec in generator(sample, rng, gconf):
                if not isinstance(rec, Record):
                    rec = parse_record(rec, f"record made for {sample.image_path}")
                perspectives[rec.perspective or "unknown"] += 1
                lines.append(record_line(rec))
    except Exception:  # a failed case leaves no images behind (--on-error skip lists it)
        for image in images:
            image.unlink(missing_ok=True)
        raise
    present = sorted(n for n, m in case.labels.items() if np.any(m))
    shard, marker = shard_paths(Path(job.out_dir), job.source, case.case_id)
    atomic_write_text(shard, "".join(line + "\n" for line in lines))
    stats = {
        "source": job.source,
        "case": case.case_id,
        "patient": case.patient_id,
        "modality": case.modality,
        "slices": n_slices,
        "records": len(lines),
        "perspectives": dict(sorted(perspectives.items())),
        "structures": dict(sorted(structures.items())),
        "present_labels": present,
    }
    atomic_write_text(marker, json.dumps(stats, sort_keys=True) + "\n")
    return stats


# ---------------------------------------------------------------- orchestration


def _unique_names(specs: Sequence[SourceSpec]) -> list[str]:
    names, seen = [], Counter()
    for s in specs:
        seen[s.name] += 1
        names.append(s.name if seen[s.name] == 1 else f"{s.name}-{seen[s.name]}")
    return names


def _jobs(
    specs: Sequence[SourceSpec],
    names: Sequence[str],
    listings: Sequence[Listing | None],
    out_dir: Path,
    resumed: list[dict],
    make_job: Callable[[str, str, CaseRef | None, Case | None], _Job],
) -> Iterator[_Job]:
    for spec, name, listing in zip(specs, names, listings, strict=True):
        if spec.source_kind.kind != CASE:
            continue
        if listing is not None:
            for ref in listing.refs:
                marker = shard_paths(out_dir, name, ref.case_id)[1]
                if marker.is_file():
                    resumed.append(json.loads(marker.read_text()))
                    continue
                yield make_job(name, ref.case_id, ref, None)
        else:
            for case in read_source(spec):
                marker = shard_paths(out_dir, name, case.case_id)[1]
                if marker.is_file():
                    resumed.append(json.loads(marker.read_text()))
                    continue
                yield make_job(name, case.case_id, None, case)


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MimoDataError) else f"{type(exc).__name__}: {exc}"


def build(
    sources: Iterable[str | SourceSpec],
    out_dir: str | Path,
    config: BuildConfig | None = None,
    *,
    workers: int = 1,
    on_error: str = "raise",
    seed: int = 0,
    generator: Generator | None = None,
    generator_config: object = None,
    progress: bool = True,
) -> dict:
    """Build MIMOSeg-style records from the sources: plan (parse and list every source), run
    (record sources are passed through, case sources go case by case through the generator),
    merge (one file per split, mixed by ratio).

    Args:
        sources: ``KIND:PATH[,key=value...]`` strings or parsed ``SourceSpec``s; the registry
            ``mimo.data.readers.READERS`` says which are case and which record sources.
        out_dir: output folder (created; an existing build there is resumed).
        config: slicing, splits, mix ratios, perspective options.
        workers: processes; ``<= 1`` runs in this process.
        on_error: ``raise`` stops at the first bad case (finished cases stay on disk);
            ``skip`` skips it and lists it in ``build_report.json``.
        seed: the one seed of the build; the same seed gives byte-identical output.
        generator: ``(SliceSample, numpy Generator, config) -> list[Record]``; default
            ``mimo.data.perspectives.generate_records``. Must be picklable for ``workers > 1``.
        generator_config: third argument of ``generator``; default
            ``PerspectiveConfig(**config.perspective)`` for the real generator, else
            ``config.perspective``.
        progress: show a tqdm progress bar.

    Returns:
        The build report (also written to ``out_dir/build_report.json``).

    Raises:
        MimoDataError: for a bad source or (``on_error="raise"``) a bad case, naming the file.
    """
    if on_error not in ("raise", "skip"):
        raise MimoDataError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    config = config or BuildConfig()
    out = Path(out_dir)
    plan = _plan(sources, config)
    # for the default generator, a dict is made a PerspectiveConfig inside the worker
    gconf = generator_config if generator_config is not None else dict(config.perspective)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(plan, out, config, seed, gconf)

    def make_job(name: str, case_id: str, ref: CaseRef | None, case: Case | None) -> _Job:
        slices = plan.slice_configs.get(name, config.slices)
        return _Job(name, case_id, ref, case, str(out), slices, seed, generator, gconf)

    record_stats, skipped = _run_record_sources(plan, out, on_error, progress)
    resumed, done = _run_cases(plan, out, make_job, workers, on_error, progress, skipped)
    all_stats = sorted(resumed + done + record_stats, key=lambda s: (s["source"], s["case"]))
    for s in all_stats:
        if s["source"] in plan.fixed_splits:
            s["fixed_split"] = plan.fixed_splits[s["source"]]
    problems, warnings = _check_finished(plan, out, all_stats, on_error)
    report = _merge(out, all_stats, config, seed)
    report.update(
        {
            "seed": seed,
            "sources": plan.described(),
            "cases": {
                "done": len(all_stats),
                "built_now": len(done),
                "resumed": len(resumed),
                "skipped": len(skipped),
            },
            "skipped": skipped,
            "problems": problems,
            "warnings": warnings,
            "dropped": _dropped(all_stats),
        }
    )
    atomic_write_text(out / "build_report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


@dataclass
class _Plan:
    """What a build will do, decided before any case is read: the parsed sources and their
    names, their listings (source-level errors surface here, before any work), and the
    per-source split and slice settings taken out of their options."""

    specs: list[SourceSpec]
    names: list[str]
    listings: list  # a Listing per case source that can list lazily, else None
    fixed_splits: dict[str, str]
    slice_configs: dict[str, SliceConfig]

    def described(self) -> list[dict]:
        """The sources as the build report lists them."""
        return [
            {"name": n, "kind": s.kind, "path": s.path, "options": s.options}
            for n, s in zip(self.names, self.specs, strict=True)
        ]

    def names_of(self, kind: str) -> list[str]:
        """The names of the sources of one kind (``CASE`` or ``RECORD``)."""
        return [n for s, n in zip(self.specs, self.names, strict=True) if s.source_kind.kind == kind]


def _plan(sources: Iterable[str | SourceSpec], config: BuildConfig) -> _Plan:
    # a copy of each spec: the plan takes options out, the caller's specs stay as they were
    specs = [parse_source(s) if isinstance(s, str) else replace(s, options=dict(s.options)) for s in sources]
    if not specs:
        raise MimoDataError("no sources given (expected at least one KIND:PATH)")
    names = _unique_names(specs)
    unmixed = [s.kind for s in specs if not s.source_kind.mixed]
    if config.ratios is not None and unmixed:
        raise MimoDataError(
            f"source {unmixed[0]}: {unmixed[0]} records are not part of the I:II:III:IV:VQA mix and would all "
            "be dropped; build them on their own with --ratios none (stage-1 alignment data)"
        )
    # ``split=NAME`` on any source puts all its cases in that split, outside the patient split
    # (e.g. a held-out slab of the single-subject MNI152 template).
    fixed_splits = {}
    # ``max_slices=N`` / ``stride=N`` / ``max_side=N`` on a source override the build's slice
    # settings for it (e.g. more slices of the one real volume among many phantom patients, or
    # large ultrasound frames downsampled).
    slice_configs = {}
    for spec, name in zip(specs, names, strict=True):
        if spec.source_kind.kind == CASE:
            spec.options.pop("name", None)  # already in ``name`` (SourceSpec.name)
        if "split" in spec.options:
            fixed_splits[name] = str(spec.options.pop("split"))
        update = {
            key: _whole_number(spec.options.pop(key), f"source {name}: {key}")
            for key in ("max_slices", "stride", "max_side")
            if key in spec.options
        }
        if update:
            slice_configs[name] = config.slices.model_copy(update=update)
    listings = [list_source(s) if s.source_kind.kind == CASE else None for s in specs]
    return _Plan(specs, names, listings, fixed_splits, slice_configs)


def _source_settings(plan: _Plan, spec: SourceSpec, name: str, config: BuildConfig, seed: int, gconf) -> dict:
    """What shapes one source's shards, as JSON: a resumed build must agree with it."""
    settings: dict = {
        "kind": spec.kind,
        "path": str(Path(spec.path).resolve()) if spec.path else None,
        "options": spec.options,
    }
    if spec.source_kind.kind == CASE:
        slices = plan.slice_configs.get(name, config.slices)
        perspective = gconf.model_dump(mode="json") if isinstance(gconf, BaseModel) else gconf
        settings.update(seed=seed, slices=slices.model_dump(mode="json"), perspective=perspective)
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def _check_settings(plan: _Plan, out: Path, config: BuildConfig, seed: int, gconf) -> None:
    """Refuse to resume a source whose shards in ``out`` were made with other settings (finished
    cases would mix two builds); else record the settings (``shards/<source>/settings.json``)."""
    current = {
        name: _source_settings(plan, spec, name, config, seed, gconf)
        for spec, name in zip(plan.specs, plan.names, strict=True)
    }
    for name, settings in current.items():
        path = out / "shards" / name / SETTINGS_FILE
        if not path.is_file():
            continue
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = {}
        if earlier != settings:
            changed = sorted(k for k in settings.keys() | earlier.keys() if settings.get(k) != earlier.get(k))
            raise MimoDataError(
                f"{out}: source {name} was built there with other settings (changed: {', '.join(changed)}); "
                f"resuming would mix two builds. Build into a new folder, or delete {out / 'shards' / name} "
                f"and {out / 'images' / name} to rebuild that source"
            )
    for name, settings in current.items():
        path = out / "shards" / name / SETTINGS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(settings, sort_keys=True, indent=1) + "\n")


def _run_record_sources(
    plan: _Plan, out: Path, on_error: str, progress: bool
) -> tuple[list[dict], list[dict]]:
    """Pass the record sources through (``mimo.data.interop.build``): ``(stats, skipped samples)``."""
    from mimo.data.interop.build import build_record_source

    stats: list[dict] = []
    skipped: list[dict] = []
    for s, n in zip(plan.specs, plan.names, strict=True):
        if s.source_kind.kind == RECORD:
            more, bad, _ = build_record_source(s, n, out, on_error=on_error, progress=progress)
            stats += more
            skipped += bad
    return stats, skipped


def _run_cases(
    plan: _Plan, out: Path, make_job: Callable, workers: int, on_error: str, progress: bool, skipped: list
) -> tuple[list[dict], list[dict]]:
    """Build every segmentation case not already finished: ``(resumed stats, new stats)``;
    a bad case raises or (``on_error="skip"``) is appended to ``skipped``."""
    from tqdm.auto import tqdm

    listings = [lst for s, lst in zip(plan.specs, plan.listings, strict=True) if s.source_kind.kind == CASE]
    total = sum(len(lst.refs) for lst in listings) if all(listings) else None
    bar = tqdm(total=total, desc="cases", unit="case", disable=not progress)
    resumed: list[dict] = []
    done: list[dict] = []

    def handle(job: _Job, fut_result: Callable[[], dict]) -> None:
        try:
            done.append(fut_result())
        except Exception as exc:
            if on_error == "raise":
                raise
            skipped.append({"source": job.source, "case": job.case_id, "error": _describe(exc)})
        finally:
            bar.update(1)

    jobs = _jobs(plan.specs, plan.names, plan.listings, out, resumed, make_job)
    try:
        if workers <= 1:
            for job in jobs:
                handle(job, lambda job=job: _process(job))
        else:
            _run_pool(jobs, workers, handle)
    finally:
        bar.update(len(resumed))
        bar.close()
    return resumed, done


def _check_finished(
    plan: _Plan, out: Path, all_stats: list[dict], on_error: str
) -> tuple[list[str], list[str]]:
    """The checks on the finished cases before anything is merged: declared labels present
    (``(problems, warnings)``), structure names known, case ids distinct across case sources
    (record sources keep their own record ids)."""
    problems, warnings = _check_declared_labels(plan, all_stats, on_error)
    case_names = plan.names_of(CASE)
    for name in case_names:
        _check_known_structures(out, name, [s for s in all_stats if s["source"] == name])
    _check_distinct_cases([s for s in all_stats if s["source"] in set(case_names)])
    return problems, warnings


def _check_declared_labels(plan: _Plan, all_stats: list[dict], on_error: str) -> tuple[list[str], list[str]]:
    """Labels a source's label file declares but none of its cases holds: ``(problems,
    warnings)`` (a warning where the source says such labels are normal, e.g. nnU-Net)."""
    problems, warnings = [], []
    for name, listing in zip(plan.names, plan.listings, strict=True):
        if listing is None or not listing.declared_labels:
            continue
        finished = [s for s in all_stats if s["source"] == name]
        if len(finished) < len(listing.refs):
            continue  # some cases were skipped: absence cannot be judged
        present = {n for s in finished for n in s["present_labels"]}
        for err in check_declared_present(listing.declared_labels, present):
            if listing.absent_labels_warn:
                warnings.append(str(err))
            elif on_error == "raise":
                raise err
            else:
                problems.append(str(err))
    return problems, warnings


def _dropped(all_stats: list[dict]) -> dict[str, dict[str, int]]:
    """``{source: {reason: samples}}`` of the unusable samples record sources dropped."""
    out: dict[str, Counter] = {}
    for s in all_stats:
        for reason, n in (s.get("dropped") or {}).items():
            out.setdefault(s["source"], Counter())[reason] += n
    return {src: dict(sorted(c.items())) for src, c in sorted(out.items())}


def _check_known_structures(out: Path, name: str, stats: list[dict]) -> None:
    """A segmentation source that made no record because its structure names are all unknown to
    the knowledge base is an error, not a build with zero records. Its finished-case markers are
    removed so that a rerun (with ``label_names=`` or the class mapping) rebuilds them."""
    from mimo.data.knowledge import normalize_label

    raw = {(n, s["modality"]) for s in stats for n in s["structures"]}
    if not raw or any(s["records"] for s in stats) or any(normalize_label(n, m) is not None for n, m in raw):
        return
    for s in stats:
        shard_paths(out, name, s["case"])[1].unlink(missing_ok=True)
    (out / "shards" / name / SETTINGS_FILE).unlink(missing_ok=True)  # the rerun may change options
    names = sorted({n for n, _ in raw})
    shown = ", ".join(repr(n) for n in names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    raise MimoDataError(
        f"source {name}: none of its structure names ({shown}) is a structure the knowledge base knows, "
        "so no record can be made; give label_names=FILE mapping them to anatomical names"
    )


def _worker_init() -> None:
    """In each worker: Ctrl-C is the parent's to handle (it ends the workers, nothing is printed
    twice), and the worker ends as soon as its parent is gone (killed with -9, say) instead of
    blocking on an empty queue."""
    import os
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="mimo-parent-watch", daemon=True).start()


def _run_pool(jobs: Iterator[_Job], workers: int, handle: Callable) -> None:
    """Run jobs in a process pool with at most ``2 * workers`` cases in flight."""
    max_in_flight = 2 * workers
    with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init) as pool:
        in_flight: dict[Future, _Job] = {}
        try:
            exhausted = False
            while in_flight or not exhausted:
                while not exhausted and len(in_flight) < max_in_flight:
                    job = next(jobs, None)
                    if job is None:
                        exhausted = True
                        break
                    in_flight[pool.submit(_process, job)] = job
                if not in_flight:
                    break
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in sorted(finished, key=lambda f: (in_flight[f].source, in_flight[f].case_id)):
                    job = in_flight.pop(fut)
                    handle(job, fut.result)
        except BaseException:
            # Ctrl-C or an error: stop at once. A case's shard and marker are written atomically
            # after its records, so a case cut short is simply redone when the build resumes.
            for fut in in_flight:
                fut.cancel()
            _stop_workers(pool)
            raise


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the pool's worker processes now, not after their running cases."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


# ---------------------------------------------------------------- merge


def _terms(by_structure: Counter, all_stats: list[dict]) -> tuple[dict[str, int], list[str]]:
    """Slice counts per canonical term (knowledge base) and the raw names it does not know."""
    try:
        from mimo.data.knowledge import normalize_label
    except ImportError:
        return {}, []
    modality = {n: s["modality"] for s in all_stats for n in s["structures"]}
    terms: Counter[str] = Counter()
    unmapped = []
    for raw, c in by_structure.items():
        term = normalize_label(raw, modality.get(raw))
        if term is None:
            unmapped.append(raw)
        else:
            terms[term] += c
    return dict(sorted(terms.items())), sorted(unmapped)


def _iter_shard_lines(out: Path, stats: Iterable[dict]) -> Iterator[str]:
    for s in stats:
        shard = shard_paths(out, s["source"], s["case"])[0]
        with shard.open("r", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield line.rstrip("\n")


def _check_distinct_cases(all_stats: list[dict]) -> None:
    """Record ids are made from case ids: a case id in two sources would repeat record ids (and
    merge two patients in the split). Raised before any split file is written."""
    owner: dict[str, str] = {}
    for s in all_stats:
        first = owner.setdefault(s["case"], s["source"])
        if first != s["source"]:
            raise MimoDataError(
                f"case id {s['case']!r} comes from both source {first!r} and source {s['source']!r}; "
                "record ids would repeat. Give the sources distinct case ids (e.g. phantom: a different "
                "seed=, mni152: a different slices= range)"
            )


def _assign_splits(all_stats: list[dict], config: BuildConfig, seed: int) -> Callable[[dict], str]:
    """``stats -> split``: patients are split by ``config.splits``; a source with a fixed split
    (``split=`` option, a publisher's split) keeps it, its patients kept apart from the others."""

    def key(s: dict) -> tuple[str, str]:
        return (s["source"], s["patient"]) if "fixed_split" in s else ("", s["patient"])

    assignment = {
        ("", patient): split
        for patient, split in split_patients(
            (s["patient"] for s in all_stats if "fixed_split" not in s), config.splits, seed
        ).items()
    }
    for s in all_stats:
        if "fixed_split" in s:
            if s["fixed_split"] not in config.splits:
                raise MimoDataError(
                    f"source {s['source']}: split={s['fixed_split']!r} is not one of the splits {sorted(config.splits)}"
                )
            assignment[key(s)] = s["fixed_split"]
    return lambda s: assignment[key(s)]


def _mix_selection(counts: Counter, config: BuildConfig, seed: int) -> dict[str, np.ndarray] | None:
    """Which records of each perspective the train split keeps (``{perspective: bool mask}`` in
    shard order) to meet the mix ratios; None to keep everything."""
    if config.ratios is None or not counts:
        return None
    quotas = mix_targets(dict(counts), config.ratios, config.negative_fraction)
    rng = np.random.default_rng(np.random.SeedSequence([seed, MIX_STREAM]))
    keep = {}
    for p in sorted(counts):
        sel = np.zeros(counts[p], dtype=bool)
        sel[rng.choice(counts[p], size=quotas.get(p, 0), replace=False)] = True
        keep[p] = sel
    return keep


def _merge(out: Path, all_stats: list[dict], config: BuildConfig, seed: int) -> dict:
    """Merge case shards into one JSONL per split (streaming; memory independent of size)."""
    split_of = _assign_splits(all_stats, config, seed)
    splits: dict[str, dict] = {}
    by_modality: Counter[str] = Counter()
    by_structure: Counter[str] = Counter()
    by_perspective: Counter[str] = Counter()
    for name in config.splits:
        stats = [s for s in all_stats if split_of(s) == name]
        counts: Counter[str] = Counter()
        for s in stats:
            counts.update(s["perspectives"])
        keep = _mix_selection(counts, config, seed) if name == "train" else None
        seen: Counter[str] = Counter()
        written: Counter[str] = Counter()
        with atomic_open(out / f"{name}.jsonl") as fh:
            for line in _iter_shard_lines(out, stats):
                obj = json.loads(line)
                p = obj.get("perspective") or "unknown"
                i = seen[p]
                seen[p] += 1
                if keep is not None and not keep[p][i]:
                    continue
                obj["split"] = name
                fh.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
                written[p] += 1
        for s in stats:
            by_modality.update(s.get("modalities") or {s["modality"]: s["records"]})
            for n, c in s["structures"].items():
                by_structure[n] += c
        by_perspective.update(written)
        splits[name] = {
            "patients": len({s["patient"] for s in stats}),
            "cases": len(stats),
            "records": sum(written.values()),
            "by_perspective": dict(sorted(written.items())),
            "dropped_by_mix": {p: counts[p] - written[p] for p in sorted(counts) if counts[p] != written[p]},
        }
    terms, unmapped = _terms(by_structure, all_stats)
    return {
        "unmapped_labels": unmapped,
        "slices_by_term": terms,
        "splits": splits,
        "by_perspective": dict(sorted(by_perspective.items())),
        "records_by_modality_before_mix": dict(sorted(by_modality.items())),
        "slices_by_structure": dict(sorted(by_structure.items())),
        "slices": sum(s["slices"] for s in all_stats),
    }


def _whole_number(raw, where: str) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise MimoDataError(f"{where}={raw!r}: expected a whole number >= 1")
    return value
