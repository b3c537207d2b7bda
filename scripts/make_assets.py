"""Put the trained ``mimo-tiny`` and a held-out sample of its data inside the package.

    python scripts/make_assets.py runs/mimo-tiny-real/final data/mimoseg-mini data/mimoseg-real

Copies the model directory to ``src/mimo/assets/mimo-tiny`` and the test-split records of the
chosen held-out images (with the PNGs) to ``src/mimo/assets/heldout``: MIMOSeg-mini's
``HELDOUT_IMAGES`` and, when the real build is given, ``REAL_HELDOUT_IMAGES`` (an HC18 subject and
an MSD hippocampus patient of its test split). Every image copied here comes from a test split,
so none was seen in training.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "mimo" / "assets"
RECIPE = ROOT / "configs" / "mimo-tiny-real.yaml"
STAGE1_RECIPE = ROOT / "configs" / "mimo-tiny.yaml"
HELDOUT_IMAGES = (
    "images/mni152-default-2/mni152_z058-072_z006.png",
    "images/mni152-default-2/mni152_z058-072_z012.png",
    "images/phantom-default/phantom_abdomen_ct_0045_z009.png",
    "images/phantom-default/phantom_abdomen_ct_0045_z016.png",
    "images/phantom-default/phantom_brain_mri_0035_z016.png",
    "images/phantom-default/phantom_chest_xray_0049.png",
)
REAL_HELDOUT_IMAGES = (
    "images/folder2d-hc18-fetal-head/021_HC.png",
    "images/folder2d-hc18-fetal-head/049_HC.png",
    "images/msd-msd-hippocampus/hippocampus_038_z016.png",
    "images/msd-msd-hippocampus/hippocampus_083_z012.png",
)
CREDITS = """# Credits of the packaged real images

- `NNN_HC.png`: HC18 fetal head ultrasound (downsampled to 256 px wide), with the head mask
  and the published head circumference, CC BY 4.0. van den Heuvel, de Bruijn, de Korte,
  van Ginneken, "Automated measurement of fetal head circumference using 2D ultrasound
  images", PLOS ONE 13(8): e0200412 (2018); data: Zenodo record 1327317.
- `hippocampus_NNN_zKKK.png`: an axial slice of a Medical Segmentation Decathlon Task04
  (Hippocampus) T1 MRI with its anterior / posterior hippocampus masks, CC BY-SA 4.0 (these
  slices and their records are shared under the same licence). Simpson, Antonelli, Bakas et
  al., "A large annotated medical image dataset for the development and evaluation of
  segmentation algorithms", 2019; Antonelli et al., Nature Communications 13, 4128 (2022);
  data from Vanderbilt University Medical Center, medicaldecathlon.com.

The other images are MNI152 template slices and procedural phantoms made by the project.
"""
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def main(model_dir: Path, build_dir: Path, real_dir: Path | None = None) -> None:
    target = ASSETS / "mimo-tiny"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in MODEL_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, target / name)
    if (model_dir / "training_info.json").is_file():
        shutil.copy2(model_dir / "training_info.json", target / "training_info.json")
    # the resolved training config of the run, and the recipe (data + train commands) it came from
    run_config = model_dir.parent / "config.yaml"
    if run_config.is_file():
        shutil.copy2(run_config, target / "train_config.yaml")
    shutil.copy2(RECIPE, target / "recipe.yaml")
    shutil.copy2(STAGE1_RECIPE, target / "recipe-stage1.yaml")

    heldout = ASSETS / "heldout"
    if heldout.exists():
        shutil.rmtree(heldout)
    (heldout / "images").mkdir(parents=True)
    lines = _heldout(build_dir, HELDOUT_IMAGES, heldout)
    if real_dir is not None:
        lines += _heldout(real_dir, REAL_HELDOUT_IMAGES, heldout)
        (heldout / "CREDITS.md").write_text(CREDITS)
    (heldout / "records.jsonl").write_text("\n".join(lines) + "\n")
    print(f"model -> {target}; {len(lines)} held-out records -> {heldout}")


def _heldout(build_dir: Path, images: tuple[str, ...], heldout: Path) -> list[str]:
    """The test records of ``images`` (paths rewritten to ``images/NAME``), images copied."""
    lines = []
    for line in (build_dir / "test.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["image"] in images:
            name = Path(record["image"]).name
            record["image"] = f"images/{name}"
            lines.append(json.dumps(record, sort_keys=True))
    for image in images:
        shutil.copy2(build_dir / image, heldout / "images" / Path(image).name)
    return lines


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
