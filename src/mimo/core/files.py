"""The one way to write a file or a folder so that a reader never sees half of it.

Every writer goes through a temporary name in the destination folder, is flushed and fsynced,
then ``os.replace``d over the target (a rename within one folder is atomic on POSIX and
Windows): an interrupted write leaves the old content, or nothing, never a truncated file.

* ``atomic_write_text`` / ``atomic_write_bytes``: a whole file from memory.
* ``atomic_open``: a text file written line by line inside a ``with`` block.
* ``atomic_save``: a file written by a library that wants a path (nibabel, pydicom).
* ``fsync_tree`` + ``replace_folder``: a folder built under a temporary name, then swapped in
  (checkpoints, the trained model).

``safe_name`` turns an id (a case, a record, a data set's name) into a file or folder name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: object, *, trim: str = "._", fallback: str = "x") -> str:
    """A file-name-safe version of an id: every run of characters other than letters, digits,
    ``.``, ``_`` and ``-`` becomes one ``_``, then the characters in ``trim`` are stripped from
    both ends. An empty result, or one of dots only (``.``, ``..``: never a folder name), is
    ``fallback``.

    The slice builder trims ``._`` (no hidden files); the importers trim ``_`` only, so their
    record ids keep the dots their published names have; both spellings are kept as they are
    so that names already written do not change.
    """
    name = _UNSAFE.sub("_", str(text)).strip(trim)
    return name if name.strip(".") else fallback


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    with _temporary_beside(Path(path)) as (fd, tmp):
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[str]]:
    """Open ``path`` for writing text atomically: the content appears under ``path`` only when
    the ``with`` block ends without error (temp file in the same folder, fsync, ``os.replace``)."""
    with _temporary_beside(Path(path)) as (fd, tmp):
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[tuple[int, str]]:
    """A new hidden ``.<name>.*.tmp`` file in ``path``'s folder (created if missing), removed
    again if the block fails before renaming it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        yield fd, tmp
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save(path: Path, save: Callable[[Path], object]) -> None:
    """``save(partial)`` to a hidden file beside ``path`` (same suffixes, so a library that
    picks the format by the name still sees ``.nii.gz`` or ``.dcm``), then renamed over it."""
    partial = path.with_name(".partial-" + path.name)
    try:
        save(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (new and renamed names) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` and then ``root``'s own entries to disk."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(root)


def replace_folder(tmp: Path, final: Path, discard: Callable[[Path], object] = shutil.rmtree) -> None:
    """Swap the finished folder ``tmp`` in as ``final``: an old ``final`` is removed with
    ``discard`` first, then ``tmp`` is renamed and the parent folder flushed. Call
    :func:`fsync_tree` on ``tmp`` before, once everything in it is written."""
    if final.exists():
        discard(final)
    os.replace(tmp, final)
    fsync_dir(final.parent)
