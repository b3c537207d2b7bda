"""Fixtures: the suite's overfitted tiny model (it knows the bundled shapes example), and ``mimo serve``'s page
around it on 127.0.0.1 (a free port), upload limit 1 MB, for the whole session."""

from __future__ import annotations

import os
import socket

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import pytest  # noqa: E402

from .serve_model import shape_boxes  # noqa: E402

MAX_UPLOAD_MB = 1


@pytest.fixture(scope="session")
def serve_model(tiny_model_dir):
    """``{"dir", "boxes"}``: the suite's shared tiny model and the shapes' boxes."""
    return {"dir": tiny_model_dir, "boxes": shape_boxes()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server(serve_model):
    """The running page: ``{"url", "demo", "predictor"}``."""
    from mimo.serve.app import build_app, launch
    from mimo.serve.model import load_predictor

    predictor = load_predictor(serve_model["dir"], max_new_tokens=40)
    demo = build_app(predictor, model_name="serve-tiny")
    port = free_port()
    launch(
        demo, host="127.0.0.1", port=port, max_upload_mb=MAX_UPLOAD_MB, prevent_thread_lock=True, quiet=True
    )
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "demo": demo, "predictor": predictor}
    finally:
        demo.close()


@pytest.fixture(scope="session")
def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False)
