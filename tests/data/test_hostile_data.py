"""Issue 13 on the data commands: a killed build leaves no workers (defect 8), Ctrl-C stops with one
line saying the build can be resumed (8), validate/stats report non-UTF-8 bytes, truncated RLE and
empty split files by file and line (9), and a case skipped with --on-error skip leaves no PNGs (12)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from dataset_fixtures import make_nnunet
from standin_generator import failing_on
from standin_generator import generate as standin_generate
from typer.testing import CliRunner

from mimo.cli import app
from mimo.core import rle
from mimo.data.build import BuildConfig, build

runner = CliRunner()
HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def slow_generate(sample, rng, config):
    """The stand-in generator, slowed down so that a build is still running when it is killed:
    the first two patients' cases take a second a slice, the others 30 s (a loaded machine
    must not finish the build before the test signals it)."""
    time.sleep(1.0 if sample.case_id.startswith(("pat00", "pat01")) else 30.0)
    return standin_generate(sample, rng, config)


# ---------------------------------------------------------------- defect 9: validate and stats


def _records_folder(tmp_path: Path) -> Path:
    """A tiny valid build output: one 4x5 image and one record with a mask."""
    from PIL import Image

    folder = tmp_path / "set"
    (folder / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(folder / "images" / "a.png")
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True
    encoded = rle.encode(mask)
    record = {
        "id": "r0",
        "image": "images/a.png",
        "masks": {"m0": {"size": list(encoded.size), "counts": encoded.counts}},
        "conversations": [
            {"from": "human", "value": "<image>\nSegment the lesion."},
            {"from": "gpt", "value": "<p>lesion</p> <SEG>", "masks": ["m0"]},
        ],
    }
    (folder / "train.jsonl").write_text(json.dumps(record) + "\n")
    return folder


def test_validate_and_stats_report_non_utf8_bytes_by_line(tmp_path):
    folder = _records_folder(tmp_path)
    good = (folder / "train.jsonl").read_bytes()
    (folder / "train.jsonl").write_bytes(good + b'{"id": "r1", "image": "caf\xe9.png"}\n')
    result = runner.invoke(app, ["data", "validate", str(folder)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "line 2: not UTF-8 text (byte 0xe9" in result.output
    result = runner.invoke(app, ["data", "stats", str(folder)])
    assert result.exit_code == 2, result.output
    assert f"error: {folder / 'train.jsonl'}:2: not UTF-8 text" in result.output
    assert "Traceback" not in result.output


def test_validate_flags_a_truncated_rle(tmp_path):
    folder = _records_folder(tmp_path)
    record = json.loads((folder / "train.jsonl").read_text())
    record["masks"]["m0"]["counts"] = rle.encode(np.ones((1, 5), bool)).counts  # 5 pixels for a 4x5 mask
    (folder / "train.jsonl").write_text(json.dumps(record) + "\n")
    result = runner.invoke(app, ["data", "validate", str(folder)])
    assert result.exit_code == 1, result.output
    assert "line 1 (r0): masks['m0']" in result.output
    assert "the runs cover 5 pixels but size 4x5 has 20" in result.output


def test_rle_decode_refuses_runs_that_do_not_fill_the_mask():
    mask = np.zeros((6, 7), bool)
    mask[2:5, 1:3] = True
    counts = rle.encode(mask).counts
    assert np.array_equal(rle.decode({"size": [6, 7], "counts": counts}), mask)
    for bad in (counts[:-1], counts + counts[-1], "}}}"):
        with pytest.raises(ValueError, match="rle.decode"):
            rle.decode({"size": [6, 7], "counts": bad})
    with pytest.raises(ValueError, match="cover 41 pixels"):
        rle.decode({"size": [6, 7], "counts": [40, 1]})


def test_validate_flags_an_empty_split_file(tmp_path):
    folder = _records_folder(tmp_path)
    (folder / "val.jsonl").write_text("")
    result = runner.invoke(app, ["data", "validate", str(folder)])
    assert result.exit_code == 1, result.output
    assert "val.jsonl: 0 record(s)" in result.output and "no records" in result.output
    assert "train.jsonl: 1 record(s), no problems" in result.output


# ---------------------------------------------------------------- defect 12: --on-error skip


def test_a_skipped_case_leaves_no_images_behind(tmp_path):
    root = make_nnunet(tmp_path / "Dataset001_Toy")
    out = tmp_path / "out"
    config = BuildConfig(splits={"train": 1.0}, ratios=None)
    report = build(
        [f"nnunet:{root}"], out, config, on_error="skip", generator=failing_on("pat02"), progress=False
    )
    assert [s["case"] for s in report["skipped"]] == ["pat02_a"]
    images = sorted(p.name for p in (out / "images").rglob("*.png"))
    assert images and all(name.startswith("pat01_a") for name in images), images


# ---------------------------------------------------------------- defect 8: killed and interrupted builds


def _start_build(tmp_path: Path, **popen) -> tuple[subprocess.Popen, Path]:
    root = make_nnunet(tmp_path / "Dataset001_Toy", case_ids=tuple(f"pat{i:02d}_a" for i in range(8)))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(HERE)]), OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-c", "from mimo.cli import app; app()", "data", "build",
        "--source", f"nnunet:{root}", "--out", str(out), "--workers", "2",
        "--generator", "test_hostile_data:slow_generate", "--splits", "train=1", "--ratios", "none",
        "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )
    return proc, out


def _workers(proc: subprocess.Popen, out: Path, n: int = 2, timeout: float = 60.0) -> list[psutil.Process]:
    """The build's worker processes, once ``n`` of them run and a case is under way."""
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = parent.children(recursive=True)
        # a finished case means the workers are past their start-up (a signal during the
        # interpreter's start would test Python's start-up, not the build)
        if len(children) >= n and any(out.glob("shards/*/*.done.json")):
            return children
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the build did not start its workers")


def test_kill_9_of_a_build_leaves_no_worker_behind(tmp_path):
    proc, out = _start_build(tmp_path)
    workers = _workers(proc, out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [(p.pid, p.status()) for p in alive]
    proc.stdout.close()
    proc.stderr.close()


def test_ctrl_c_stops_the_build_with_one_line_and_it_resumes(tmp_path):
    proc, out = _start_build(tmp_path, start_new_session=True)
    workers = _workers(proc, out)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "run the same command again to resume" in lines[0], stderr
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    assert not (out / "train.jsonl").exists()
    # the same build, resumed in-process, finishes what was left
    root = tmp_path / "Dataset001_Toy"
    config = BuildConfig(splits={"train": 1.0}, ratios=None)
    report = build([f"nnunet:{root}"], out, config, generator=standin_generate, progress=False)
    assert report["cases"]["done"] == 8 and report["cases"]["resumed"] + report["cases"]["built_now"] == 8


def test_preview_never_replaces_a_file_without_overwrite(tmp_path):
    folder = _records_folder(tmp_path)
    picture = tmp_path / "grid.png"
    picture.write_bytes(b"an earlier grid")
    args = ["data", "preview", str(folder), "--n", "1", "--out", str(picture)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output, result.output
    assert picture.read_bytes() == b"an earlier grid"
    result = runner.invoke(
        app, ["data", "preview", str(folder), "--out", str(folder / "train.jsonl"), "--overwrite"]
    )
    assert result.exit_code == 2 and "is the records file" in result.output, result.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert picture.read_bytes()[:4] == b"\x89PNG"
