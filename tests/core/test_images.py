"""Issue 13, one way to read an image: size limits from the header (defect 1), NaN/Inf-aware
ranges and constant images (defect 3), invalid DICOM windows (defect 10), unsupported formats
named (defect 12), and the same pixels in training and in use."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mimo.cli import app
from mimo.core.errors import MimoDataError
from mimo.core.images import (
    ImageError,
    ImageLimits,
    ImageWarning,
    load_volume,
    parse_window,
    percentile_range,
    read_image,
    read_raster,
    to_uint8,
)

from .image_files import ct_dicom, nifti, phantom, pillow_png, streamed_black_png

runner = CliRunner()


def assert_one_line_exit_2(args: list) -> str:
    """The command fails as a user error: exit 2, one ``error:`` line, no traceback."""
    result = runner.invoke(app, [str(a) for a in args])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, ImageError | KeyError)
    return lines[0]


def test_image_error_is_the_project_user_error():
    assert issubclass(ImageError, MimoDataError) and issubclass(ImageError, ValueError)


# ---------------------------------------------------------------- defect 1: size limits


def test_tiny_wide_pngs_are_refused_from_the_header(tmp_path):
    wide = pillow_png(tmp_path / "wide.png", 65535, 1)
    strip = pillow_png(tmp_path / "strip.png", 8000, 1)
    assert wide.stat().st_size < 200 and strip.stat().st_size < 100  # the 140 and 86 bytes
    with pytest.raises(ImageError, match=r"wide.png: image of 65535 x 1 pixels: a side is longer"):
        read_image(wide)
    with pytest.raises(ImageError, match=r"strip.png: image of 8000 x 1 pixels is too elongated: aspect"):
        read_image(strip)
    message = assert_one_line_exit_2(["chat", "--image", wide, "What is this?"])
    assert "wide.png" in message and "16384" in message


def test_limits_refuse_arrays_and_a_bomb_png_like_any_other(tmp_path):
    with pytest.raises(ImageError, match="image array: image of 3000 x 100 pixels is too elongated"):
        read_image(np.zeros((100, 3000), np.uint8))
    bomb = streamed_black_png(tmp_path / "bomb.png", 20000, 20000)
    # Pillow alone raises DecompressionBombError at open; here it is the same clear error
    with pytest.raises(ImageError, match=r"bomb.png: image of 20000 x 20000 pixels: a side is longer"):
        read_image(bomb)
    assert "bomb.png" in assert_one_line_exit_2(["chat", "--image", bomb, "What is this?"])
    # over Pillow's warning size (89 M pixels): still one line, no DecompressionBombWarning
    warned = streamed_black_png(tmp_path / "warned.png", 10000, 10000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert "100000000 pixels" in assert_one_line_exit_2(["chat", "--image", warned, "What is this?"])
    small = ImageLimits(max_side=64, max_pixels=64 * 64, max_aspect=4)
    assert read_image(pillow_png(tmp_path / "ok.png", 64, 16), limits=small).shape == (16, 64)


def test_refusing_a_large_png_from_its_header_keeps_memory_bounded(tmp_path):
    """Peak memory (ru_maxrss) of a fresh process barely moves while a 20000 x 20000 PNG and a
    48-megapixel PNG (under Pillow's bomb limit, over mimo's) are refused."""
    files = [
        streamed_black_png(tmp_path / "big.png", 20000, 20000),
        streamed_black_png(tmp_path / "b.png", 8000, 6000),
    ]
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        from PIL import Image, PngImagePlugin
        from mimo.core.images import ImageError, read_image
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        errors = []
        for path in {[str(f) for f in files]!r}:
            try:
                read_image(path)
            except ImageError as exc:
                errors.append(str(exc))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"grew_kb": after - before, "errors": errors}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(out.stdout)
    print(f"peak memory grew by {result['grew_kb']} KiB while refusing {len(files)} large PNGs")
    assert len(result["errors"]) == 2 and "48000000 pixels" in result["errors"][1]
    assert result["grew_kb"] < 16 * 1024  # decoding the smaller one alone would take 48 MB


def test_the_processor_resizes_before_padding_with_the_same_pixels():
    from mimo.model.frame import SquareFrame, pad_to_square, resize

    torch.manual_seed(0)
    modes = [
        ("bilinear", False),
        ("bilinear", True),
        ("bicubic", False),
        ("bicubic", True),
        ("nearest", False),
    ]
    for (h, w), size in [((37, 500), 336), ((500, 37), 224), ((64, 64), 32), ((3, 2), 7), ((100, 1600), 336)]:
        image = torch.rand(1, 3, h, w)
        for mode, antialias in modes:
            padded_then_resized = resize(pad_to_square(image, max(h, w)), size, mode, antialias)
            got = SquareFrame(h, w, size).image_to_square(image, mode, antialias)
            assert torch.allclose(got, padded_then_resized, atol=1e-6), (h, w, size, mode, antialias)


# ---------------------------------------------------------------- defect 3: NaN/Inf and constants


def test_one_nan_voxel_no_longer_blanks_a_volume_and_is_reported(tmp_path):
    volume = phantom()
    volume[3, 4, 2] = np.nan
    path = nifti(tmp_path / "nan.nii.gz", volume)
    with pytest.warns(ImageWarning, match=r"nan.nii.gz: 1 of 2880 values are NaN or infinite"):
        loaded = load_volume(path)
    finite_nonzero = volume[np.isfinite(volume) & (volume != 0)]
    lo, hi = np.percentile(finite_nonzero, [0.5, 99.5])
    expected = np.clip((volume - lo) / (hi - lo), 0, 1) * 255 + 0.5
    expected = np.where(np.isfinite(expected), expected, 0).astype(np.uint8)
    assert np.array_equal(loaded.data[::-1, ::-1], expected[::-1, ::-1])  # RAS volume, as stored
    middle = loaded.slice(3)
    assert middle.max() == 255 and (middle > 0).mean() > 0.2  # not black
    with pytest.warns(ImageWarning, match="1 of 2880"):  # the builder's path (to_uint8) too
        assert to_uint8(volume, "MR", where="nan.nii.gz").max() == 255


def test_infinite_hu_is_reported_and_shown_as_zero():
    hu = np.full((8, 8), 40.0, np.float32)
    hu[0, 0], hu[0, 1] = np.inf, -np.inf
    with pytest.warns(ImageWarning, match="2 of 64 values"):
        image = to_uint8(hu, "CT", window=(40, 400), where="ct.nii")
    assert image[0, 0] == image[0, 1] == 0 and image[4, 4] == 128


def test_constant_and_all_nan_images_are_reported_not_used(tmp_path):
    with pytest.raises(ImageError, match=r"flat.nii.gz: every voxel has the value 7"):
        load_volume(nifti(tmp_path / "flat.nii.gz", np.full((6, 6, 3), 7.0, np.float32)))
    with pytest.raises(ImageError, match="all 108 values are NaN or infinite"):
        load_volume(nifti(tmp_path / "nans.nii.gz", np.full((6, 6, 3), np.nan, np.float32)))
    flat16 = tmp_path / "flat16.png"
    Image.fromarray(np.full((8, 8), 1000, np.uint16)).save(flat16)
    with pytest.raises(ImageError, match="flat16.png: every pixel has the value 1000"):
        read_image(flat16)
    # a binary volume: equal percentiles of the non-zero voxels fall back to the full range
    binary = np.zeros((10, 10, 4), np.float32)
    binary[2:5, 2:5] = 1.0
    assert percentile_range(binary) == (0.0, 1.0)


# ---------------------------------------------------------------- defect 10: DICOM windows


def test_dicom_window_width_zero_and_infinite_windows_name_the_tag_or_option(tmp_path):
    hu = np.linspace(-200, 300, 64, dtype=np.float32).reshape(8, 8)
    zero = ct_dicom(tmp_path / "zero.dcm", hu, center="40", width="0")
    with pytest.raises(
        ImageError, match=r"zero.dcm: WindowCenter/WindowWidth .*\(0028,1051\) 40,0: the width"
    ):
        read_image(zero)
    assert "WindowWidth" in assert_one_line_exit_2(["chat", "--image", zero, "Where is the liver?"])
    assert np.array_equal(read_image(zero, window=(40, 400))[0], to_uint8(hu, "CT", window=(40, 400))[0])
    huge = ct_dicom(tmp_path / "huge.dcm", hu, center="1e309", width="1")
    with pytest.raises(ImageError, match="level and width must be finite"):
        read_image(huge)
    with pytest.raises(ImageError, match=r"--window '1e309,1': inf,1: level and width must be finite"):
        parse_window("1e309,1")
    with pytest.raises(ImageError, match="the width must be positive"):
        parse_window("40,0")
    volume = nifti(tmp_path / "ct.nii.gz", (hu[..., None] * np.ones(3)).astype(np.int16))
    message = assert_one_line_exit_2(["segment-volume", volume, "Segment the liver.", "--window", "1e309,1"])
    assert "--window" in message


# ---------------------------------------------------------------- defect 12 (part): formats


def test_unsupported_formats_are_named_not_reported_as_missing_dicom_headers(tmp_path):
    gif = tmp_path / "scan.gif"
    Image.new("P", (16, 16)).save(gif)
    with pytest.raises(ImageError, match=r"scan.gif: a GIF image, not a supported format; expected PNG"):
        read_image(gif)
    assert "DICOM" not in assert_one_line_exit_2(["chat", "--image", gif, "What is this?"]).split(";")[0]
    from mimo.serve.media import open_media

    with pytest.raises(ImageError, match=r"^upload.gif: a GIF image") as info:
        open_media(gif, "upload.gif")
    assert str(tmp_path) not in str(info.value)  # the page never sees server paths
    renamed = tmp_path / "photo.dcm"  # formats are told by content, not by name
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(renamed, format="PNG")
    assert read_image(renamed)[7, 7] == 63


# ---------------------------------------------------------------- one way: training == inference


def test_training_and_inference_see_the_same_pixels_of_a_16_bit_png(tmp_path):
    from mimo.train.dataset import RecordDataset

    ramp = (np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16)  # 0 .. 61380
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    record = {
        "id": "r0",
        "image": "ramp16.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is shown?"},
            {"from": "gpt", "value": "A ramp."},
        ],
    }
    (tmp_path / "train.jsonl").write_text(json.dumps(record) + "\n")
    trained_on = RecordDataset([tmp_path / "train.jsonl"], processor=None).load(0)["image"]
    used_on = read_image(tmp_path / "ramp16.png")
    assert np.array_equal(trained_on, used_on)
    assert (
        used_on.min() == 0 and used_on.max() == 255 and len(np.unique(used_on)) > 200
    )  # rescaled, not clipped
    assert np.array_equal(read_raster(Path(tmp_path / "ramp16.png")), used_on)


def test_the_builder_refuses_a_wide_png_with_exit_2(tmp_path):
    root = tmp_path / "folder"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    pillow_png(root / "images" / "strip.png", 8000, 1)
    pillow_png(root / "masks" / "strip.png", 8000, 1)
    message = assert_one_line_exit_2(
        [
            "data",
            "build",
            "--source",
            f"folder2d:{root},structure=liver",
            "--out",
            tmp_path / "out",
            "--no-progress",
        ]
    )
    assert "strip.png: image of 8000 x 1 pixels is too elongated" in message


def test_pathvqa_parquet_image_bytes_are_refused_from_the_header(tmp_path):
    from mimo.data.interop.vqa_sets import _parquet_maker

    wide = pillow_png(tmp_path / "wide.png", 65535, 1).read_bytes()
    row = {"image": {"bytes": wide, "path": "wide.png"}, "question": "Is there fibrosis?", "answer": "yes"}
    make = _parquet_maker(row, "train.parquet: row 0", tmp_path / "out", "pathvqa", "r0", "train")
    with pytest.raises(
        MimoDataError, match=r"row 0: field 'image': image of 65535 x 1 pixels: a side is longer"
    ):
        make()
    assert not list((tmp_path / "out").rglob("*.png"))
