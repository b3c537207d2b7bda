"""One browser tab's state: the open file, slice and window, the image shown, the prompts being
drawn, the conversation and the latest answer.

Each image (file, slice, window) keeps its own ``ChatSession``, so the image encoders run
once per image: later questions, and coming back to a slice seen before, reuse the cached
features. A few images are kept per tab (``MAX_IMAGES``), least recently used dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mimo.infer.predictor import ChatSession, Prediction, Predictor
from mimo.serve.files import ServeFiles
from mimo.serve.media import Media, window_of
from mimo.serve.prompts import Prompts

MAX_IMAGES = 4


@dataclass
class Viewer:
    media: Media | None = None
    slice_index: int | None = None
    window: str = "auto"
    image: np.ndarray | None = None
    prompts: Prompts = field(default_factory=Prompts)
    messages: list[dict] = field(default_factory=list)  # the Chatbot's
    prediction: Prediction | None = None
    visible: list[int] | None = None
    turn: int = 0
    downloads: list[Path] = field(default_factory=list)
    _sessions: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _out_dir: Path | None = field(default=None, repr=False)

    def open(self, media: Media) -> None:
        """Show ``media`` at its middle slice with the automatic window; forget the old file."""
        self._sessions.clear()
        self.media, self.window = media, "auto"
        self.slice_index = media.default_slice if media.n_slices > 1 else None
        self.show()

    def show(self, slice_index: int | None = None, window: str | None = None) -> None:
        """Move to another slice and/or window; the conversation starts over for that image."""
        assert self.media is not None
        if slice_index is not None and self.media.n_slices > 1:
            self.slice_index = int(slice_index)
        if window is not None:
            window_of(window)  # checks the name
            self.window = window
        self.image = self.media.image(self.slice_index, window_of(self.window))
        self.prompts.clear()
        self.messages = []
        self.prediction, self.visible, self.downloads = None, None, []
        session = self._sessions.get(self._key())
        if session is not None:
            session.reset()

    def _key(self) -> tuple:
        return (self.slice_index, self.window)

    def chat(self, predictor: Predictor) -> ChatSession:
        """This image's ``ChatSession`` (made on first use; its encodings are cached)."""
        key = self._key()
        if key not in self._sessions:
            self._sessions[key] = predictor.chat(self.image)
            while len(self._sessions) > MAX_IMAGES:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(key)
        return self._sessions[key]

    def out_dir(self, files: ServeFiles) -> Path:
        """This session's folder of downloads (made on first use, under ``files``)."""
        if self._out_dir is None or not self._out_dir.is_dir():
            self._out_dir = files.session_dir()
        return self._out_dir

    def release(self, files: ServeFiles) -> None:
        """Delete this session's downloads (the session ended or opened another file)."""
        files.release(self._out_dir)
        self._out_dir, self.downloads = None, []

    @property
    def volume(self):
        if self.media is not None and self.media.kind == "nifti":
            return self.media.volume(window_of(self.window))
        return None
