"""``mimo data ...`` commands: build, stats, validate, preview."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer

from mimo.core.errors import MimoDataError
from mimo.data.readers import kinds_help

app = typer.Typer(no_args_is_help=True)

SPLIT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _record_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise MimoDataError("not a folder (expected a build output folder with *.jsonl)", directory)
    files = sorted(p for p in directory.glob("*.jsonl") if not p.name.startswith("."))
    if not files:
        raise MimoDataError("no *.jsonl record files", directory)
    return files


def _parse_splits(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, eq, val = part.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise MimoDataError(
                f"--splits {text!r}: expected name=fraction[,name=fraction...], e.g. train=0.8,val=0.1,test=0.1"
            ) from None
        if not eq or not name.strip():
            raise MimoDataError(f"--splits {text!r}: expected name=fraction pairs")
    return out


def _resolve_generator(target: str):
    import importlib

    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise MimoDataError(
            f"--generator {target!r}: cannot import ({exc}); expected module:function"
        ) from None


def _perspective_options(items: list[str]) -> dict:
    """``KEY=VALUE`` strings -> a checked PerspectiveConfig dict (values read as YAML scalars)."""
    import yaml
    from pydantic import ValidationError

    from mimo.data.perspectives import PerspectiveConfig

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MimoDataError(f"--perspective {item!r}: expected KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value)
    try:
        PerspectiveConfig(**options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise MimoDataError(f"--perspective: {problems}") from None
    return options


@app.command(epilog=kinds_help())
def build(
    source: list[str] = typer.Option(
        ...,
        "--source",
        "-s",
        help="KIND:PATH[,key=value...]; repeat for several sources. The kinds and their options are "
        "listed below; every kind takes name=NAME and split=NAME (everything in that split), segmentation "
        "kinds also max_slices=N, stride=N and max_side=N (their own slice settings).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder (an unfinished build there is resumed)."
    ),
    workers: int = typer.Option(1, help="Worker processes (cases in parallel)."),
    seed: int = typer.Option(0, help="Seed; the same seed gives byte-identical output."),
    on_error: str = typer.Option(
        "raise", help="raise: stop at a bad case; skip: skip it and list it in the report."
    ),
    ratios: str = typer.Option("1:2:2:1:1", help="I:II:III:IV:VQA mix of the train split, or 'none'."),
    splits: str = typer.Option("train=0.8,val=0.1,test=0.1", help="Split fractions by patient."),
    max_slices: int = typer.Option(24, help="At most this many slices per case."),
    stride: int = typer.Option(3, help="Minimum distance between chosen slices."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    generator: str = typer.Option(
        None,
        help="module:function making records from a slice (default mimo.data.perspectives.generate_records).",
    ),
    perspective: list[str] = typer.Option(
        None,
        "--perspective",
        help="KEY=VALUE option of the record generator (mimo.data.perspectives.PerspectiveConfig), "
        "e.g. --perspective iii_per_slice=4; repeatable.",
    ),
) -> None:
    """Build MIMOSeg-style records from segmentation datasets and question/answer sets."""
    from mimo.data.build import build as run_build

    try:
        if on_error not in ("raise", "skip"):
            raise MimoDataError(f"--on-error {on_error!r}: expected raise or skip")
        cfg = _build_config(max_slices, stride, splits, ratios, perspective or [])
        gen = _resolve_generator(generator) if generator else None
        report = run_build(
            source, out, cfg, workers=workers, on_error=on_error, seed=seed, progress=progress, generator=gen
        )
    except MimoDataError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: the cases finished so far are kept in {out}; run the same command again to resume",
            err=True,
        )
        raise typer.Exit(130) from None
    _print_build_report(report, out)


def _build_config(max_slices: int, stride: int, splits: str, ratios: str, perspective: list[str]):
    """The ``BuildConfig`` of ``mimo data build``'s options."""
    from mimo.data.build import BuildConfig, parse_ratios
    from mimo.data.slices import SliceConfig

    return BuildConfig(
        slices=SliceConfig(max_slices=max_slices, stride=stride),
        splits=_parse_splits(splits),
        ratios=None if ratios.lower() == "none" else parse_ratios(ratios),
        perspective=_perspective_options(perspective),
    )


def _print_build_report(report: dict, out: Path) -> None:
    """The build's summary: cases and splits on stdout; skipped cases, problems, warnings and
    dropped samples on stderr."""
    c = report["cases"]
    typer.echo(
        f"cases: {c['done']} done ({c['built_now']} now, {c['resumed']} resumed), {c['skipped']} skipped"
    )
    for name, s in report["splits"].items():
        typer.echo(f"{name}: {s['records']} records, {s['patients']} patients, {s['cases']} cases")
    for sk in report["skipped"]:
        typer.echo(f"skipped {sk['source']}/{sk['case']}: {sk['error']}", err=True)
    for p in report["problems"]:
        typer.echo(f"problem: {p}", err=True)
    for w in report.get("warnings", []):
        typer.echo(f"warning: {w}", err=True)
    if report.get("dropped"):
        total = sum(n for reasons in report["dropped"].values() for n in reasons.values())
        detail = "; ".join(
            f"{src}: " + ", ".join(f"{n} {reason}" for reason, n in reasons.items())
            for src, reasons in report["dropped"].items()
        )
        typer.echo(
            f"warning: dropped {total} unusable sample(s) ({detail}); see 'dropped' in the report", err=True
        )
    typer.echo(f"report: {out / 'build_report.json'}")


@app.command()
def stats(directory: Path = typer.Argument(..., help="Build output folder.")) -> None:
    """Count records per split, perspective, modality; masks and regions."""
    from mimo.core.records import not_utf8, text_lines

    try:
        files = _record_files(directory)
    except MimoDataError as exc:
        _fail(exc)
    for f in files:
        persp, mods = Counter(), Counter()
        n = n_masks = n_regions = 0
        with text_lines(f) as fh:
            for lineno, line in fh:
                if not line.strip():
                    continue
                if isinstance(line, UnicodeDecodeError):
                    _fail(MimoDataError(not_utf8(line), f"{f}:{lineno}"))
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    _fail(MimoDataError(f"malformed JSON ({exc.msg})", f"{f}:{lineno}"))
                if not isinstance(obj, dict):
                    _fail(MimoDataError(f"expected a JSON object, got {type(obj).__name__}", f"{f}:{lineno}"))
                n += 1
                persp[obj.get("perspective") or "?"] += 1
                mods[obj.get("modality") or "?"] += 1
                n_masks += len(obj.get("masks") or {})
                n_regions += len(obj.get("regions") or [])
        typer.echo(f"{f.name}: {n} records, {n_masks} masks, {n_regions} regions")
        typer.echo("  perspective: " + ", ".join(f"{k}={v}" for k, v in sorted(persp.items())))
        typer.echo("  modality:    " + ", ".join(f"{k}={v}" for k, v in sorted(mods.items())))
    rep = directory / "build_report.json"
    if rep.is_file():
        r = json.loads(rep.read_text())
        typer.echo(
            f"build: {r['cases']['done']} cases, {r['slices']} slices, {r['cases']['skipped']} skipped"
        )


@app.command()
def validate(directory: Path = typer.Argument(..., help="Build output folder (or one .jsonl file).")) -> None:
    """Check every record against its image and masks; exit 1 when problems are found."""
    from mimo.data.validate import validate_records

    try:
        files = [directory] if directory.is_file() else _record_files(directory)
        bad = 0
        for f in files:
            report = validate_records(f)
            typer.echo(report.summary())
            bad += len(report.problems)
    except MimoDataError as exc:
        _fail(exc)
    if bad:
        raise typer.Exit(1)


@app.command()
def preview(
    directory: Path = typer.Argument(..., help="Build output folder (or one .jsonl file)."),
    n: int = typer.Option(16, "--n", help="Number of records."),
    out: Path = typer.Option(Path("preview.png"), "--out", "-o", help="PNG to write."),
    split: str = typer.Option("train", help="Which split file of the folder."),
    seed: int = typer.Option(0, help="Which records (sampling seed)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists (never an input)."),
) -> None:
    """Draw a grid of records: image, masks, regions, question and answer."""
    from mimo.data.preview import preview_grid

    try:
        path = directory if directory.is_file() else directory / f"{split}.jsonl"
        if not path.is_file():
            raise MimoDataError("records file not found", path)
        if n < 1:
            raise MimoDataError(f"--n must be at least 1, got {n}")
        if out.resolve() == path.resolve() or (out.exists() and not out.is_file()):
            raise MimoDataError(
                "is the records file or a folder; expected a new PNG file name", f"--out {out}"
            )
        if out.exists() and not overwrite:
            raise MimoDataError("already exists; pass --overwrite to replace it", f"--out {out}")
        preview_grid(path, out, n=n, seed=seed)
    except MimoDataError as exc:
        _fail(exc)
    typer.echo(f"wrote {out}")
