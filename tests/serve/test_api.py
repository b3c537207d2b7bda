"""``mimo serve``'s HTTP API through gradio_client: answers with masks, and bad input answered
with a clear message while the server keeps serving."""

from __future__ import annotations

import json

import pytest

from mimo.core import rle
from mimo.serve.app import examples_dir

from .conftest import MAX_UPLOAD_MB


def _ask(client, path, question="What is in <region>?", prompts="", slice_index=-1, window="auto"):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), question, prompts, slice_index, window, api_name="/ask")


def test_ask_returns_answer_and_rle_masks(client, serve_model):
    box = serve_model["boxes"]["square"]
    answer, result = _ask(client, examples_dir() / "shapes.png", prompts=json.dumps({"boxes": [box]}))
    assert "<SEG>" in answer and result["answer"] == answer
    assert result["image_size"] == [64, 64]
    assert len(result["segments"]) == answer.count("<SEG>") >= 1
    segment = result["segments"][0]
    mask = rle.decode(segment["rle"])
    assert mask.shape == (64, 64) and int(mask.sum()) == segment["area"] > 0
    assert segment["color"].startswith("#")


def test_ask_is_documented_in_the_api_info(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert "/ask" in info["named_endpoints"]
    names = [p["parameter_name"] for p in info["named_endpoints"]["/ask"]["parameters"]]
    assert len(names) == 5
    # the page's own events are private: only /ask is offered to clients
    assert list(info["named_endpoints"]) == ["/ask"]


def test_ask_on_a_nifti_slice_with_a_ct_window(client):
    answer, result = _ask(
        client, examples_dir() / "abdomen_ct_phantom.nii.gz", "Segment the square.", "", 3, "lung -600/1500"
    )
    assert isinstance(answer, str) and result["image_size"] == [64, 64]


@pytest.mark.parametrize(
    ("name", "content", "prompts", "question", "expected"),
    [
        ("notes.txt", b"not an image at all\n", "", "What is this?", "not a readable image"),
        ("corrupt.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI", "", "What is this?", "corrupt.dcm"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "", "What is this?", "not a readable image"),
        ("ok.png", None, "", "   ", "the question is empty"),
        ("ok.png", None, "{not json", "What?", "prompts: not valid JSON"),
        ("ok.png", None, '{"boxes": [[0, 0, 500, 500]]}', "What is in <region>?", "box"),
        ("ok.png", None, '{"boxes": [[1, 2, 3, 4]]}', "Compare <region> and <region>.", "<region>"),
    ],
)
def test_bad_input_is_a_clear_error_and_the_server_goes_on(
    client, tmp_path, name, content, prompts, question, expected
):
    from gradio_client.exceptions import AppError

    path = tmp_path / name
    if content is None:
        path.write_bytes((examples_dir() / "shapes.png").read_bytes())
    else:
        path.write_bytes(content)
    with pytest.raises(AppError) as info:
        _ask(client, path, question, prompts)
    assert expected.lower() in str(info.value).lower()
    answer, _ = _ask(client, examples_dir() / "shapes.png", "Segment the square.")
    assert isinstance(answer, str) and answer


def test_oversized_upload_is_refused_and_the_server_goes_on(client, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * int((MAX_UPLOAD_MB + 0.5) * 1024 * 1024))
    with pytest.raises(Exception) as info:
        _ask(client, big, "What is this?")
    assert "413" in str(info.value) or "size" in str(info.value).lower()
    answer, _ = _ask(client, examples_dir() / "shapes.png", "Segment the square.")
    assert answer


def test_features_are_cached_across_questions(server, client):
    predictor = server["predictor"]
    calls = []
    original = predictor.model.image_features

    def counting(pixels):
        calls.append(1)
        return original(pixels)

    predictor.model.image_features = counting
    try:
        path = examples_dir() / "mni152_t1_axial.png"
        _ask(client, path, "Segment the disc.")
        _ask(client, path, "Segment the square.")
    finally:
        predictor.model.image_features = original
    assert len(calls) == 1
