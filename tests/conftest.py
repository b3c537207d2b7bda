"""Suite-wide settings, and the one overfitted tiny model the model, infer and serve tests share."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from filelock import FileLock

# pytest-xdist runs one worker per core: one intra-op thread each avoids oversubscription,
# which makes small-model training many times slower on a 2-core machine.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
# Tiny Adam second moments go denormal; x86 CPUs crawl on them (the trainer does the same).
torch.set_flush_denormal(True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny MIMO overfitted on ``mimo.model.synthetic.overfit_samples()``, saved as a model
    directory with ``history.json``. Trained once per test run, shared by xdist workers.

    ``MIMO_TEST_TINY_MODEL=DIR`` reuses (or makes) it in ``DIR`` across runs.
    """
    from mimo.model.synthetic import overfit_samples, overfit_tiny

    shared = os.environ.get("MIMO_TEST_TINY_MODEL")
    # under xdist each worker's basetemp sits in this run's directory; without it, basetemp is it
    run_dir = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_dir = run_dir.parent
    root = Path(shared) if shared else run_dir / "tiny-overfit"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / "history.json").is_file():
            result = overfit_tiny(overfit_samples())
            result["model"].save_pretrained(root)
            result["processor"].save_pretrained(root)
            (root / "history.json").write_text(json.dumps(result["history"]))
    return root
