"""The one atomic writer and the one ``safe_name`` (``mimo.core.files``)."""

from __future__ import annotations

import pytest

from mimo.core.files import atomic_open, atomic_save, atomic_write_text, fsync_tree, replace_folder, safe_name


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "train.jsonl"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic_open(path) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["train.jsonl"]


def test_atomic_save_hands_the_library_a_name_with_the_same_suffixes(tmp_path):
    seen = []
    target = tmp_path / "labels.nii.gz"
    atomic_save(target, lambda partial: (seen.append(partial.name), partial.write_bytes(b"nifti")))
    assert seen == [".partial-labels.nii.gz"] and target.read_bytes() == b"nifti"
    with pytest.raises(OSError):
        atomic_save(target, lambda partial: (partial.write_bytes(b"half"), (_ for _ in ()).throw(OSError())))
    assert target.read_bytes() == b"nifti" and sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz"]


def test_replace_folder_swaps_a_finished_folder_in(tmp_path):
    final, tmp = tmp_path / "final", tmp_path / "final.tmp"
    final.mkdir()
    (final / "old.bin").write_bytes(b"old")
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"new")
    fsync_tree(tmp)
    replace_folder(tmp, final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]
    assert [p.name for p in final.iterdir()] == ["model.safetensors"]


@pytest.mark.parametrize(
    ("text", "builder", "importer"),
    [
        ("case 01/a", "case_01_a", "case_01_a"),
        (".hidden.", "hidden", ".hidden."),  # the builder never writes a hidden file
        ("__x__", "x", "x"),
        ("", "x", "x"),
        ("..", "x", "x"),  # dots only are never a folder name
        ("/../", "x", "x"),
        (7, "7", "7"),
    ],
)
def test_safe_name_in_the_builders_and_the_importers_spelling(text, builder, importer):
    assert safe_name(text) == builder
    assert safe_name(text, trim="_") == importer
    assert safe_name("", trim="_", fallback="vqa") == "vqa"
