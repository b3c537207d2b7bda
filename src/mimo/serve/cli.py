"""``mimo serve``: the web page (Gradio) around one model."""

from __future__ import annotations

from pathlib import Path

import typer

from mimo.infer.cli import FAST_HELP, FOUR_BIT_HELP


def serve(
    model: Path = typer.Option(
        None, "--model", "-m", help="Model directory (save_pretrained); default: the packaged mimo-tiny."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind; 0.0.0.0 exposes the page to the network."),
    port: int = typer.Option(7860, help="Port (the next free one is not searched: it must be free)."),
    max_upload_mb: float = typer.Option(50, "--max-upload-mb", min=0.01, help="Largest upload, in MB."),
    device: str = typer.Option(None, help="torch device (default: CPU)."),
    max_new_tokens: int = typer.Option(128, help="Longest answer, in tokens."),
    fast: bool = typer.Option(None, "--fast/--no-fast", help=FAST_HELP),
    load_in_4bit: bool = typer.Option(False, "--load-in-4bit", help=FOUR_BIT_HELP),
) -> None:
    """Serve the MIMO viewer: upload or pick an image, draw prompts, chat, download masks.

    One model in memory; requests are queued and answered one at a time. The HTTP API
    (/ask) is usable from gradio_client; see docs/serve.md.
    """
    from mimo.infer.cli import user_errors
    from mimo.serve.model import load_predictor, resolve_model_dir

    with user_errors():
        model_dir = resolve_model_dir(model)  # no model: "error: ... pass --model DIR"
        predictor = load_predictor(model_dir, device, max_new_tokens, fast=fast, load_in_4bit=load_in_4bit)
    from mimo.serve.app import build_app, launch

    typer.echo(f"mimo serve: model {model_dir}; http://{host}:{port}/ (Ctrl+C to stop)", err=True)
    launch(build_app(predictor, model_name=model_dir.name), host=host, port=port, max_upload_mb=max_upload_mb)
