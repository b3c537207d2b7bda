"""Issue 13 on ``mimo serve``: limits on /ask (defect 5), per-session files deleted and nothing left
after the server stops (7), messages written for the page (12), the port checked before the model
loads (12), and a bounded load test of concurrent good and bad requests on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from mimo.serve.app import examples_dir

from .conftest import free_port

SHAPES = examples_dir() / "shapes.png"
SRC = Path(__file__).parents[2] / "src"


def _ask(client, path, question="What is in <region>?", prompts="", slice_index=-1, window="auto"):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), question, prompts, slice_index, window, api_name="/ask")


def _app_error(client, *args) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        _ask(client, *args)
    return str(info.value)


# ---------------------------------------------------------------- defect 5 on /ask


def test_ask_refuses_a_question_beyond_the_context(client):
    message = _app_error(client, SHAPES, " ".join(["liver"] * 10_000) + "?")
    assert "context of 1024 tokens" in message


def test_ask_refuses_more_points_than_the_maximum(client):
    points = json.dumps({"points": [[i, i] for i in range(2000)]})
    message = _app_error(client, SHAPES, "What are these?", points)
    assert "2000 visual prompts: at most 16 per question" in message


# ---------------------------------------------------------------- defect 12: messages for the page


def test_messages_name_the_upload_not_server_paths_or_flags(client, tmp_path):
    junk = tmp_path / "my scan.png"
    junk.write_bytes(b"not an image")
    message = _app_error(client, junk, "What is this?")
    assert "my scan.png" in message
    assert "/tmp" not in message and os.sep + "gradio" not in message, message
    message = _app_error(client, SHAPES, "What is this?", "", -1, "40,0")
    assert "window '40,0'" in message and "--" not in message


def test_an_unexpected_failure_reaches_the_client_as_a_page_message(server, client, monkeypatch):
    predictor = server["predictor"]

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error at /srv/secret/mimo-serve-abc/turn01.png")

    monkeypatch.setattr(predictor, "predict", broken)
    message = _app_error(client, SHAPES, "Segment the square.")
    assert "The model failed on this question" in message
    assert "secret" not in message and "RuntimeError" not in message


def test_for_page_keeps_names_and_presets():
    from mimo.serve.handlers import for_page

    text = "--window '1,0': bad; /tmp/gradio/3f2a/scan one.png and /tmp/gradio/x/scan.dcm: lung -600/1500"
    assert for_page(text) == "window '1,0': bad; scan one.png and scan.dcm: lung -600/1500"


# ---------------------------------------------------------------- defect 7: session files


def test_session_files_are_pruned_and_deleted_with_the_session(server, serve_model, tmp_path):
    from mimo.serve.files import MAX_TURNS_KEPT, ServeFiles
    from mimo.serve.handlers import Handlers

    files = ServeFiles(tmp_path / "serve-root")
    handlers = Handlers(server["predictor"], files)
    viewer = handlers.open_file(None, str(SHAPES))[0]
    for _ in range(MAX_TURNS_KEPT + 2):
        viewer = handlers.ask(viewer, "Segment the square.")[0]
    [folder] = list(files.sessions_dir.iterdir())
    turns = sorted({p.name.split("_")[0].split(".")[0] for p in folder.iterdir()})
    assert turns == [f"turn{t:02d}" for t in range(3, MAX_TURNS_KEPT + 3)]
    # opening another file ends the old image's downloads; the session's end deletes the rest
    viewer = handlers.ask(handlers.open_file(viewer, str(SHAPES))[0], "Segment the square.")[0]
    assert not folder.exists() and len(list(files.sessions_dir.iterdir())) == 1
    handlers.release(viewer)
    assert list(files.sessions_dir.iterdir()) == []
    files.cleanup()
    assert not files.root.exists()


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("mimo serve did not come up")


def test_nothing_is_left_after_the_server_stops(serve_model, tmp_path):
    from gradio_client import Client

    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=str(SRC), GRADIO_ANALYTICS_ENABLED="False")
    env.pop("GRADIO_TEMP_DIR", None)
    command = [
        sys.executable,
        "-c",
        "from mimo.cli import app; app()",
        "serve",
        "--model",
        str(serve_model["dir"]),
    ]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--max-new-tokens", "8"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_up(url, proc)
        answer, _ = _ask(Client(url, verbose=False), SHAPES, "Segment the square.")
        assert isinstance(answer, str)
        written = [p for p in temp.rglob("*") if p.is_file()]
        assert any(p.name == "shapes.png" for p in written), written  # the upload, in the server's folder
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert list(temp.iterdir()) == [], list(temp.rglob("*"))


def test_a_busy_port_is_reported_before_the_model_loads(serve_model, monkeypatch):
    import mimo.serve.model
    from mimo.cli import app

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the port was checked")

    monkeypatch.setattr(mimo.serve.model, "load_predictor", never)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--model", str(serve_model["dir"]), "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: --port {port}: cannot listen on 127.0.0.1:{port}")
    result = CliRunner().invoke(app, ["serve", "--model", str(serve_model["dir"]), "--device", "banana"])
    assert result.exit_code == 2 and "device 'banana'" in result.output, result.output
    result = CliRunner().invoke(app, ["serve", "--model", str(serve_model["dir"]), "--host", "256.1.1.1"])
    assert result.exit_code == 2 and "--host '256.1.1.1': not an address" in result.output, result.output


# ---------------------------------------------------------------- load test

LOAD_ROUNDS = 2
CLIENTS = 6  # requests in flight at once
RSS_BOUND_MB = 300  # the server process may grow this much above its idle size under the load


def _bad_requests(tmp_path: Path) -> list[tuple]:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    return [
        (SHAPES, "   ", ""),
        (SHAPES, "What?", "{not json"),
        (SHAPES, "What is in <region>?", '{"boxes": [[0, 0, 500, 500]]}'),
        (junk, "What is this?", ""),
        (SHAPES, "What are these?", json.dumps({"points": [[1, 1]] * 40})),
        (SHAPES, "liver " * 6000, ""),
    ]


class PeakRss:
    """The peak resident memory of this process (the server runs in it), sampled every 20 ms."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.baseline = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def test_load_concurrent_good_and_bad_requests(server, client, serve_model, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    good = [
        (SHAPES, "What is in <region>?", json.dumps({"boxes": [box]}))
        for box in serve_model["boxes"].values()
    ]
    good += [
        (SHAPES, "Segment the square.", ""),
        (examples_dir() / "mni152_t1_axial.png", "Segment the brain.", ""),
    ]
    expected = [_ask(client, *request) for request in good]  # one by one
    bad = _bad_requests(tmp_path)
    requests = [
        (kind, i, r)
        for _ in range(LOAD_ROUNDS)
        for kind, rs in (("good", good), ("bad", bad))
        for i, r in enumerate(rs)
    ]
    load_client = Client(server["url"], verbose=False, httpx_kwargs={"timeout": 300})

    def call(request):
        try:
            return _ask(load_client, *request)
        except Exception as exc:  # noqa: BLE001 - the bad ones must fail, with a message
            return exc

    start = time.monotonic()
    with PeakRss() as rss, ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(call, [request for _, _, request in requests]))
    elapsed = time.monotonic() - start
    for (kind, i, _), outcome in zip(requests, outcomes, strict=True):
        if kind == "good":
            assert not isinstance(outcome, Exception), outcome
            assert list(outcome) == list(expected[i]), (i, outcome[0], expected[i][0])
        else:
            assert type(outcome).__name__ == "AppError" and str(outcome).strip(), repr(outcome)
            assert "Traceback" not in str(outcome)
    grown_mb = (rss.peak - rss.baseline) / 2**20
    print(
        f"\nserve load test: {len(requests)} requests from {CLIENTS} concurrent clients "
        f"({len(good) * LOAD_ROUNDS} good, {len(bad) * LOAD_ROUNDS} bad) in {elapsed:.1f} s; server process RSS "
        f"peak {rss.peak / 2**20:.0f} MB, {grown_mb:.0f} MB above idle (bound {RSS_BOUND_MB} MB)"
    )
    assert grown_mb < RSS_BOUND_MB
    answer, _ = _ask(client, SHAPES, "Segment the square.")  # still serving
    assert answer == expected[len(serve_model["boxes"])][0]


def test_the_page_refuses_long_questions_and_many_prompts_in_its_words(server, tmp_path):
    from mimo.serve.files import ServeFiles
    from mimo.serve.handlers import Handlers

    handlers = Handlers(server["predictor"], ServeFiles(tmp_path / "root"))
    viewer = handlers.open_file(None, str(SHAPES))[0]
    error = Handlers.OUTPUTS.index("error")
    with pytest.warns(UserWarning, match="the question is too long"):  # gr.Warning outside a request
        page = handlers.ask(viewer, "liver " * 3000)
    assert "context of 1024 tokens" in page[error]["value"] and viewer.turn == 0
    for x in range(20):
        viewer.prompts.click("point", x, x)
    with pytest.warns(UserWarning, match="at most 16 per question"):
        page = handlers.ask(viewer, "What are these?")
    assert "20 visual prompts: at most 16 per question" in page[error]["value"] and viewer.turn == 0
    handlers.files.cleanup()
