"""The ``mimo serve`` page: a viewer on the left (the image, large, with masks and prompts
drawn on it; prompt tools; slice and CT window; open a file or an example), the conversation
on the right (chat, the latest answer with its phrases in their mask colours and a legend,
mask toggles, downloads), and the HTTP API's ``/ask`` (``mimo.serve.api``).

    demo = build_app(predictor, model_name="mimo-tiny")
    launch(demo, host="127.0.0.1", port=7860, max_upload_mb=50)

No network at run time: Gradio analytics are off and the theme uses system fonts.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported

from importlib.resources import files  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import gradio as gr  # noqa: E402

from mimo.infer.predictor import Predictor  # noqa: E402
from mimo.serve.api import AskApi  # noqa: E402
from mimo.serve.files import ServeFiles  # noqa: E402
from mimo.serve.handlers import Handlers  # noqa: E402
from mimo.serve.media import WINDOW_PRESETS  # noqa: E402
from mimo.serve.view import legend_html  # noqa: E402

EXAMPLES = (
    ("shapes.png", "Shapes phantom (PNG)"),
    ("mni152_t1_axial.png", "Brain MRI, MNI152 T1 (PNG)"),
    ("abdomen_ct_phantom.nii.gz", "Abdominal CT phantom (NIfTI)"),
)
TOOLS = [("● Point", "point"), ("▭ Box · 2 clicks", "box"), ("✎ Scribble · clicks", "scribble")]
STATE_TTL_S = 4 * 3600
GRADIO_CACHE_SWEEP = (600, 3600)  # every 10 min, Gradio's copies older than 1 h are deleted

CSS = """
.gradio-container {max-width: 100% !important; padding: 10px 18px !important}
#mimo-title h2 {margin: 0}
#mimo-title p {margin: 2px 0 0 0; opacity: .75}
#mimo-viewer {background: #05070a; border-radius: 10px; min-height: 560px}
#mimo-viewer img {object-fit: contain; cursor: crosshair}
#mimo-error {color: #fecaca; background: #450a0a; border: 1px solid #b91c1c; border-radius: 8px;
             padding: 6px 12px; font-weight: 600}
#mimo-status, #mimo-info {font-size: .92em}
#mimo-tools {align-items: center}
#mimo-tools button {align-self: center}
.mimo-legend {padding: 4px 2px}
.mimo-legend ul {list-style: none; padding: 0; margin: 8px 0 0 0}
.mimo-legend li {display: flex; align-items: center; gap: 8px; padding: 3px 0}
.mimo-legend.mimo-empty {opacity: .7; font-style: italic}
.mimo-swatch {width: 14px; height: 14px; border-radius: 3px; display: inline-block; flex: none}
.mimo-meta {margin-left: auto; opacity: .7; font-size: .85em}
.mimo-hidden {opacity: .4; text-decoration: line-through}
.mimo-answer {font-size: 1.08em; line-height: 1.55}
.mimo-seg {font-weight: 700}
.mimo-seg sup {font-size: .7em; margin-left: 1px}
"""
JS = "() => { document.body.classList.add('dark'); }"


def examples_dir() -> Path:
    return Path(str(files("mimo"))) / "serve" / "examples"


def theme() -> gr.themes.Base:
    system = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "monospace"]
    return gr.themes.Base(primary_hue="sky", neutral_hue="slate", font=system, font_mono=mono)


def build_app(predictor: Predictor, model_name: str = "model", files: ServeFiles | None = None) -> gr.Blocks:
    """The page (and the ``/ask`` API) around one loaded ``predictor``; the answers' downloads go
    under ``files`` (default: a new private temporary folder), each session's deleted when it ends."""
    handlers = Handlers(predictor, files)
    with gr.Blocks(
        title="MIMO · medical image viewer", fill_width=True, delete_cache=GRADIO_CACHE_SWEEP
    ) as demo:
        demo.mimo_files = handlers.files
        state = gr.State(None, time_to_live=STATE_TTL_S, delete_callback=handlers.release)
        gr.Markdown(
            f"## MIMO · grounded medical image chat\n"
            f"Model `{model_name}` · draw points, boxes or scribbles on the image, then ask. "
            "Research software; not for clinical use.",
            elem_id="mimo-title",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=480):
                viewer = _viewer_column()
            with gr.Column(scale=2, min_width=380):
                talk = _conversation_column()
        _connect_events(handlers, state, viewer, talk)
        _http_api(AskApi(predictor))
    return demo


def _viewer_column() -> SimpleNamespace:
    """The image with its prompt tools, slice and CT window, and the file and example pickers."""
    info = gr.Markdown("Open an image, or pick an example below.", elem_id="mimo-info")
    picture = gr.Image(
        type="numpy",
        format="png",
        interactive=False,
        show_label=False,
        height=620,
        elem_id="mimo-viewer",
        buttons=["download", "fullscreen"],
    )
    with gr.Row(equal_height=False, elem_id="mimo-tools"):
        tool = gr.Radio(TOOLS, value="box", show_label=False, scale=3, elem_id="mimo-tool")
        finish = gr.Button("Finish scribble", size="sm", scale=0, min_width=120)
        undo = gr.Button("Undo", size="sm", scale=0, min_width=70)
        clear = gr.Button("Clear", size="sm", scale=0, min_width=70, elem_id="mimo-clear")
    status = gr.Markdown("", elem_id="mimo-status")
    with gr.Row():
        slice_slider = gr.Slider(0, 1, value=0, step=1, label="Slice", visible=False, elem_id="mimo-slice")
        window = gr.Radio(
            list(WINDOW_PRESETS),
            value="auto",
            label="CT window (level/width HU)",
            visible=False,
            elem_id="mimo-window",
        )
    with gr.Row(equal_height=False):
        upload = gr.File(
            label="Open PNG / JPG / DICOM / NIfTI",
            type="filepath",
            file_count="single",
            height=130,
            elem_id="mimo-upload",
        )
        with gr.Column():
            gr.Examples(
                examples=[[str(examples_dir() / name)] for name, _ in EXAMPLES],
                example_labels=[label for _, label in EXAMPLES],
                inputs=[upload],
                label="Examples",
                elem_id="mimo-examples",
            )
    return SimpleNamespace(**locals())


def _conversation_column() -> SimpleNamespace:
    """The chat, the question box, the legend, mask toggles and downloads."""
    chatbot = gr.Chatbot(
        height=360,
        show_label=False,
        elem_id="mimo-chat",
        placeholder="The conversation about this image appears here.",
    )
    error = gr.Markdown("", visible=False, elem_id="mimo-error")
    with gr.Row(equal_height=True):
        question = gr.Textbox(
            placeholder="Ask about the image, e.g. “What is in this region?”",
            show_label=False,
            scale=5,
            elem_id="mimo-question",
        )
        ask = gr.Button("Ask", variant="primary", scale=1, elem_id="mimo-ask")
    legend = gr.HTML(legend_html(None), elem_id="mimo-legend")
    masks = gr.CheckboxGroup(label="Show masks", visible=False, elem_id="mimo-masks", interactive=True)
    downloads = gr.File(
        label="Downloads: masks as PNG, NIfTI label map, JSON with RLE",
        file_count="multiple",
        interactive=False,
        height=140,
        elem_id="mimo-downloads",
    )
    new_chat = gr.Button("New conversation", size="sm")
    return SimpleNamespace(**locals())


def _connect_events(
    handlers: Handlers, state: gr.State, viewer: SimpleNamespace, talk: SimpleNamespace
) -> None:
    """Every control calls a ``Handlers`` method, which redraws the whole page (``Handlers.OUTPUTS``)."""
    outputs = [
        state,
        viewer.picture,
        talk.chatbot,
        talk.legend,
        talk.masks,
        talk.downloads,
        viewer.status,
        talk.error,
        viewer.slice_slider,
        viewer.window,
        viewer.info,
    ]
    assert len(outputs) == len(Handlers.OUTPUTS)
    private = {"api_visibility": "private"}

    def ask_and_clear(view, text):
        turn = view.turn if view is not None else 0
        result = handlers.ask(view, text)
        done = result[0] is not None and result[0].turn != turn
        return (*result, "" if done else gr.update())

    viewer.upload.change(handlers.open_file, [state, viewer.upload], outputs, **private)
    viewer.slice_slider.release(
        lambda v, s: handlers.change_view(v, s, v.window if v else None),
        [state, viewer.slice_slider],
        outputs,
        **private,
    )
    viewer.window.input(
        lambda v, w: handlers.change_view(v, None, w), [state, viewer.window], outputs, **private
    )
    viewer.picture.select(handlers.click, [state, viewer.tool], outputs, **private)
    viewer.tool.input(lambda v: handlers.prompt_action(v, "finish"), [state], outputs, **private)
    viewer.finish.click(lambda v: handlers.prompt_action(v, "finish"), [state], outputs, **private)
    viewer.undo.click(lambda v: handlers.prompt_action(v, "undo"), [state], outputs, **private)
    viewer.clear.click(lambda v: handlers.prompt_action(v, "clear"), [state], outputs, **private)
    talk.new_chat.click(handlers.new_conversation, [state], outputs, **private)
    talk.masks.input(handlers.toggle_masks, [state, talk.masks], outputs, **private)
    for trigger in (talk.ask.click, talk.question.submit):
        trigger(ask_and_clear, [state, talk.question], [*outputs, talk.question], **private)


def _http_api(api: AskApi) -> None:
    """The hidden components behind ``POST /ask`` (see ``mimo.serve.api`` and docs/serve.md)."""
    with gr.Row(visible=False):
        api_image = gr.File(type="filepath", label="image")
        api_question = gr.Textbox(label="question")
        api_prompts = gr.Textbox(label="prompts", value="")
        api_slice = gr.Number(value=-1, precision=0, label="slice")
        api_window = gr.Textbox(value="auto", label="window")
        api_answer = gr.Textbox(label="answer")
        api_result = gr.JSON(label="result")
        api_button = gr.Button("ask")
    api_button.click(
        api.ask,
        [api_image, api_question, api_prompts, api_slice, api_window],
        [api_answer, api_result],
        api_name="ask",
    )


def launch(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = None,
    max_upload_mb: float = 50,
    **kwargs,
):
    """Serve ``demo``: one request at a time (queued), uploads up to ``max_upload_mb``."""
    demo.queue(default_concurrency_limit=1)
    return demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=int(max_upload_mb * 1024 * 1024),
        theme=theme(),
        css=CSS,
        js=JS,
        ssr_mode=False,
        share=False,
        show_error=False,  # only messages written for the page (gr.Error) reach clients
        **kwargs,
    )
