"""Bad input gives an error naming the file and the line or sample; ``--on-error skip``
skips the sample and lists it in the build report; builds resume."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mimo.cli import app
from mimo.core.errors import MimoDataError
from mimo.core.records import read_records
from mimo.data.build import BuildConfig, build
from mimo.data.interop.mecovqa import read_mecovqa
from tests.interop import fixtures as F

runner = CliRunner()


def _corrupt(root, index, transform):
    path = root / "MeCoVQA_G_test.json"
    samples = json.loads(path.read_text())
    samples[index] = transform(samples[index])
    path.write_text(json.dumps(samples, indent=2))
    return path


def _answer(sample, value):
    sample["conversations"][1]["value"] = value
    return sample


CASES = {
    "missing mask": (
        lambda s: _answer(s, "It is <SEG><mask>masks/nope.png</mask>."),
        r"file 'masks/nope.png' not found",
    ),
    "escaping image": (lambda s: dict(s, image="../outside.png"), r"escapes the root"),
    "seg without mask": (lambda s: _answer(s, "It is <SEG>."), r"1 <SEG> but 0 <mask>"),
    "empty region": (
        lambda s: dict(
            s,
            conversations=[
                {"from": "human", "value": "<image>\nWhat is <region></region>?"},
                s["conversations"][1],
            ],
        ),
        r"names no mask file",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_bad_sample_names_file_and_sample(tmp_path, name):
    F.mecovqa(tmp_path / "m")
    transform, message = CASES[name]
    path = _corrupt(tmp_path / "m", 0, transform)
    item = read_mecovqa(tmp_path / "m", tmp_path / "out").items[0]
    with pytest.raises(MimoDataError, match=message) as err:
        item.make()
    assert f"{path}: sample 0" in str(err.value)


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = F.mecovqa(tmp_path / "m", jsonl=True)
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]
    path.write_text("\n".join(lines) + "\n")
    items = read_mecovqa(tmp_path / "m", tmp_path / "out").items
    with pytest.raises(MimoDataError, match=r"line 3: malformed JSON") as err:
        items[2].make()
    assert str(path) in str(err.value)


def test_malformed_json_file_names_line(tmp_path):
    path = F.mecovqa(tmp_path / "m")
    path.write_text(path.read_text().replace('"g-0",', '"g-0"', 1))
    with pytest.raises(MimoDataError, match=r"MeCoVQA_G_test.json: malformed JSON .* at line \d+"):
        read_mecovqa(tmp_path / "m", tmp_path / "out")


def _cli(root, out, *extra):
    return runner.invoke(
        app,
        [
            "data",
            "build",
            "--source",
            f"mecovqa:{root},json=MeCoVQA_G_test.jsonl",
            "--out",
            str(out),
            "--ratios",
            "none",
            "--no-progress",
            *extra,
        ],
    )


def test_cli_raise_then_skip_then_resume(tmp_path):
    path = F.mecovqa(tmp_path / "m", jsonl=True)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("--tumor_000.png</region>", "--missing.png</region>")
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    res = _cli(tmp_path / "m", out)
    assert res.exit_code != 0
    assert f"{path}:2" in res.output and "missing.png" in res.output
    res = _cli(tmp_path / "m", out, "--on-error", "skip")
    assert res.exit_code == 0, res.output
    report = json.loads((out / "build_report.json").read_text())
    assert [s["sample"] for s in report["skipped"]] == [f"{path}:2"]
    assert "missing.png" in report["skipped"][0]["error"]
    test = read_records(out / "test.jsonl")
    assert len(test) == 3 and {r.source for r in test} == {"mecovqa:MeCoVQA_G_test"}
    # resume: the finished shard is not redone, the skipped sample stays reported
    report2 = build(
        [f"mecovqa:{tmp_path / 'm'},json=MeCoVQA_G_test.jsonl"], out, on_error="skip", progress=False
    )
    assert report2["skipped"] == report["skipped"]
    assert read_records(out / "test.jsonl") == test


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("slake", F.slake),
        ("vqa-rad", F.vqa_rad),
        ("pathvqa", F.pathvqa),
        ("llava-med", F.llava_med),
        ("samed2d", F.samed2d),
    ],
)
def test_every_kind_builds_through_the_cli(tmp_path, kind, make):
    make(tmp_path / "d")
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "data",
            "build",
            "--source",
            f"{kind}:{tmp_path / 'd'}",
            "--out",
            str(out),
            "--ratios",
            "none",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    n = sum(len(read_records(out / f"{s}.jsonl")) for s in ("train", "val", "test"))
    assert n >= 1
    report = json.loads((out / "build_report.json").read_text())
    assert report["skipped"] == []
    if kind == "samed2d":  # a segmentation source: the perspective generator made grounded records
        assert {"I", "II"} <= set(report["by_perspective"])


def test_two_sources_whose_images_would_share_a_path_are_refused(tmp_path):
    """Two LLaVA-format files of the same name in different folders copy their images to the same
    ``images/<name>/`` path: a different image already there is an error naming the way out,
    never a record silently showing the other source's image; the same bytes again (a resumed or
    repeated build) are fine."""
    for folder, seed in (("a", 6), ("b", 7)):
        F.llava_med(tmp_path / folder)
        F.png(tmp_path / folder / "images" / "PMC1_fig1.jpg", F.image(seed))
    out = tmp_path / "out"
    one = f"llava-med:{tmp_path / 'a'},json=llava_med_instruct_fixture.json"
    other = f"llava-med:{tmp_path / 'b'},json=llava_med_instruct_fixture.json"
    config = BuildConfig(ratios=None)
    build([one], out, config, progress=False)
    copied = out / "images" / "llava_med_instruct_fixture" / "images" / "PMC1_fig1.jpg"
    assert copied.read_bytes() == (tmp_path / "a" / "images" / "PMC1_fig1.jpg").read_bytes()
    with pytest.raises(
        MimoDataError, match=r"PMC1_fig1\.jpg: its copy would go to .* holds another image .*name="
    ):
        build([one, other], tmp_path / "both", config, progress=False)
    assert copied.read_bytes() == (tmp_path / "a" / "images" / "PMC1_fig1.jpg").read_bytes()
    # with a name of its own, the second source has its own folder
    report = build([one, other + ",name=second"], tmp_path / "named", config, progress=False)
    assert report["cases"]["done"] >= 2
    assert not list(tmp_path.rglob(".partial-*"))
