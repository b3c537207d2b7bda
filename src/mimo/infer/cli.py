"""``mimo chat``, ``mimo segment-volume`` and ``mimo eval``.

User errors (unreadable files, prompts outside the image, malformed options, incomplete
model directories) print ``error: ...`` and exit with code 2, without a traceback.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import typer

from mimo.core.defaults import MASK_THRESHOLD, MAX_NEW_TOKENS, MAX_NEW_TOKENS_PER_SLICE
from mimo.core.errors import MimoDataError
from mimo.infer.images import ImageInputError

USER_ERRORS = (ImageInputError, MimoDataError, ValueError, FileNotFoundError)


@contextmanager
def user_errors():
    """Turn user errors into ``error: ...`` on stderr and exit code 2."""
    try:
        yield
    except typer.Exit:
        raise
    except USER_ERRORS as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _numbers(text: str, n: int, option: str, expected: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != n or not all(np.isfinite(values)):
        raise ImageInputError(f"{option} {text!r}: expected {expected}")
    return values


def parse_point(text: str) -> list[float]:
    return _numbers(text, 2, "--point", "X,Y in image pixels, e.g. --point 120,88")


def parse_box(text: str) -> list[float]:
    x0, y0, x1, y1 = _numbers(text, 4, "--box", "X0,Y0,X1,Y1 in image pixels, e.g. --box 120,88,230,190")
    if x1 < x0 or y1 < y0:
        raise ImageInputError(f"--box {text!r}: expected x0 <= x1 and y0 <= y1")
    return [x0, y0, x1, y1]


def read_scribble(path: Path) -> list:
    """A scribble JSON: ``[[x, y], ...]`` (one stroke), ``[[[x, y], ...], ...]`` (strokes) or
    ``{"strokes": [...]}``."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ImageInputError(f"{path}: scribble file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImageInputError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict):
        data = data.get("strokes")
    if not isinstance(data, list) or not data:
        raise ImageInputError(
            f"{path}: expected a list of strokes [[[x, y], ...], ...] or {{'strokes': ...}}"
        )
    return data


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    from mimo.infer.images import load_image

    array = load_image(Path(path))
    if array.ndim == 3:
        array = array.max(axis=-1)
    if array.shape != tuple(shape):
        raise ImageInputError(
            f"{path}: mask is {array.shape[1]}x{array.shape[0]}, the image {shape[1]}x{shape[0]}"
        )
    if not (array > 0).any():
        raise ImageInputError(f"{path}: the mask prompt is empty (no pixel > 0)")
    return array > 0


MODEL_HELP = "Model directory (save_pretrained); default: the packaged mimo-tiny."
OVERWRITE_HELP = "Replace output files that already exist (never the command's inputs)."
MAX_REGIONS_HELP = "Most visual prompts (<region>s) in one question."


def _same_file(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def check_output_file(path: Path, inputs: list[Path], overwrite: bool, option: str = "--out") -> None:
    """Refuse ``path`` when it is one of ``inputs`` (always) or exists without ``overwrite``;
    both before any work is done."""
    for given in inputs:
        if given is not None and _same_file(path, given):
            raise ValueError(f"{option} {path}: is an input of this command; choose another output file")
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; expected a file name")
    if path.exists() and not overwrite:
        raise ValueError(f"{option} {path}: already exists; pass --overwrite to replace it")


def check_output_folder(
    folder: Path, patterns: tuple[str, ...], inputs: list[Path], overwrite: bool
) -> list[Path]:
    """The files matching ``patterns`` that a run would replace in ``folder``; refused when one of
    them is an input (always) or, without ``overwrite``, when there are any."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder}: is a file; expected a folder for the outputs")
    existing = sorted({p for pattern in patterns for p in folder.glob(pattern)}) if folder.is_dir() else []
    for path in existing:
        if any(given is not None and _same_file(path, given) for given in inputs):
            raise ValueError(f"--out {folder}: would replace {path.name}, an input of this command")
    if existing and not overwrite:
        raise ValueError(
            f"--out {folder}: already holds {existing[0].name}"
            + (f" and {len(existing) - 1} more output file(s)" if len(existing) > 1 else "")
            + "; pass --overwrite to replace them"
        )
    return existing


def check_slice_option(image: Path, slice_index: int | None) -> None:
    from mimo.infer.images import RASTER_SUFFIXES

    if slice_index is not None and str(image).lower().endswith(RASTER_SUFFIXES):
        raise ValueError(
            f"--slice {slice_index}: {image} is a 2D picture; --slice is for NIfTI volumes and multi-frame DICOM"
        )


MASK_THRESHOLD_HELP = "A pixel is in a mask above this probability (MedPLIB's evaluation uses 0.1)."


FAST_HELP = "Static-KV-cache greedy decoding, compiled on CUDA (same answers); default: on with CUDA."
FOUR_BIT_HELP = "Load the LLM in 4 bits (bitsandbytes NF4); needs a CUDA GPU."


def load_predictor(
    model: Path | None,
    device: str | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    mask_threshold: float = MASK_THRESHOLD,
    max_regions: int | None = None,
    fast: bool | None = None,
    load_in_4bit: bool = False,
):
    """The predictor of ``model`` (default: the packaged mimo-tiny), without transformers'
    progress bars (they are noise on a terminal)."""
    from transformers.utils import logging

    from mimo.infer.predictor import DEFAULT_MAX_REGIONS, Predictor, resolve_model_dir

    logging.disable_progress_bar()
    return Predictor.from_pretrained(
        resolve_model_dir(model),
        device=device,
        max_new_tokens=max_new_tokens,
        mask_threshold=mask_threshold,
        max_regions=max_regions or DEFAULT_MAX_REGIONS,
        fast=fast,
        load_in_4bit=load_in_4bit,
    )


def _print_answer(prediction, console) -> None:
    from mimo.infer.render import marked_text

    if console is not None:
        console.print(marked_text(prediction, rich=True))
    else:
        typer.echo(marked_text(prediction))
    for i, segment in enumerate(prediction.segments):
        typer.echo(
            f"  [{i + 1}] {segment.phrase or '(no phrase)'}: {int(segment.mask.sum())} px, score {segment.score:.2f}"
        )


def chat(
    question: str = typer.Argument(None, help="The question; without it, an interactive session."),
    model: Path | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    image: Path = typer.Option(..., "--image", "-i", help="PNG/JPG, DICOM file or NIfTI volume."),
    slice_index: int = typer.Option(
        None, "--slice", help="Axial slice of a NIfTI volume / frame of a DICOM."
    ),
    point: list[str] = typer.Option(None, "--point", help="X,Y visual prompt (repeatable)."),
    box: list[str] = typer.Option(None, "--box", help="X0,Y0,X1,Y1 visual prompt (repeatable)."),
    scribble: list[Path] = typer.Option(None, "--scribble", help="JSON file of strokes (repeatable)."),
    mask: list[Path] = typer.Option(None, "--mask", help="PNG mask prompt (repeatable)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write overlay, mask PNGs and a JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    device: str = typer.Option(None, help="torch device (default: CPU)."),
    max_new_tokens: int = typer.Option(MAX_NEW_TOKENS, help="Longest answer, in tokens."),
    mask_threshold: float = typer.Option(MASK_THRESHOLD, "--mask-threshold", help=MASK_THRESHOLD_HELP),
    max_regions: int = typer.Option(16, "--max-regions", min=1, help=MAX_REGIONS_HELP),
    fast: bool = typer.Option(None, "--fast/--no-fast", help=FAST_HELP),
    load_in_4bit: bool = typer.Option(False, "--load-in-4bit", help=FOUR_BIT_HELP),
    color: bool = typer.Option(
        None, "--color/--no-color", help="Colour the grounded terms (default: on a TTY)."
    ),
) -> None:
    """Ask about an image; grounded terms are marked [n] and their masks saved with --out.

    Visual prompts become <region> placeholders: put <region> in the question where each
    one goes (points first, then boxes, scribbles, masks), or leave them out and they are
    inserted before the question's final punctuation.
    """
    from mimo.infer.images import load_image

    with user_errors():
        if question is not None and not question.strip():
            raise ValueError("the question is empty; type a question about the image")
        check_slice_option(image, slice_index)
        stale: list[Path] = []
        if out is not None:
            patterns = ("answer.json", "answer_*.png") if question is not None else ("turn[0-9]*",)
            stale = check_output_folder(out, patterns, [image, *(mask or []), *(scribble or [])], overwrite)
        array = load_image(image, slice_index)
        prompts = _chat_prompts(point, box, scribble, mask, array.shape[:2])
        predictor = load_predictor(
            model, device, max_new_tokens, mask_threshold, max_regions, fast=fast, load_in_4bit=load_in_4bit
        )
        turns = _ChatTurns(predictor.chat(array), array, prompts, _console(color), out, stale)
        if question is not None:
            turns.answer(question, "answer", with_prompts=True)
            return
        _chat_loop(turns)


def _chat_prompts(point, box, scribble, mask, shape: tuple[int, int]) -> dict[str, list]:
    """The command line's visual prompts as ``ChatSession.ask`` takes them."""
    return {
        "points": [parse_point(p) for p in point or []],
        "boxes": [parse_box(b) for b in box or []],
        "scribbles": [read_scribble(s) for s in scribble or []],
        "masks": [read_mask(m, shape) for m in mask or []],
    }


def _console(color: bool | None):
    """A rich console that colours the grounded terms, or None (``--color``; default: on a TTY)."""
    if not (sys.stdout.isatty() if color is None else color):
        return None
    from rich.console import Console

    return Console(force_terminal=True)


class _ChatTurns:
    """Answers the questions of ``mimo chat``: prints each, and with ``--out`` writes its files
    (an overlay, mask PNGs, a JSON) under ``stem``, replacing those ``stale`` ones it names."""

    def __init__(
        self, session, image: np.ndarray, prompts: dict, console, out: Path | None, stale: list[Path]
    ):
        self.session, self.image, self.prompts = session, image, prompts
        self.console, self.out, self.stale = console, out, stale

    def answer(self, text: str, stem: str, with_prompts: bool) -> None:
        from mimo.infer.render import write_prediction

        prompts = self.prompts if with_prompts else None
        prediction = self.session.ask(text, **(prompts or {}))
        _print_answer(prediction, self.console)
        if self.out is None:
            return
        for old in [p for p in self.stale if p.name.startswith(stem + "_") or p.name == stem + ".json"]:
            old.unlink(missing_ok=True)  # the replaced answer's files, --overwrite given
        write_prediction(self.out, self.image, prediction, stem=stem, prompts=prompts)
        typer.echo(f"  wrote {Path(self.out) / (stem + '_overlay.png')}")


def _chat_loop(turns: _ChatTurns) -> None:
    """The interactive session: a question per line of stdin (the visual prompts go with the
    first), until ``exit`` or the end of input; a bad question prints its error and goes on."""
    turn = 0
    typer.echo("Ask about the image; 'exit' or end of input to stop.", err=True)
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        if text.lower() in ("exit", "quit"):
            break
        turn += 1
        try:
            turns.answer(text, f"turn{turn:02d}", with_prompts=turn == 1)
        except (ImageInputError, ValueError) as exc:  # keep the session going
            typer.echo(f"error: {exc}", err=True)


def segment_volume(
    volume_path: Path = typer.Argument(..., metavar="VOLUME", help="NIfTI file or DICOM series folder."),
    question: str = typer.Argument(..., help="Asked of every axial slice, e.g. 'Segment the liver.'"),
    model: Path | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    out: Path = typer.Option(None, "--out", "-o", help="Output NIfTI (default: <volume>_mimo.nii.gz)."),
    seg_out: Path = typer.Option(
        None, "--seg-out", help="DICOM SEG file (DICOM input; default beside --out)."
    ),
    reference: Path = typer.Option(None, "--reference", help="Reference mask NIfTI: print the volume Dice."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Slices per batched generation."),
    window: str = typer.Option(None, help="CT window LEVEL,WIDTH in HU (default: the file's or abdomen)."),
    modality: str = typer.Option(None, help="CT, MR ... (default: the DICOM's; NIfTI: CT if it holds HU)."),
    device: str = typer.Option(None, help="torch device (default: CPU)."),
    max_new_tokens: int = typer.Option(MAX_NEW_TOKENS_PER_SLICE, help="Longest answer per slice, in tokens."),
    mask_threshold: float = typer.Option(MASK_THRESHOLD, "--mask-threshold", help=MASK_THRESHOLD_HELP),
    fast: bool = typer.Option(None, "--fast/--no-fast", help=FAST_HELP),
    load_in_4bit: bool = typer.Option(False, "--load-in-4bit", help=FOUR_BIT_HELP),
) -> None:
    """Segment a volume: the question on every axial slice, masks back on the input's grid."""
    from mimo.infer.images import load_volume, parse_window
    from mimo.infer.volume import (
        labels_sidecar,
        read_reference,
        segment_volume,
        volume_dice,
        write_dicom_seg,
        write_nifti,
    )

    with user_errors():
        if not question.strip():
            raise ValueError("the question is empty; type what to segment, e.g. 'Segment the liver.'")
        volume = load_volume(volume_path, window=parse_window(window), modality=modality)
        out, seg_path = _volume_outputs(volume_path, out, seg_out, bool(volume.dicom))
        inputs = [volume_path, reference, *(sorted(volume_path.iterdir()) if volume_path.is_dir() else [])]
        check_output_file(out, inputs, overwrite)
        check_output_file(labels_sidecar(out), inputs, overwrite, option="--out (its label names)")
        if seg_path is not None:
            check_output_file(seg_path, [*inputs, out], overwrite, option="--seg-out")
        ref = read_reference(reference, volume) if reference is not None else None
        predictor = load_predictor(
            model, device, max_new_tokens, mask_threshold, fast=fast, load_in_4bit=load_in_4bit
        )

        def progress(done: int, total: int) -> None:
            typer.echo(f"  slices {done}/{total}", err=True)

        result = segment_volume(predictor, volume, question, batch_size=batch_size, progress=progress)
        write_nifti(out, result, volume)
        typer.echo(f"wrote {out} ({int((result.labels > 0).sum())} voxels)")
        for label, name in sorted(result.names.items()):
            typer.echo(f"  label {label}: {name} ({int((result.labels == label).sum())} voxels)")
        if seg_path is not None:
            write_dicom_seg(seg_path, result, volume)
            typer.echo(f"wrote DICOM SEG {seg_path}")
        if ref is not None:
            typer.echo(f"Dice: {volume_dice(result.labels, ref):.4f}")


def _volume_outputs(volume_path: Path, out: Path | None, seg_out: Path | None, dicom: bool):
    """The label-map NIfTI (``--out``: a file, or a folder to write ``<volume>_mimo.nii.gz`` in)
    and, for DICOM input, the DICOM SEG file; ``--seg-out`` with a NIfTI input is refused."""
    if seg_out is not None and not dicom:
        raise ValueError(
            f"--seg-out {seg_out}: a DICOM SEG needs a DICOM series as input; {volume_path} is NIfTI "
            "(its label map is the --out NIfTI)"
        )
    stem = volume_path.name.removesuffix(".gz").removesuffix(".nii")
    if out is None:
        out = volume_path.parent / f"{stem}_mimo.nii.gz"
    elif out.is_dir():
        out = out / f"{stem}_mimo.nii.gz"
    if not dicom:
        return out, None
    return out, seg_out or out.with_name(out.name.removesuffix(".gz").removesuffix(".nii") + "_seg.dcm")


EVAL_OUTPUTS = ("predictions.jsonl", "report.json", "report.md", "cases.png")


def evaluate(
    model: Path | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    data: Path = typer.Option(..., "--data", "-d", help="Records JSONL (images relative to it)."),
    out: Path = typer.Option(Path("eval_out"), "--out", "-o", help="Output folder; a run there is resumed."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N records."),
    baseline: list[str] = typer.Option(
        None, "--baseline", help="sam-box: SAM prompted with the record's box/point."
    ),
    ablation: list[str] = typer.Option(None, "--ablation", help="text-only: visual prompts removed."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Questions per batched generation."),
    device: str = typer.Option(None, help="torch device (default: CPU)."),
    max_new_tokens: int = typer.Option(MAX_NEW_TOKENS, help="Longest answer, in tokens."),
    mask_threshold: float = typer.Option(MASK_THRESHOLD, "--mask-threshold", help=MASK_THRESHOLD_HELP),
    fast: bool = typer.Option(None, "--fast/--no-fast", help=FAST_HELP),
    load_in_4bit: bool = typer.Option(False, "--load-in-4bit", help=FOUR_BIT_HELP),
) -> None:
    """Evaluate a model on records: report.json, report.md, cases.png and predictions.jsonl."""
    from mimo.infer.evaluate import run_evaluation

    with user_errors():
        for name in EVAL_OUTPUTS:
            if _same_file(out / name, data):
                raise ValueError(f"--out {out}: would replace {name}, the --data file; choose another folder")
        predictor = load_predictor(
            model, device, max_new_tokens, mask_threshold, fast=fast, load_in_4bit=load_in_4bit
        )

        def progress(kind: str, done: int, total: int) -> None:
            typer.echo(f"  {kind}: {done}/{total}", err=True)

        written = run_evaluation(
            predictor,
            data,
            out,
            limit=limit,
            baselines=tuple(baseline or ()),
            ablations=tuple(ablation or ()),
            batch_size=batch_size,
            progress=progress,
        )
        overall = written["summary"]["overall"]

        def fmt(value) -> str:
            return "-" if value is None else f"{value:.4f}"

        typer.echo(
            f"{written['summary']['n_samples']} samples: mIoU {fmt(overall.get('miou'))}, "
            f"Dice {fmt(overall.get('dice'))}, Id acc {fmt(overall.get('id_accuracy'))}, "
            f"ROUGE-L {fmt(overall.get('rouge_l'))}"
        )
        for kind, summary in written["summary"]["comparisons"].items():
            typer.echo(
                f"  {kind}: {summary['n_samples']} samples, mIoU {fmt(summary['overall'].get('miou'))}"
            )
        typer.echo(
            f"wrote {written['report']}, {written['markdown']}"
            + (f", {written['grid']}" if written["grid"] else "")
        )


def demo(
    out: Path = typer.Option(
        Path("mimo-demo-output"), "--out", help="Folder for the overlays and report.md."
    ),
    model: Path | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the report and overlays of an earlier demo."
    ),
) -> None:
    """Run the packaged mimo-tiny on held-out images: a box question, a grounding question, a complex one."""
    from mimo.infer.demo import run_demo

    with user_errors():
        check_output_folder(out, ("report.md", "*_[0-9].png"), [], overwrite)
        run_demo(out, model)
