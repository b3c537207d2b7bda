"""Make the example images bundled with ``mimo serve`` (src/mimo/serve/examples/).

    python scripts/make_serve_examples.py

Everything is made offline and deterministically: a synthetic shape image (the one
``mimo.model.synthetic.same_image_region_samples`` uses, so a test-trained tiny model knows
it), an axial slice of nilearn's MNI152 T1 template, and a small abdominal CT phantom volume
in Hounsfield units (NIfTI) from ``mimo.data.sources.phantom``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "mimo" / "serve" / "examples"


def shapes(out: Path) -> None:
    from mimo.data.imaging import write_png
    from mimo.model.synthetic import shape_image

    image, _ = shape_image(np.random.default_rng(2), 64)
    write_png(out / "shapes.png", image)


def mni152(out: Path) -> None:
    from nilearn import datasets

    from mimo.data import imaging

    template = datasets.load_mni152_template(resolution=1)
    data = np.asarray(template.get_fdata(), dtype=np.float32)
    volume = imaging.to_uint8(data, "MR")
    index = int(data.shape[2] * 0.55)
    imaging.write_png(out / "mni152_t1_axial.png", imaging.slice_to_display(volume, 2, index))


def abdomen_ct(out: Path) -> None:
    import nibabel as nib

    from mimo.data.sources.phantom import _abdomen_ct

    hu, _, _, affine, _ = _abdomen_ct(np.random.default_rng(3), 64)
    hu = np.round(hu).astype(np.int16)
    img = nib.Nifti1Image(hu, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(out / "abdomen_ct_phantom.nii.gz"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for make in (shapes, mni152, abdomen_ct):
        make(OUT)
    total = 0
    for path in sorted(OUT.iterdir()):
        total += path.stat().st_size
        print(f"{path.name}: {path.stat().st_size / 1024:.1f} KB")
    print(f"total {total / 1024:.1f} KB", file=sys.stderr)


if __name__ == "__main__":
    main()
