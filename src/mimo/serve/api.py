"""The HTTP API's ``/ask``: one question about one image, no browser state.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    answer, result = client.predict(
        handle_file("scan.png"), "What is in this region?", '{"boxes": [[10, 12, 40, 44]]}', -1, "auto",
        api_name="/ask",
    )

Arguments: the image file (PNG/JPG, DICOM, NIfTI), the question, the prompts as JSON
(``{"points": [[x, y]], "boxes": [[x0, y0, x1, y1]], "scribbles": [[[x, y], ...]]}``, image
pixels; empty for none), the slice (NIfTI / multi-frame DICOM; -1 for the middle one) and the
CT window (``auto``, a preset name such as ``lung -600/1500``, or ``LEVEL,WIDTH``). Returns the
answer with its ``<p>..</p> <SEG>`` markup and a JSON object: answer, text, image_size and
per mask its index, phrase, score, area, colour and COCO RLE (``mimo.serve.exports``).

Images are encoded once: a small cache keyed by the file's content, slice and window keeps
their features for later questions.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from collections import OrderedDict
from pathlib import Path

import gradio as gr

from mimo.infer.images import ImageInputError, parse_window
from mimo.infer.predictor import Predictor
from mimo.serve.exports import result_json
from mimo.serve.handlers import MODEL_FAILED, USER_ERRORS, for_page
from mimo.serve.media import WINDOW_PRESETS, open_media, window_of
from mimo.serve.prompts import parse_prompts_json

CACHE_IMAGES = 8
log = logging.getLogger("mimo.serve")


def parse_api_window(text: str | None) -> tuple[float, float] | None:
    text = (text or "auto").strip()
    if text in WINDOW_PRESETS:
        return window_of(text)
    return parse_window(text)


class AskApi:
    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self._states: OrderedDict = OrderedDict()

    def ask(self, image, question: str, prompts: str, slice_index: float | None, window: str):
        """The ``/ask`` endpoint; user errors raise ``gr.Error`` with the reason."""
        try:
            if image is None:
                raise ImageInputError("no image given; send a PNG/JPG, DICOM or NIfTI file")
            path = Path(image if isinstance(image, str) else image.name)
            kwargs = parse_prompts_json(prompts)
            self.predictor.check_question(question or "", sum(len(v) for v in kwargs.values()))
            state = self._state(path, slice_index, parse_api_window(window))
            prediction = self.predictor.predict(state, question.strip(), **kwargs)
        except USER_ERRORS as exc:
            raise gr.Error(for_page(str(exc)), print_exception=False) from None
        except Exception as exc:  # never the raw text of an unexpected failure to a client
            log.error("mimo serve /ask: the model failed (%s)\n%s", exc, traceback.format_exc())
            raise gr.Error(MODEL_FAILED, print_exception=False) from None  # logged above
        return prediction.answer, result_json(prediction, state.image.shape)

    def _state(self, path: Path, slice_index, window):
        index = None if slice_index is None or int(slice_index) < 0 else int(slice_index)
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        key = (digest, path.name.lower().endswith((".nii", ".nii.gz")), index, window)
        if key not in self._states:
            media = open_media(path)
            array = media.image(index, window)
            self._states[key] = self.predictor.prepare(array)
            while len(self._states) > CACHE_IMAGES:
                self._states.popitem(last=False)
        self._states.move_to_end(key)
        return self._states[key]
