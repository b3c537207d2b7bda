"""The page's event handlers: open a file, change slice or window, click prompts, ask, toggle
masks. Each returns the same tuple of updates (``Handlers.OUTPUTS`` order, see ``app.py``).

Bad input (a non-image upload, a corrupt DICOM, an empty question, prompts outside the
image) is reported in the page, as a toast and in the error line, and changes nothing else;
an unexpected failure of the model is reported the same way and logged. The server goes on
serving either way.
"""

from __future__ import annotations

import html
import logging
import re
import traceback

import gradio as gr

from mimo.core.errors import MimoDataError
from mimo.infer.images import ImageInputError
from mimo.infer.predictor import Predictor
from mimo.serve.exports import write_downloads
from mimo.serve.files import ServeFiles
from mimo.serve.media import open_media
from mimo.serve.session import Viewer
from mimo.serve.view import answer_html, display_scale, legend_html, render

log = logging.getLogger("mimo.serve")
USER_ERRORS = (ImageInputError, MimoDataError, ValueError, FileNotFoundError)
MODEL_FAILED = "The model failed on this question; the server's log has the details."
_PATH = re.compile(r"(?<![\w.~-])(?:/[^\s/'\"()]+)+/([^\s/'\"():,]+)")
_FLAG = re.compile(r"(?<![\w-])--(?=[a-z])")


def for_page(message: str) -> str:
    """A user error's message as the page shows it: file paths (the server's upload folders)
    reduced to the file's name, command-line option dashes dropped."""
    return _FLAG.sub("", _PATH.sub(lambda m: m.group(1), str(message)))


class Handlers:
    """``OUTPUTS``: the names of the components every handler updates, in order."""

    OUTPUTS = (
        "state",
        "picture",
        "chatbot",
        "legend",
        "masks",
        "downloads",
        "status",
        "error",
        "slice",
        "window",
        "info",
    )

    def __init__(self, predictor: Predictor, files: ServeFiles | None = None) -> None:
        self.predictor = predictor
        self.files = files or ServeFiles()

    def release(self, viewer: Viewer | None) -> None:
        """The session ended: its downloads are deleted (``gr.State``'s delete callback)."""
        if isinstance(viewer, Viewer):
            viewer.release(self.files)

    # ------------------------------------------------------------------ page updates
    def page(self, viewer: Viewer, error: str | None = None, controls: bool = False) -> tuple:
        """Every output from ``viewer``; with ``controls`` the slice slider and window radio too."""
        if error:
            error = for_page(error)
            gr.Warning(error)
        error_md = gr.update(value=f"⚠️ {html.escape(error)}" if error else "", visible=bool(error))
        if viewer.image is None:
            picture, info = None, "Open an image, or pick an example below."
        else:
            picture = render(viewer.image, viewer.prediction, viewer.visible, viewer.prompts)
            info = self._info(viewer)
        segments = viewer.prediction.segments if viewer.prediction else []
        choices = [(f"{i + 1} · {s.phrase or '(no phrase)'}", i) for i, s in enumerate(segments)]
        visible = list(range(len(segments))) if viewer.visible is None else viewer.visible
        masks = gr.update(choices=choices, value=visible, visible=bool(choices))
        slider = window = gr.update()
        if controls:
            media = viewer.media
            volume = media is not None and media.n_slices > 1
            slider = gr.update(
                visible=volume,
                minimum=0,
                maximum=max(1, media.n_slices - 1) if media else 1,
                value=viewer.slice_index or 0,
            )
            window = gr.update(visible=bool(media and media.is_ct), value=viewer.window)
        return (
            viewer,
            picture,
            viewer.messages,
            legend_html(viewer.prediction, viewer.visible),
            masks,
            [str(p) for p in viewer.downloads] or None,
            self._status(viewer),
            error_md,
            slider,
            window,
            info,
        )

    def failed(self, viewer: Viewer | None, error: str) -> tuple:
        """Only the error shown; everything else unchanged."""
        error = for_page(error)
        gr.Warning(error)
        keep = tuple(gr.update() for _ in self.OUTPUTS)
        error_md = gr.update(value=f"⚠️ {html.escape(error)}", visible=True)
        index = self.OUTPUTS.index("error")
        return (viewer or Viewer(),) + keep[1:index] + (error_md,) + keep[index + 1 :]

    @staticmethod
    def _info(viewer: Viewer) -> str:
        media = viewer.media
        h, w = viewer.image.shape[:2]
        parts = [f"**{html.escape(media.name)}**", f"{w}×{h}", media.kind.upper()]
        if media.n_slices > 1:
            parts.append(f"slice {viewer.slice_index} / {media.n_slices - 1}")
        if media.is_ct:
            parts.append(f"CT window {viewer.window}")
        return " · ".join(parts)

    @staticmethod
    def _status(viewer: Viewer) -> str:
        if viewer.image is None:
            return ""
        return f"Prompts for the next question: {viewer.prompts.describe()}"

    # ------------------------------------------------------------------ events
    def open_file(self, viewer: Viewer | None, file) -> tuple:
        viewer = viewer or Viewer()
        if file is None:
            viewer.release(self.files)
            return self.page(Viewer(), controls=True)
        path = file if isinstance(file, str) else getattr(file, "name", file)
        try:
            media = open_media(path)
            new = Viewer()
            new.open(media)
        except USER_ERRORS as exc:
            return self.failed(viewer, f"Cannot open this file: {exc}")
        viewer.release(self.files)
        return self.page(new, controls=True)

    def change_view(self, viewer: Viewer | None, slice_index, window: str | None) -> tuple:
        if viewer is None or viewer.media is None:
            return self.failed(viewer, "Open an image first.")
        try:
            viewer.show(slice_index=slice_index, window=window or "auto")
        except USER_ERRORS as exc:
            return self.failed(viewer, str(exc))
        return self.page(viewer)

    def click(self, viewer: Viewer | None, tool: str, evt: gr.SelectData) -> tuple:
        if viewer is None or viewer.image is None:
            return self.failed(viewer, "Open an image first, then click on it to place prompts.")
        index = evt.index if isinstance(evt.index, (list, tuple)) else None
        if not index or len(index) != 2:
            return self.failed(viewer, "Could not read the clicked position; click on the image itself.")
        scale = display_scale(viewer.image.shape)
        h, w = viewer.image.shape[:2]
        x = min(max(int(index[0] / scale), 0), w - 1)
        y = min(max(int(index[1] / scale), 0), h - 1)
        try:
            viewer.prompts.click(tool or "point", x, y)
        except USER_ERRORS as exc:
            return self.failed(viewer, str(exc))
        return self.page(viewer)

    def prompt_action(self, viewer: Viewer | None, action: str) -> tuple:
        if viewer is None or viewer.image is None:
            return self.page(viewer or Viewer())
        {"finish": viewer.prompts.finish_stroke, "undo": viewer.prompts.undo, "clear": viewer.prompts.clear}[
            action
        ]()
        return self.page(viewer)

    def new_conversation(self, viewer: Viewer | None) -> tuple:
        if viewer is None or viewer.media is None:
            return self.page(viewer or Viewer())
        viewer.show()
        return self.page(viewer)

    def toggle_masks(self, viewer: Viewer | None, visible: list[int] | None) -> tuple:
        if viewer is None or viewer.prediction is None:
            return self.page(viewer or Viewer())
        viewer.visible = sorted(int(v) for v in visible or [])
        return self.page(viewer)

    def ask(self, viewer: Viewer | None, question: str | None) -> tuple:
        if viewer is None or viewer.image is None:
            return self.failed(viewer, "Open an image first (upload one or pick an example).")
        question = (question or "").strip()
        if not question:  # the same rule as mimo chat and /ask, in the page's words
            return self.failed(viewer, "Type a question first, e.g. “What is in this region?”")
        prompts = viewer.prompts.kwargs()
        described = viewer.prompts.describe()
        try:
            session = viewer.chat(self.predictor)
            prediction = session.ask(question, **prompts)
        except USER_ERRORS as exc:
            return self.failed(viewer, str(exc))
        except Exception as exc:  # a model failure must not take the page down
            log.error("mimo serve: the model failed (%s)\n%s", exc, traceback.format_exc())
            return self.failed(viewer, MODEL_FAILED)
        viewer.turn += 1
        note = "" if described == "no prompts" else f" <small>({html.escape(described)})</small>"
        viewer.messages = viewer.messages + [
            {"role": "user", "content": html.escape(question) + note},
            {"role": "assistant", "content": answer_html(prediction.answer)},
        ]
        viewer.prediction, viewer.visible = prediction, None
        viewer.prompts.clear()
        try:
            folder = viewer.out_dir(self.files)
            viewer.downloads = write_downloads(
                folder,
                viewer.image,
                prediction,
                stem=f"turn{viewer.turn:02d}",
                volume=viewer.volume,
                slice_index=viewer.slice_index,
            )
            self.files.prune(folder)
        except Exception as exc:  # downloads are a convenience: the answer stands
            log.error("mimo serve: writing downloads failed (%s)\n%s", exc, traceback.format_exc())
            viewer.downloads = []
            return self.page(
                viewer, error="The answer's files could not be written; the server's log has the details."
            )
        return self.page(viewer)
