"""Shared fixtures: synthetic record files and a tiny, fast training config."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from train_records import write_synthetic  # noqa: E402

from mimo.train.config import load_config  # noqa: E402


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("records")
    return {
        "train": write_synthetic(folder, 4, seed=0, name="train"),
        "val": write_synthetic(folder, 2, seed=1, name="val"),
        "folder": folder,
    }


def tiny_overrides(out: Path, train: Path, eval_: Path | None = None) -> list[str]:
    items = [
        f"output_dir={out}",
        f"data.train=[{train}]",
        "data.ratios=null",
        "policy=scratch",
        "model.system_prompt=You are MIMO.",
        "tokenizer.vocab_size=200",
        "optim.lr=1e-3",
        "optim.batch_size=2",
        "log_steps=1",
    ]
    if eval_ is not None:
        items.append(f"data.eval=[{eval_}]")
    return items


@pytest.fixture
def make_config(records, tmp_path):
    def make(*extra: str, out: Path | None = None, eval_: bool = False):
        over = tiny_overrides(out or tmp_path / "run", records["train"], records["val"] if eval_ else None)
        return load_config(None, [*over, *extra])

    return make
