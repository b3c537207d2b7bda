"""Issue 13 on the command line: outputs never replace inputs and need --overwrite (defect 4),
questions and prompt counts bounded (5), broken model folders (6), and the smaller ones (12):
devices, empty questions, --slice on a PNG, --seg-out with a NIfTI, --out as a folder.

Each asserts what a user sees: exit code 2 and one ``error:`` line without a traceback, or the
right output.
"""

from __future__ import annotations

import json
import shutil
import struct

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mimo.cli import app

from .tiny_model import VOLUME_QUESTION, sample_png, volume_samples

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.output


def one_error_line(result, output: str, *needles: str) -> str:
    """The run failed with exit 2 and a single ``error:`` line holding every needle."""
    assert result.exit_code == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for needle in needles:
        assert needle in lines[0], output
    return lines[0]


@pytest.fixture
def volume(tmp_path):
    """A small NIfTI of the tiny model's volume slices."""
    images = np.stack([s["image"] for s in volume_samples()]).transpose(2, 1, 0)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(images).astype(np.uint8), np.eye(4)), path)
    return path


# ---------------------------------------------------------------- defect 4: overwriting


def test_segment_volume_never_writes_over_its_input(volume):
    before = volume.read_bytes()
    result, output = run("segment-volume", volume, VOLUME_QUESTION, "--out", volume, "--overwrite")
    one_error_line(result, output, "is an input of this command")
    assert volume.read_bytes() == before


def test_segment_volume_existing_output_needs_overwrite(tiny, volume, tmp_path):
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(b"an earlier result")
    result, output = run("segment-volume", "--model", "/no/such/model", volume, VOLUME_QUESTION, "--out", out)
    one_error_line(result, output, "already exists", "--overwrite")  # checked before the model
    assert out.read_bytes() == b"an earlier result"
    result, output = run(
        "segment-volume", "--model", tiny["dir"], volume, VOLUME_QUESTION, "--out", out, "--overwrite"
    )
    assert result.exit_code == 0, output
    assert nib.load(str(out)).shape == nib.load(str(volume)).shape


def test_segment_volume_out_folder_gets_the_named_file(tiny, volume, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    result, output = run("segment-volume", "--model", tiny["dir"], volume, VOLUME_QUESTION, "--out", folder)
    assert result.exit_code == 0, output
    written = folder / "scan_mimo.nii.gz"
    assert f"wrote {written} " in output
    assert nib.load(str(written)).shape == nib.load(str(volume)).shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "scan.nii.gz"]


def test_segment_volume_seg_out_with_nifti_is_refused(volume, tmp_path):
    result, output = run("segment-volume", volume, VOLUME_QUESTION, "--seg-out", tmp_path / "x.dcm")
    one_error_line(result, output, "--seg-out", "DICOM")


def test_chat_out_is_checked_before_the_model_is_loaded(records_file, tmp_path):
    out = tmp_path / "answers"
    out.mkdir()
    (out / "answer.json").write_text("{}")
    image = sample_png(records_file, 0)
    # a model folder that does not exist: the --out check must come first
    result, output = run("chat", "--model", tmp_path / "none", "--image", image, "--out", out, "Segment it.")
    one_error_line(result, output, "answer.json", "--overwrite")
    result, output = run(
        "chat", "--model", tmp_path / "none", "--image", image, "--out", image, "Segment it."
    )
    one_error_line(result, output, "is a file")


def test_chat_overwrite_replaces_the_earlier_answer(tiny, records_file, tmp_path):
    out = tmp_path / "answers"
    out.mkdir()
    (out / "answer.json").write_text("{}")
    (out / "answer_mask7_old.png").write_bytes(b"stale")
    image = sample_png(records_file, 0)
    result, output = run(
        "chat", "--model", tiny["dir"], "--image", image, "--out", out, "--overwrite", "Segment the square."
    )
    assert result.exit_code == 0, output
    assert json.loads((out / "answer.json").read_text())["answer"]
    assert not (out / "answer_mask7_old.png").exists()


def test_chat_never_replaces_an_input_even_with_overwrite(records_file, tmp_path):
    out = tmp_path / "answers"
    out.mkdir()
    mask = out / "answer_overlay.png"
    shutil.copy(sample_png(records_file, 0), mask)
    result, output = run(
        "chat", "--image", sample_png(records_file, 0), "--mask", mask, "--out", out, "--overwrite", "What?"
    )
    one_error_line(result, output, "answer_overlay.png", "input")


# ---------------------------------------------------------------- defect 5: limits


def test_a_question_longer_than_the_context_is_refused(tiny, records_file):
    question = " ".join(["liver"] * 10_000) + "?"
    result, output = run("chat", "--model", tiny["dir"], "--image", sample_png(records_file, 0), question)
    one_error_line(result, output, "context of", "tokens")


def test_a_question_of_many_tokens_under_the_character_bound_is_refused(predictor, records_file):
    from mimo.infer.images import ImageInputError

    question = "Is there " + " and ".join(["a lesion"] * 400) + "?"
    with pytest.raises(ImageInputError, match=r"exceed the model's context of \d+ tokens"):
        predictor.predict(str(sample_png(records_file, 0)), question)


def test_more_regions_than_the_maximum_are_refused(tiny, records_file):
    points = [a for x in range(20) for a in ("--point", f"{x + 1},5")]
    result, output = run(
        "chat", "--model", tiny["dir"], "--image", sample_png(records_file, 0), *points, "What are these?"
    )
    one_error_line(result, output, "20 visual prompts", "at most 16")
    result, output = run(
        "chat", "--model", tiny["dir"], "--image", sample_png(records_file, 0), "--max-regions", "2",
        "--point", "3,3", "--point", "4,4", "--point", "5,5", "What are these?",
    )  # fmt: skip
    one_error_line(result, output, "3 visual prompts", "at most 2")


# ---------------------------------------------------------------- defect 12 (command line)


def test_empty_question_is_refused_as_the_server_does(records_file):
    result, output = run("chat", "--image", sample_png(records_file, 0), "   ")
    one_error_line(result, output, "the question is empty")


def test_slice_on_a_png_is_refused(records_file):
    result, output = run("chat", "--image", sample_png(records_file, 0), "--slice", "3", "What is this?")
    one_error_line(result, output, "--slice 3", "2D picture")


@pytest.mark.parametrize("device", ["banana", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_unknown_or_missing_device_is_a_clear_error(tiny, records_file, device):
    result, output = run(
        "chat", "--model", tiny["dir"], "--image", sample_png(records_file, 0), "--device", device, "What?"
    )
    one_error_line(result, output, f"device {device!r}")


# ---------------------------------------------------------------- defect 6: broken model folders


def _break(folder, case: str) -> str:
    """Break one file of a copied model folder; returns the file name the error must name."""
    weights = folder / "model.safetensors"
    config = folder / "config.json"
    if case == "empty weights":
        weights.write_bytes(b"")
    elif case == "truncated weights":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif case == "garbage weights":
        weights.write_bytes(b"\x89PNG not weights at all" * 10)
    elif case == "huge header length":
        weights.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    elif case == "garbage config":
        config.write_bytes(b"\xff\xfe{garbage")
        return "config.json"
    elif case == "config not json":
        config.write_text("{'model_type': 'mimo'")
        return "config.json"
    elif case == "config wrongly typed":
        data = json.loads(config.read_text())
        data["aligner_num_queries"] = "many"
        config.write_text(json.dumps(data))
        return "config.json"
    elif case == "config sub-config wrongly typed":
        data = json.loads(config.read_text())
        data["text_config"] = 7
        config.write_text(json.dumps(data))
        return "config.json"
    elif case == "processor config wrongly typed":
        path = folder / "processor_config.json"
        data = json.loads(path.read_text())
        data["vision_size"] = "large"
        path.write_text(json.dumps(data))
        return "processor_config.json"
    elif case == "processor config is a list":
        (folder / "processor_config.json").write_text("[1, 2]")
        return "processor_config.json"
    elif case in ("index to a pickle", "index escaping the folder"):
        names = json.loads(folder.joinpath("model.safetensors.index.json").read_text())["weight_map"]
        shard = "pytorch_model.bin" if case == "index to a pickle" else "../../etc/passwd"
        index = {"metadata": {}, "weight_map": dict.fromkeys(names, shard)}
        folder.joinpath("model.safetensors.index.json").write_text(json.dumps(index))
        return "model.safetensors.index.json"
    return "model.safetensors"


@pytest.fixture(scope="module")
def model_copy_source(tiny, tmp_path_factory):
    """The tiny model, plus a one-shard index (as sharded checkpoints are saved) beside a copy."""
    from safetensors import safe_open

    with safe_open(str(tiny["dir"] / "model.safetensors"), "pt") as fh:
        names = list(fh.keys())
    return tiny["dir"], names


def _broken_copy(model_copy_source, tmp_path, case: str):
    source, names = model_copy_source
    folder = tmp_path / "broken-model"
    shutil.copytree(source, folder)
    if case.startswith("index"):
        shard = folder / "model-00001-of-00001.safetensors"
        (folder / "model.safetensors").rename(shard)
        index = {"metadata": {}, "weight_map": dict.fromkeys(names, shard.name)}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
        if case == "index to a pickle":
            (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle
    return folder, _break(folder, case)


BROKEN = [
    "empty weights",
    "truncated weights",
    "garbage weights",
    "huge header length",
    "garbage config",
    "config not json",
    "config wrongly typed",
    "config sub-config wrongly typed",
    "processor config wrongly typed",
    "processor config is a list",
    "index to a pickle",
    "index escaping the folder",
]


@pytest.mark.parametrize("case", BROKEN)
def test_broken_model_folder_is_one_line_naming_the_file(model_copy_source, records_file, tmp_path, case):
    folder, name = _broken_copy(model_copy_source, tmp_path, case)
    result, output = run("chat", "--model", folder, "--image", sample_png(records_file, 0), "What is this?")
    one_error_line(result, output, str(folder / name))


@pytest.mark.parametrize("command", ["eval", "demo", "serve"])
def test_broken_model_folder_in_eval_demo_serve(model_copy_source, records_file, tmp_path, command):
    folder, name = _broken_copy(model_copy_source, tmp_path, "truncated weights")
    extra = {"eval": ["--data", records_file, "--out", tmp_path / "ev"], "demo": ["--out", tmp_path / "d"]}
    result, output = run(command, "--model", folder, *extra.get(command, []))
    one_error_line(result, output, str(folder / name), "truncated")


def test_a_config_that_passes_the_checks_but_cannot_build_the_model(
    model_copy_source, records_file, tmp_path
):
    folder, _ = _broken_copy(model_copy_source, tmp_path, "none")
    data = json.loads((folder / "config.json").read_text())
    data["text_config"]["hidden_size"] = 7  # not the weights' size
    (folder / "config.json").write_text(json.dumps(data))
    result, output = run("chat", "--model", folder, "--image", sample_png(records_file, 0), "What is this?")
    one_error_line(result, output, str(folder), "cannot load the model")


def test_loading_a_model_never_trusts_remote_code(tiny, monkeypatch):
    """The model and the tokenizer are loaded with trust_remote_code=False, safetensors only."""
    import transformers

    from mimo.infer.predictor import Predictor
    from mimo.model import MimoForConditionalGeneration

    seen = {}

    def spy(name, original):
        def load(*args, **kwargs):
            seen[name] = kwargs
            return original(*args, **kwargs)

        return load

    model_load = MimoForConditionalGeneration.from_pretrained.__func__
    monkeypatch.setattr(
        MimoForConditionalGeneration,
        "from_pretrained",
        classmethod(lambda cls, *a, **k: spy("model", model_load)(cls, *a, **k)),
    )
    monkeypatch.setattr(
        transformers.AutoTokenizer,
        "from_pretrained",
        spy("tokenizer", transformers.AutoTokenizer.from_pretrained),
    )
    Predictor.from_pretrained(tiny["dir"])
    assert seen["model"]["trust_remote_code"] is False and seen["model"]["use_safetensors"] is True
    assert seen["tokenizer"]["trust_remote_code"] is False


def test_eval_names_the_record_whose_question_is_too_long(tiny, records_file, tmp_path):
    lines = records_file.read_text().splitlines()
    record = json.loads(lines[0])
    record["conversations"][0]["value"] += " and " + " or ".join(["the lesion"] * 500)
    data = records_file.parent / "long.jsonl"
    data.write_text(json.dumps(record) + "\n")
    result, output = run("eval", "--model", tiny["dir"], "--data", data, "--out", tmp_path / "ev")
    assert result.exit_code == 2, output
    assert f"error: record {record['id']!r}: the question is too long" in output


def test_an_interrupted_write_leaves_the_earlier_label_map_whole(tiny, volume, tmp_path, monkeypatch):
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(b"an earlier result")

    def dies_half_way(image, filename):
        with open(filename, "wb") as fh:
            fh.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(nib, "save", dies_half_way)
    result = runner.invoke(
        app,
        [
            "segment-volume",
            "--model",
            str(tiny["dir"]),
            str(volume),
            VOLUME_QUESTION,
            "--out",
            str(out),
            "--overwrite",
        ],
    )
    assert result.exit_code != 0
    assert out.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz", "scan.nii.gz"]
