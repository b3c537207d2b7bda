"""``mimo train CONFIG.yaml [key=value ...] [--resume [CHECKPOINT]] [--nproc N]``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

USER_ERRORS = (ValueError, FileNotFoundError)


def _split(args: list[str], resume: bool) -> tuple[list[str], str | bool | None]:
    """Overrides are ``key=value``; with ``--resume``, one argument without ``=`` is the checkpoint."""
    overrides, paths = [], []
    for arg in args:
        (overrides if "=" in arg else paths).append(arg)
    if paths and not resume:
        raise ValueError(f"argument {paths[0]!r}: expected key=value (a checkpoint path goes after --resume)")
    if len(paths) > 1:
        raise ValueError(f"--resume takes one checkpoint path, got {paths}")
    if not resume:
        return overrides, None
    return overrides, paths[0] if paths else True


def launch_command(
    config: Path, args: list[str], resume: bool, nproc: int, port: int | None = None
) -> list[str]:
    """The ``torchrun`` command line that runs ``mimo.train`` in ``nproc`` processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    cmd += ["--master_port", str(port)] if port else ["--standalone"]
    cmd += ["-m", "mimo.train", str(config), *args]
    if resume:
        cmd.append("--resume")
    return cmd


def train(
    config: Path = typer.Argument(..., help="Training config (YAML); see configs/tiny.yaml."),
    args: list[str] = typer.Argument(None, help="key=value overrides (dotted keys), e.g. optim.lr=1e-4."),
    resume: bool = typer.Option(
        False, "--resume", help="Resume from the latest complete checkpoint, or from the path given after it."
    ),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes on this machine (torchrun; gloo on CPU)."),
) -> None:
    """Train (or fine-tune) MIMO on record files."""
    args = list(args or [])
    from mimo.core.errors import MimoDataError
    from mimo.train.config import load_config

    try:
        overrides, resume_from = _split(args, resume)
        cfg = load_config(config, overrides)
        if nproc > 1:
            env = dict(os.environ)
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
            result = subprocess.run(launch_command(config, args, resume, nproc), env=env, check=False)
            raise typer.Exit(result.returncode)
        from mimo.train.trainer import run

        run(cfg, resume=resume_from)
    except (MimoDataError, *USER_ERRORS) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    """Entry point of ``python -m mimo.train`` (what ``--nproc`` launches on every rank)."""
    app = typer.Typer(add_completion=False)
    app.command()(train)
    app()
