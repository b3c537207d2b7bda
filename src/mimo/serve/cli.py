"""``mimo serve``: the web page (Gradio) around one model."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import typer

from mimo.core.defaults import MAX_NEW_TOKENS
from mimo.infer.cli import FAST_HELP, FOUR_BIT_HELP


def check_port(host: str, port: int) -> None:
    """``ValueError`` when ``host:port`` cannot be bound now (in use, or not this machine's
    address): checked before the model is loaded, not after."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OverflowError) as exc:
        raise ValueError(f"--host {host!r}: not an address of this machine ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise ValueError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "is another server using it? pass --port with a free one"
            ) from None


def _stop_on_sigterm() -> None:
    """SIGTERM stops the server like Ctrl+C does, so that its files are deleted."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def serve(
    model: Path = typer.Option(
        None, "--model", "-m", help="Model directory (save_pretrained); default: the packaged mimo-tiny."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind; 0.0.0.0 exposes the page to the network."),
    port: int = typer.Option(
        7860, min=1, max=65535, help="Port (the next free one is not searched: it must be free)."
    ),
    max_upload_mb: float = typer.Option(50, "--max-upload-mb", min=0.01, help="Largest upload, in MB."),
    device: str = typer.Option(None, help="torch device (default: CPU)."),
    max_new_tokens: int = typer.Option(MAX_NEW_TOKENS, help="Longest answer, in tokens."),
    max_regions: int = typer.Option(16, "--max-regions", min=1, help="Most visual prompts in one question."),
    fast: bool = typer.Option(None, "--fast/--no-fast", help=FAST_HELP),
    load_in_4bit: bool = typer.Option(False, "--load-in-4bit", help=FOUR_BIT_HELP),
) -> None:
    """Serve the MIMO viewer: upload or pick an image, draw prompts, chat, download masks.

    One model in memory; requests are queued and answered one at a time. The HTTP API
    (/ask) is usable from gradio_client; see docs/serve.md. Files derived from users' images
    live in one private temporary folder, deleted when a session ends and when the server stops.
    """
    from mimo.infer.cli import user_errors
    from mimo.infer.predictor import check_device
    from mimo.serve.files import ServeFiles
    from mimo.serve.model import load_predictor, resolve_model_dir

    with user_errors():
        model_dir = resolve_model_dir(model)  # no model: "error: ... pass --model DIR"
        check_device(device)
        check_port(host, port)
        predictor = load_predictor(
            model_dir, device, max_new_tokens, max_regions=max_regions, fast=fast, load_in_4bit=load_in_4bit
        )
    files = ServeFiles()
    os.environ["GRADIO_TEMP_DIR"] = str(files.gradio_dir)  # uploads and Gradio's copies, too
    try:
        from mimo.serve.app import build_app, launch

        _stop_on_sigterm()
        typer.echo(f"mimo serve: model {model_dir}; http://{host}:{port}/ (Ctrl+C to stop)", err=True)
        demo = build_app(predictor, model_name=model_dir.name, files=files)
        launch(demo, host=host, port=port, max_upload_mb=max_upload_mb)
    finally:
        files.cleanup()
