"""The files ``mimo serve`` derives from users' images (overlays, mask PNGs, label maps, JSON),
and Gradio's own cache of uploads and shown images: all under one private folder per server.

    files = ServeFiles()                 # <tmp>/mimo-serve-XXXX/, mode 0700
    folder = files.session_dir()         # one per browser session: sessions/XXXX/
    files.prune(folder, keep=MAX_TURNS_KEPT)   # the retention limit: the latest turns only
    files.release(folder)                # the session ended (tab closed, state expired)
    files.cleanup()                      # the server stops: nothing is left behind

``mimo serve`` points Gradio's cache (``GRADIO_TEMP_DIR``) at ``files.gradio_dir`` before the
page is built, so uploads and the images Gradio serves go there too and go with ``cleanup``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

MAX_TURNS_KEPT = 4  # per session, the downloads of this many latest answers are kept
_TURN = re.compile(r"^turn(\d+)[._]")


class ServeFiles:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mimo-serve-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def gradio_dir(self) -> Path:
        return self.root / "gradio"

    @property
    def sessions_dir(self) -> Path:
        return self.root / "sessions"

    def session_dir(self) -> Path:
        """A new private folder for one session's downloads."""
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.sessions_dir))

    def release(self, folder: Path | None) -> None:
        """Delete a session's folder (only ever one of this server's)."""
        if folder is not None and Path(folder).resolve().parent == self.sessions_dir.resolve():
            shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def prune(folder: Path, keep: int = MAX_TURNS_KEPT) -> None:
        """Keep the files of the ``keep`` latest turns (``turnNN...``) in ``folder``."""
        turns = {}
        for path in Path(folder).iterdir():
            match = _TURN.match(path.name)
            if match:
                turns.setdefault(int(match.group(1)), []).append(path)
        for turn in sorted(turns)[:-keep] if keep > 0 else sorted(turns):
            for path in turns[turn]:
                path.unlink(missing_ok=True)

    def cleanup(self) -> None:
        """Delete everything this server wrote."""
        shutil.rmtree(self.root, ignore_errors=True)
