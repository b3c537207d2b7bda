"""Atomic training checkpoints: ``checkpoint-<step>/`` appears only when complete.

A checkpoint is written into ``checkpoint-<step>.tmp/``, every file fsynced, then renamed. A
kill during saving leaves a ``.tmp`` folder that resume ignores (and the next save removes).

Contents (one process, or DDP): ``model.safetensors`` (the whole model, LoRA wrappers included),
``optimizer.pt`` and ``scheduler.pt`` (tensors and plain values, loaded with
``weights_only=True``), ``rng_state_<rank>.pt`` + ``rng_state_<rank>.json``,
``trainer_state.json`` (step, epoch, seed, world size) and the processor (tokenizer inside).
Under DeepSpeed or FSDP the sharded model/optimizer state is written by
``accelerator.save_state`` into the same temporary folder.

``trainer_state.json``, written last, lists every other file with its size and SHA-256: a
checkpoint counts as complete only while every listed file is there, whole and unchanged.
``--resume`` takes the newest such checkpoint and says which newer ones it skipped and why (a
file truncated by a full disk, a folder half deleted by rotation). Rotation first renames a
checkpoint to ``checkpoint-<step>.deleting``, so a kill while deleting leaves no half checkpoint
under a checkpoint's name.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from mimo.core.files import fsync_dir, fsync_tree, replace_folder

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_manifest(root: Path) -> dict[str, list]:
    """``{relative path: [size, sha256]}`` of every file under ``root``."""
    return {
        path.relative_to(root).as_posix(): [path.stat().st_size, _sha256(path)]
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a complete, intact checkpoint, or None when it is."""
    path = Path(path)
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except FileNotFoundError:
        return f"{STATE_FILE} missing"
    except (OSError, ValueError) as exc:
        return f"{STATE_FILE} unreadable ({exc})"
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        return f"{STATE_FILE} holds no step"
    for name, (size, digest) in (state.get("files") or {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} missing"
        if file.stat().st_size != size:
            return f"{name} is {file.stat().st_size} bytes, {size} were written (truncated or overwritten)"
        if _sha256(file) != digest:
            return f"{name} differs from what was written (SHA-256 mismatch)"
    return None


def resume_point(output_dir: str | Path) -> tuple[Path | None, list[str]]:
    """The newest intact checkpoint of ``output_dir`` and one line per newer one it passes over."""
    skipped = []
    for path in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append(f"{path.name} is not usable: {problem}")
    return None, skipped


def _delete(path: Path) -> None:
    """Remove a checkpoint: renamed out of the checkpoints' names first, then deleted."""
    doomed = path.with_name(path.name + ".deleting")
    if doomed.exists():
        shutil.rmtree(doomed)
    os.replace(path, doomed)
    fsync_dir(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Checkpoints (``checkpoint-<step>`` with a trainer state), oldest first; see :func:`resume_point`."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest intact checkpoint (None when there is none)."""
    return resume_point(output_dir)[0]


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": [kind, int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(py_state), py_gauss],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_state, py_gauss = meta["python"]
    random.setstate((version, tuple(py_state), py_gauss))


def save_checkpoint(trainer, step: int) -> Path:
    """Write ``checkpoint-<step>`` atomically (all ranks call this; rank 0 renames)."""
    acc = trainer.accelerator
    out = Path(trainer.config.output_dir)
    final = out / f"checkpoint-{step}"
    tmp = out / f"checkpoint-{step}.tmp"
    if acc.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        for leftover in out.glob("checkpoint-*.deleting"):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    if trainer.sharded:
        acc.save_state(str(tmp), safe_serialization=True)
    elif acc.is_main_process:
        from safetensors.torch import save_model

        save_model(acc.unwrap_model(trainer.model), str(tmp / "model.safetensors"))
        torch.save(trainer.optimizer.state_dict(), tmp / "optimizer.pt")
    tensors, meta = rng_state()
    torch.save(tensors, tmp / f"rng_state_{acc.process_index}.pt")
    (tmp / f"rng_state_{acc.process_index}.json").write_text(json.dumps(meta))
    acc.wait_for_everyone()
    if acc.is_main_process:
        torch.save(trainer.scheduler.state_dict(), tmp / "scheduler.pt")
        trainer.processor.save_pretrained(tmp / "processor")
        state = {
            "step": step,
            "epoch": trainer.epoch_of(step),
            "seed": trainer.config.optim.seed,
            "world_size": acc.num_processes,
            "sharded": trainer.sharded,
        }
        fsync_tree(tmp)
        state["files"] = file_manifest(tmp)
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        with (tmp / STATE_FILE).open("rb") as fh:
            os.fsync(fh.fileno())
        fsync_dir(tmp)
        replace_folder(tmp, final, discard=_delete)
        for old in list_checkpoints(out)[: -trainer.config.save_total_limit]:
            _delete(old)
    acc.wait_for_everyone()
    return final


def read_state(path: str | Path) -> dict:
    path = Path(path)
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise FileNotFoundError(f"{path}: not a complete checkpoint ({STATE_FILE} missing)")
    return json.loads(state_file.read_text())


def load_checkpoint(trainer, path: str | Path) -> int:
    """Restore model, optimizer, scheduler and RNG from ``path``; returns the step."""
    acc = trainer.accelerator
    path = Path(path)
    state = read_state(path)
    if state["world_size"] != acc.num_processes:
        raise ValueError(
            f"{path}: saved with {state['world_size']} process(es), resumed with {acc.num_processes}; "
            "the data order would differ (resume with the same number of processes)"
        )
    if state["seed"] != trainer.config.optim.seed:
        raise ValueError(
            f"{path}: saved with seed {state['seed']}, config has optim.seed={trainer.config.optim.seed}"
        )
    if trainer.sharded:
        acc.load_state(str(path))
    else:
        from safetensors.torch import load_model

        load_model(acc.unwrap_model(trainer.model), str(path / "model.safetensors"), device=str(acc.device))
        optim_state = torch.load(path / "optimizer.pt", weights_only=True, map_location=acc.device)
        trainer.optimizer.load_state_dict(optim_state)
    trainer.scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rank_file = path / f"rng_state_{acc.process_index}.pt"
    if rank_file.is_file():
        meta = json.loads((path / f"rng_state_{acc.process_index}.json").read_text())
        set_rng_state(torch.load(rank_file, weights_only=True), meta)
    return int(state["step"])
