"""Published layouts and their quirks (tests/interop/published.py), each built through
``mimo data build`` the way docs/benchmarks.md tells a user to."""

from __future__ import annotations

import inspect
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from mimo.cli import app
from mimo.core.records import read_records
from mimo.data.perspectives import PerspectiveConfig, generate_records
from mimo.data.readers import READERS, _resolve
from mimo.data.slices import SliceConfig, iter_slice_samples
from tests.data.dataset_fixtures import make_coco, make_nnunet
from tests.interop import fixtures as F
from tests.interop import published as P

runner = CliRunner()


def build(*args: str):
    """``mimo data build ARGS`` as a user types it (no --on-error skip)."""
    return runner.invoke(app, ["data", "build", *args])


def report(out) -> dict:
    return json.loads((out / "build_report.json").read_text())


def records(out, split=None):
    splits = [split] if split else ["train", "val", "test"]
    return [r for s in splits for r in read_records(out / f"{s}.jsonl")]


def no_traceback(res) -> None:
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


# ------------------------------------------------------------------ segmentation sources


def test_samed2d_release_with_class_ids_and_mapping(tmp_path):
    root = P.samed2d_release(tmp_path / "SAMed2Dv1")
    out = tmp_path / "out"
    res = build("--source", f"samed2d:{root}", "--out", str(out))
    assert res.exit_code == 0, res.output
    rep = report(out)
    # ids became names through the mapping; union_ masks were not made into structures
    assert set(rep["slices_by_structure"]) == {"liver", "kidney_left", "kidney_right", "liver_tumor"}
    assert rep["slices_by_structure"]["kidney_left"] == 2 and rep["unmapped_labels"] == []
    assert {"I", "II"} <= set(rep["by_perspective"]) and rep["cases"]["done"] == 3
    texts = " ".join(t.value for r in records(out) for t in r.conversations)
    assert "union" not in texts and "0001" not in texts


def test_samed2d_instances_merged_but_countable(tmp_path):
    from mimo.data.interop.samed2d import list_samed2d

    root = P.samed2d_release(tmp_path / "SAMed2Dv1")
    ref = next(r for r in list_samed2d(root).refs if "LiTS" in r.case_id)
    case = ref.load()
    assert case.meta["instances"] == {"liver": 1, "liver_tumor": 2}
    assert case.labels["liver_tumor"].sum() == 6 * 8  # two touching 6x4 instances, one mask
    (sample,) = iter_slice_samples(case, SliceConfig(), tmp_path / "o", "s")
    recs = generate_records(sample, np.random.default_rng(0), PerspectiveConfig(iii_per_slice=30))
    counts = [r for r in recs if r.meta and r.meta.get("task") == "count"]
    assert counts and all(re.search(r"\b2\b|two", r.conversations[-1].value) for r in counts)


def test_samed2d_ids_without_mapping_file_are_refused(tmp_path):
    root = P.samed2d_release(tmp_path / "SAMed2Dv1", with_classes=False)
    res = build("--source", f"samed2d:{root}", "--out", str(tmp_path / "out"))
    assert res.exit_code == 2
    assert "SAMed2D_v1_class_mapping_id.json" in res.output and "classes=FILE" in res.output
    no_traceback(res)
    assert not (tmp_path / "out" / "shards").exists()


def test_samed2d_mapping_in_annotations_folder_and_classes_option(tmp_path):
    root = P.samed2d_release(tmp_path / "sa_med2d")
    (root / "annotations").mkdir()
    for name in ("SAMed2D_v1.json", "SAMed2D_v1_class_mapping_id.json"):  # a common re-layout
        (root / name).rename(root / "annotations" / name)
    res = build("--source", f"samed2d:{root}", "--out", str(tmp_path / "a"))
    assert res.exit_code == 0, res.output
    moved = tmp_path / "classes.json"
    (root / "annotations" / "SAMed2D_v1_class_mapping_id.json").rename(moved)
    res = build("--source", f"samed2d:{root},classes={moved}", "--out", str(tmp_path / "b"))
    assert res.exit_code == 0, res.output


def test_samed2d_structures_unknown_to_the_knowledge_base_fail(tmp_path):
    classes = {"AbdomenCT1K": {f"class{i}": i for i in range(4)}, "LiTS": {"class0": 0, "class1": 1}}
    root = P.samed2d_release(tmp_path / "SAMed2Dv1", classes=classes)
    out = tmp_path / "out"
    res = build("--source", f"samed2d:{root}", "--out", str(out))
    assert res.exit_code == 2
    assert "none of its structure names" in res.output and "'class1'" in res.output
    no_traceback(res)
    assert not (out / "train.jsonl").exists()
    assert not list((out / "shards").rglob("*.done.json"))  # a fixed rerun rebuilds


def test_samed2d_class_id_missing_from_mapping_names_mask(tmp_path):
    root = P.samed2d_release(tmp_path / "SAMed2Dv1", classes={"AbdomenCT1K": {"liver": 0}, "LiTS": {}})
    res = build("--source", f"samed2d:{root}", "--out", str(tmp_path / "out"))
    assert res.exit_code == 2
    assert "class id 0001 of dataset 'AbdomenCT1K' is not in" in res.output and "--0001_000.png" in res.output


def test_samed2d_github_demo_form(tmp_path):
    root = P.samed2d_demo(tmp_path / "SAM-Med2D")
    res = build("--source", f"samed2d:{root}", "--out", str(tmp_path / "train"))
    assert res.exit_code == 0, res.output
    assert set(report(tmp_path / "train")["slices_by_structure"]) == {"liver", "spleen", "aorta"}
    res = build("--source", f"samed2d:{root},json=label2image_test.json", "--out", str(tmp_path / "test"))
    assert res.exit_code == 0, res.output
    assert set(report(tmp_path / "test")["slices_by_structure"]) == {"hip_left", "colon"}


def test_nnunet_label_no_case_holds_is_a_warning(tmp_path):
    labels = {"background": 0, "liver": 1, "kidney_left": 2, "spleen": 3, "prostate": 4, "skull": 5}
    root = make_nnunet(tmp_path / "Dataset501_Total", labels=labels)
    out = tmp_path / "out"
    res = build("--source", f"nnunet:{root}", "--out", str(out), "--max-slices", "2")
    assert res.exit_code == 0, res.output
    rep = report(out)
    assert rep["problems"] == [] and len(rep["warnings"]) == 1
    assert "'prostate' (id 4)" in rep["warnings"][0] and "'skull' (id 5)" in rep["warnings"][0]
    assert [line for line in res.output.splitlines() if line.startswith("warning:")] == [
        f"warning: {rep['warnings'][0]}"
    ]


def test_build_help_lists_every_kind_and_its_options(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    res = runner.invoke(app, ["data", "build", "--help"])
    assert res.exit_code == 0
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.split()}
    for kind, spec in READERS.items():
        assert kind in lines and spec.help in lines[kind]
        fn = _resolve(spec.lister or spec.reader)
        options = [
            n
            for n, p in inspect.signature(fn).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY or (not spec.needs_path and p.default is not p.empty)
        ]
        options = [o for o in options if o not in ("kind", "name", "split", "copy_images")]
        listed = re.search(r"\(options: ([^)]*)\)", spec.help).group(1)
        assert set(options) <= {o.strip() for o in listed.replace(";", ",").split(",")}, kind


# ------------------------------------------------------------------ question/answer sources


def test_slake_empty_answer_is_dropped_and_counted(tmp_path):
    root = P.slake_release(tmp_path / "Slake1.0")
    out = tmp_path / "out"
    res = build("--source", f"slake:{root}", "--out", str(out), "--ratios", "none")
    assert res.exit_code == 0, res.output
    rep = report(out)
    assert rep["dropped"] == {"slake-Slake1.0": {"empty answer": 1}} and rep["skipped"] == []
    warnings = [line for line in res.output.splitlines() if "unusable" in line]
    assert warnings == [
        "warning: dropped 1 unusable sample(s) (slake-Slake1.0: 1 empty answer); see 'dropped' in the report"
    ]
    train, test = records(out, "train"), records(out, "test")
    assert [r.conversations[1].value for r in train] == ["No"] and len(test) == 1
    assert train[0].meta["answer_type"] == "closed"


def test_vqa_rad_integer_answers_and_trailing_space_types(tmp_path):
    root = P.vqa_rad_release(tmp_path / "VQA_RAD")
    out = tmp_path / "out"
    res = build("--source", f"vqa-rad:{root}", "--out", str(out), "--ratios", "none")
    assert res.exit_code == 0, res.output
    train, test = records(out, "train"), records(out, "test")
    assert [r.conversations[1].value for r in train] == ["2"]
    assert [(r.conversations[1].value, r.meta["answer_type"]) for r in test] == [
        ("Yes", "closed"),
        ("0", "open"),
    ]


def test_llava_med_eval_questions(tmp_path):
    path = P.llava_med_eval(tmp_path / "llava_med")
    out = tmp_path / "out"
    res = build(
        "--source",
        f"llava-med:{tmp_path / 'llava_med' / 'images'},json={path}",
        "--out",
        str(out),
        "--ratios",
        "none",
    )
    assert res.exit_code == 0, res.output
    test = records(out, "test")
    assert len(test) == 2 and not records(out, "train")
    first = test[0]
    assert first.conversations[0].value == "What is the organ in the image?\n<image>"
    assert first.conversations[1].value.startswith("The organ in the image is the conjunctiva")
    assert first.modality == "pathology" and first.meta["llava-med"]["question_id"] == 0
    assert first.meta["llava-med"]["type"] == "conversation" and "fig_caption" in first.meta["llava-med"]


@pytest.mark.parametrize("misspelt", [False, True])
def test_llava_format_vqa_test_files_keep_answer_type(tmp_path, misspelt):
    path = P.llava_vqa_test(tmp_path / "pvqa", misspelt=misspelt)
    out = tmp_path / "out"
    res = build(
        "--source",
        f"llava-med:{tmp_path / 'pvqa' / 'images'},json={path}",
        "--out",
        str(out),
        "--ratios",
        "none",
    )
    assert res.exit_code == 0, res.output
    test = records(out, "test")
    assert [r.meta["answer_type"] for r in test] == ["closed", "open"]
    assert [r.conversations[1].value for r in test] == ["yes", "granuloma"]


def test_mecovqa_missing_suffix_and_llavamed_paths(tmp_path):
    root = P.mecovqa_quirks(tmp_path / "data")
    out = tmp_path / "out"
    json_path = tmp_path / "data" / "MeCoVQA" / "test" / "MeCoVQA_Complex_VQA_test.json"
    res = build("--source", f"mecovqa:{root},json={json_path}", "--out", str(out), "--ratios", "none")
    assert res.exit_code == 0, res.output
    test = records(out, "test")
    assert len(test) == 3
    assert test[0].image.endswith(f"{P.CT1}.png") and (out / test[0].image).is_file()
    assert test[1].image.endswith("llavamed/images/PMC100_fig2.jpg") and (out / test[1].image).is_file()
    assert test[0].meta["answer_type"] == "closed" and test[1].meta["answer_type"] == "open"


def test_json_option_is_relative_to_the_source_path_not_cwd(tmp_path, monkeypatch):
    F.mecovqa(tmp_path / "m")
    decoy = tmp_path / "cwd"
    (decoy).mkdir()
    (decoy / "MeCoVQA_G_test.json").write_text("[]")  # same name in the current directory
    monkeypatch.chdir(decoy)
    out = tmp_path / "out"
    res = build(
        "--source",
        f"mecovqa:{tmp_path / 'm'},json=MeCoVQA_G_test.json",
        "--out",
        str(out),
        "--ratios",
        "none",
    )
    assert res.exit_code == 0, res.output
    assert len(records(out, "test")) == 4


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("samed2d", F.samed2d),
        ("mecovqa", F.mecovqa),
        ("slake", F.slake),
        ("vqa-rad", F.vqa_rad),
        ("pathvqa", F.pathvqa),
        ("llava-med", F.llava_med),
    ],
)
def test_every_kind_accepts_name_and_split(tmp_path, kind, make):
    make(tmp_path / "d")
    out = tmp_path / "out"
    res = build(
        "--source", f"{kind}:{tmp_path / 'd'},name=mine,split=test", "--out", str(out), "--ratios", "none"
    )
    assert res.exit_code == 0, res.output
    assert records(out, "test") and not records(out, "train") and not records(out, "val")
    assert (out / "shards" / f"{kind}-mine").is_dir()


def test_report_counts_modalities_per_record(tmp_path):
    F.mecovqa(tmp_path / "m")  # one shard holding three CT records and one MR record
    out = tmp_path / "out"
    res = build("--source", f"mecovqa:{tmp_path / 'm'}", "--out", str(out), "--ratios", "none")
    assert res.exit_code == 0, res.output
    assert report(out)["records_by_modality_before_mix"] == {"CT": 3, "MR": 1}


# ------------------------------------------------------------------ issue 13: paths from data files


@pytest.mark.parametrize("bad", ["../../../../x.png", "ABS"])
def test_vqa_source_refuses_images_outside_its_root(tmp_path, bad):
    data = tmp_path / "vqa"
    F.png(tmp_path / "x.png", F.image(0))
    image = str(tmp_path / "x.png") if bad == "ABS" else "../" * 4 + "x.png"
    (data / "sub" / "deeper").mkdir(parents=True)
    sample = {
        "id": "1",
        "image": image,
        "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A scan."}],
    }
    path = data / "sub" / "deeper" / "set.json"
    path.write_text(json.dumps([sample]))
    out = tmp_path / "o" / "p" / "out"
    res = build("--source", f"vqa:{path}", "--out", str(out))
    assert res.exit_code == 2 and "escapes the root" in res.output
    no_traceback(res)
    assert sorted(p.name for p in tmp_path.rglob("x.png")) == ["x.png"]  # nothing copied anywhere


def test_validate_flags_images_outside_the_dataset_folder(tmp_path):
    F.png(tmp_path / "x.png", F.image(0))
    out = tmp_path / "build"
    out.mkdir()
    rec = {
        "id": "r1",
        "image": "../x.png",
        "perspective": "vqa",
        "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A scan."}],
    }
    (out / "test.jsonl").write_text(json.dumps(rec) + "\n")
    res = runner.invoke(app, ["data", "validate", str(out)])
    assert res.exit_code == 1
    assert "image '../x.png' is outside the dataset folder" in res.output


def test_mecovqa_round_trip_is_content_equal_not_byte_equal(tmp_path):
    """The writer's claim as the docs now state it: a published file (other indentation, masks
    stored as 0/1) comes back as equal JSON content and pixel-equal masks, not the same bytes."""
    from PIL import Image

    from mimo.data.interop.mecovqa import read_mecovqa, write_mecovqa

    src = F.mecovqa(tmp_path / "m")
    src.write_text(json.dumps(json.loads(src.read_text()), indent=4))  # published indentation differs
    for m in (tmp_path / "m" / "masks").iterdir():  # published masks hold 0/1
        Image.fromarray((np.asarray(Image.open(m)) > 0).astype(np.uint8)).save(m)
    recs = [item.make() for item in read_mecovqa(tmp_path / "m", tmp_path / "out").items]
    out = write_mecovqa(recs, tmp_path / "w" / src.name, tmp_path / "w")
    assert out.read_bytes() != src.read_bytes()
    assert json.loads(out.read_text()) == json.loads(src.read_text())
    assert [list(d) for d in json.loads(out.read_text())] == [list(d) for d in json.loads(src.read_text())]
    for m in (tmp_path / "m" / "masks").iterdir():
        written = tmp_path / "w" / "masks" / m.name
        assert written.read_bytes() != m.read_bytes()
        assert np.array_equal(np.asarray(Image.open(written)) > 0, np.asarray(Image.open(m)) > 0)


@pytest.mark.parametrize("kind", ["msd", "coco"])
def test_segmentation_readers_refuse_paths_leaving_their_root(tmp_path, kind):
    """MSD's ``training`` entries and COCO's ``file_name`` are paths from a data file too."""
    if kind == "msd":
        root = make_nnunet(tmp_path / "Task01", msd=True)
        ds = json.loads((root / "dataset.json").read_text())
        ds["training"][0]["image"] = "../../outside.nii.gz"
        (root / "dataset.json").write_text(json.dumps(ds))
        source = f"msd:{root}"
    else:
        ann = make_coco(tmp_path / "coco")
        data = json.loads(ann.read_text())
        data["images"][0]["file_name"] = str(tmp_path / "coco" / "a.png")  # absolute
        ann.write_text(json.dumps(data))
        source = f"coco:{ann}"
    res = build("--source", source, "--out", str(tmp_path / "out"))
    assert res.exit_code == 2 and "escapes the root" in res.output
    no_traceback(res)


def test_llava_med_empty_answers_are_counted_as_one_reason(tmp_path):
    path = P.llava_med_eval(tmp_path / "l")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows.append(dict(rows[0], question_id=2, gpt4_answer=" "))
    rows.append(
        {
            "id": "x",
            "image": rows[0]["image"],
            "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": ""}],
        }
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    res = build(
        "--source",
        f"llava-med:{tmp_path / 'l' / 'images'},json={path}",
        "--out",
        str(out),
        "--ratios",
        "none",
    )
    assert res.exit_code == 0, res.output
    assert report(out)["dropped"] == {"llava-med-images": {"empty answer": 2}}
    assert len(records(out, "test")) == 2


def test_vqa_source_normalises_answer_types(tmp_path):
    F.png(tmp_path / "d" / "a.png", F.image(0))
    rows = [
        {
            "id": i,
            "image": "a.png",
            "answer_type": t,
            "conversations": [{"from": "human", "value": "<image>\nIs it?"}, {"from": "gpt", "value": "yes"}],
        }
        for i, t in enumerate(["CLOSED ", "OPEN"])
    ]
    (tmp_path / "d" / "test.json").write_text(json.dumps(rows))
    out = tmp_path / "out"
    res = build(
        "--source", f"vqa:{tmp_path / 'd' / 'test.json'},split=test", "--out", str(out), "--ratios", "none"
    )
    assert res.exit_code == 0, res.output
    assert [r.meta["answer_type"] for r in records(out, "test")] == ["closed", "open"]
