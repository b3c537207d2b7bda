"""Issue 13's bounded fuzz test: valid PNG, DICOM, NIfTI and JSONL record files, truncated and
bit-flipped at seeded positions. Every case must give a correct result (pixels of the expected
form, records that pass the schema) or the project's user error (``MimoDataError``, which the
commands print as one line with exit code 2); any other exception is a failure."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mimo.core import rle
from mimo.core.errors import MimoDataError
from mimo.core.images import load_volume, read_image
from mimo.core.records import iter_record_lines
from mimo.core.schema import Record

from .image_files import ct_dicom, nifti, phantom

SEED = 1313
CUTS_PER_FILE = 24  # truncations, the first ones at the header
FLIPS_PER_FILE = 60  # single-bit flips, a third of them in the first 400 bytes (headers)


def truncations(data: bytes, rng: np.random.Generator) -> Iterator[tuple[str, bytes]]:
    header = [0, 1, 8, 16, 33, 64, 128, 132, 200, 348, 352]
    cuts = sorted(
        {c for c in header if c < len(data)} | set(rng.integers(1, len(data), CUTS_PER_FILE).tolist())
    )
    for cut in cuts[:CUTS_PER_FILE]:
        yield f"cut@{cut}", data[:cut]


def bit_flips(data: bytes, rng: np.random.Generator) -> Iterator[tuple[str, bytes]]:
    n_head = FLIPS_PER_FILE // 3
    positions = np.concatenate(
        [rng.integers(0, min(400, len(data)), n_head), rng.integers(0, len(data), FLIPS_PER_FILE - n_head)]
    )
    for pos, bit in zip(positions.tolist(), rng.integers(0, 8, FLIPS_PER_FILE).tolist(), strict=True):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << bit
        yield f"flip@{pos}.{bit}", bytes(flipped)


def is_image(result) -> bool:
    return (
        isinstance(result, np.ndarray)
        and result.dtype == np.uint8
        and (result.ndim == 2 or (result.ndim == 3 and result.shape[-1] == 3))
        and result.size > 0
    )


def is_volume(result) -> bool:
    return result.data.dtype == np.uint8 and result.data.ndim == 3 and result.n_slices >= 1


def is_records(result) -> bool:
    return isinstance(result, list) and all(isinstance(r, Record) for _, r in result)


def valid_files(folder: Path) -> list[tuple[str, Callable, Callable]]:
    """``(file, read it, is the result of the right form)`` for each valid starting file."""
    ramp = np.add.outer(np.arange(40), np.arange(48)).astype(np.uint8) * 2
    Image.fromarray(ramp).save(folder / "gray.png")
    Image.fromarray(np.stack([ramp, ramp[::-1], 255 - ramp], -1)).save(folder / "rgb.png")
    Image.fromarray(ramp.astype(np.uint16) * 300).save(folder / "deep16.png")
    ct_dicom(folder / "ct.dcm", np.linspace(-500, 500, 32 * 24, dtype=np.float32).reshape(32, 24))
    nifti(folder / "mr.nii.gz", phantom((12, 10, 4)))
    nifti(folder / "mr.nii", phantom((12, 10, 4), seed=1))
    records = []
    for i in range(3):
        mask = np.zeros((40, 48), bool)
        mask[5 + i : 20, 8:30] = True
        records.append(
            {
                "id": f"r{i}",
                "image": "gray.png",
                "masks": {"m0": rle.encode(mask).model_dump()},
                "regions": [{"type": "box", "box": [8, 5, 30, 20]}],
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat is in <region>?"},
                    {"from": "gpt", "value": "It is the <p>liver</p> <SEG>.", "masks": ["m0"]},
                ],
            }
        )
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return [
        ("gray.png", read_image, is_image),
        ("rgb.png", read_image, is_image),
        ("deep16.png", read_image, is_image),
        ("ct.dcm", read_image, is_image),
        ("mr.nii.gz", load_volume, is_volume),
        ("mr.nii", load_volume, is_volume),
        ("records.jsonl", lambda p: list(iter_record_lines(p)), is_records),
    ]


def test_truncated_and_bit_flipped_files_give_a_result_or_a_clear_error(tmp_path):
    source = tmp_path / "valid"
    source.mkdir()
    rng = np.random.default_rng(SEED)
    failures, outcomes, cases, start = [], {"result": 0, "user error": 0}, 0, time.monotonic()
    for name, read, is_correct in valid_files(source):
        data = (source / name).read_bytes()
        assert is_correct(read(source / name)), name  # the valid file reads
        for label, mutated in [*truncations(data, rng), *bit_flips(data, rng)]:
            path = tmp_path / f"{label}-{name}"
            path.write_bytes(mutated)
            cases += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # decoders warn about odd values; results count
                    result = read(path)
            except MimoDataError as exc:
                outcomes["user error"] += 1
                if "\n" in str(exc) or path.name not in str(exc):
                    failures.append(f"{label} {name}: message not one line naming the file: {exc!r}")
            except Exception as exc:  # noqa: BLE001 - this is what the test looks for
                failures.append(f"{label} {name}: {type(exc).__name__}: {exc}")
            else:
                outcomes["result"] += 1
                if not is_correct(result):
                    failures.append(f"{label} {name}: a result of the wrong form: {type(result).__name__}")
            path.unlink()
    print(f"fuzz: {cases} cases in {time.monotonic() - start:.1f} s: {outcomes}, {len(failures)} failures")
    assert cases >= 300
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize("encoding_damage", [b"\xff\xfe", b"\xc3"])
def test_non_utf8_record_bytes_are_a_clear_error(tmp_path, encoding_damage):
    path = tmp_path / "bad.jsonl"
    good = {
        "id": "a",
        "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}],
    }
    path.write_bytes(json.dumps(good).encode() + b'\n{"id": "' + encoding_damage + b'"}\n')
    with pytest.raises(MimoDataError, match=r"bad.jsonl:2: not UTF-8 text"):
        list(iter_record_lines(path))
