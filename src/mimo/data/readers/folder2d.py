"""2D image/mask folders::

    root/images/<name>.png|jpg          the images (gray or RGB)
    root/masks/<name>.png               a label map (needs a label file), or
    root/masks/<name>/<structure>.png   one binary mask per structure
    root/labels.json | labels.txt       label ids -> names for label maps

A label map with a single foreground structure may go without a label file if
``structure=NAME`` is given (every non-zero pixel is that structure).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mimo.core.errors import MimoDataError
from mimo.core.images import read_raster
from mimo.data.case import MODALITIES, Case
from mimo.data.readers.base import (
    CaseRef,
    Listing,
    iter_listing,
    masks_from_label_map,
    patient_id_from,
    read_label_file,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _images_in(d: Path) -> list[Path]:
    return sorted(
        p
        for p in d.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def load_image(path: Path, *, mask: bool = False) -> np.ndarray:
    """Read an image as ``(H, W)`` or ``(H, W, 3)`` ``uint8`` (masks: ``(H, W)`` integer), by the
    rules of ``mimo.core.images`` (16-bit rescaled, header size limits, formats by content)."""
    return read_raster(path, mask=mask)


def list_folder2d(
    path: str | Path,
    *,
    images: str = "images",
    masks: str = "masks",
    labels: str | None = None,
    structure: str | None = None,
    modality: str = "other",
    spacing: float | str | None = None,
    spacing_csv: str | None = None,
    mask_suffix: str = "",
    fill_holes: bool = False,
    patient_regex: str | None = None,
    image_right: str | None = None,
    image_down: str | None = None,
    kind: str = "folder2d",
) -> Listing:
    """List the image/mask pairs of a 2D folder dataset.

    Args:
        labels: label file (relative to ``path`` or absolute); default ``labels.json`` or
            ``labels.txt`` when present.
        structure: name of the single structure of binary label maps without a label file.
        modality: one of ``mimo.data.case.MODALITIES`` (default ``other``).
        spacing: pixel size in mm (``0.5`` or ``"0.5x0.7"`` row x col); default 1.
        spacing_csv: a CSV (relative to ``path`` or absolute) with one row per image: a
            ``filename`` column and a pixel-size column whose header starts with ``pixel size``
            (HC18's ``pixel_size_and_HC.csv``); other ``... (mm)`` columns are published
            measurements, kept in the case's ``meta["reference_measurements"]``. Its pixel
            sizes override ``spacing``; an image it does not list is an error.
        mask_suffix: the mask of ``NAME.png`` is ``NAME<suffix>.png`` (e.g. ``_Annotation``);
            with ``masks`` the same folder as ``images``, files ending so are not images.
        fill_holes: fill closed outlines (HC18 publishes the head as a drawn ellipse).
        image_right / image_down: patient directions of +x / +y when known (e.g. ``L``/``I``
            for a PA chest X-ray), used by laterality questions.
    """
    root = Path(path)
    img_dir, mask_dir = _check_layout(root, images, masks, modality)
    label_file = _label_file(root, labels)
    label_map = read_label_file(label_file) if label_file is not None else None
    sp = _parse_spacing(spacing)
    per_image = read_spacing_csv(_under(root, spacing_csv)) if spacing_csv else None
    refs = []
    mask_files = {p.stem: p for p in _images_in(mask_dir)}
    for img in _images_in(img_dir):
        stem = img.stem
        if mask_suffix and stem.endswith(mask_suffix):
            continue  # a mask beside its image
        named = label_map is not None or structure is not None
        found = _case_masks(mask_dir / stem, mask_files.get(stem + mask_suffix), named)
        if found is None:
            continue  # an image without masks is not a segmentation case
        mfiles, mode = found
        pid = patient_id_from(stem, patient_regex)
        img_sp, reference = _image_spacing(img, sp, per_image, root, spacing_csv)
        load = functools.partial(
            _load_case,
            case_id=stem,
            patient_id=pid,
            image_path=str(img),
            mask_paths=mfiles,
            mode=mode,
            label_map=label_map if structure is None else {structure: None},
            label_file=str(label_file) if label_file else None,
            modality=modality,
            spacing=img_sp,
            reference=reference,
            fill_holes=fill_holes,
            source=f"{kind}:{root.name}",
            orientation=(image_right, image_down),
        )
        refs.append(CaseRef(stem, pid, (str(img), *mfiles), load))
    if not refs:
        raise MimoDataError(f"empty dataset: no image in {images}/ has a mask in {masks}/", root)
    declared = {}
    if label_map is not None and structure is None and label_file is not None:
        declared[str(label_file)] = {n: ids[0] if len(ids) == 1 else ids for n, ids in label_map.items()}
    return Listing(refs=refs, declared_labels=declared)


def _check_layout(root: Path, images: str, masks: str, modality: str) -> tuple[Path, Path]:
    """The image and mask folders (both must exist) after checking ``modality``."""
    img_dir, mask_dir = root / images, root / masks
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise MimoDataError(f"folder {d.name}/ not found (expected {images}/ and {masks}/)", root)
    if modality not in MODALITIES:
        raise MimoDataError(f"option modality={modality!r}: expected one of {', '.join(MODALITIES)}")
    return img_dir, mask_dir


def _image_spacing(
    img: Path, spacing: tuple[float, float], per_image: dict | None, root: Path, spacing_csv: str | None
) -> tuple[tuple[float, float], dict[str, float]]:
    """``(pixel spacing, published measurements)`` of one image: its row of the spacing CSV
    when there is one (an image it does not list is an error), else ``spacing``."""
    if per_image is None:
        return spacing, {}
    if img.name not in per_image:
        raise MimoDataError(f"no row for image {img.name} (column 'filename')", _under(root, spacing_csv))
    px, reference = per_image[img.name]
    return (px, px), reference


def _label_file(root: Path, labels: str | None) -> Path | None:
    """The label file named by ``labels=``, else ``labels.json`` / ``labels.txt`` when present."""
    if labels is not None:
        return _under(root, labels)
    return next((root / n for n in ("labels.json", "labels.txt") if (root / n).is_file()), None)


def _parse_spacing(spacing: float | str | None) -> tuple[float, float]:
    """``0.5`` or ``"0.5x0.7"`` (row x col, mm); default 1 mm."""
    if spacing is None:
        return (1.0, 1.0)
    parts = [float(x) for x in str(spacing).lower().split("x")]
    return (parts[0], parts[-1])


def _case_masks(
    per_structure: Path, label_map_file: Path | None, names_known
) -> tuple[tuple[str, ...], str] | None:
    """``(mask files, mode)`` of one image: a folder of per-structure binary masks, or one label
    map (which needs label names: a label file or ``structure=``); None without masks."""
    if per_structure.is_dir():
        return tuple(str(p) for p in _images_in(per_structure)), "binary"
    if label_map_file is None:
        return None
    if not names_known:
        raise MimoDataError(
            "label-map mask found but no label file (labels.json / labels.txt) and no structure=NAME",
            label_map_file,
        )
    return (str(label_map_file),), "labelmap"


def _under(root: Path, name: str) -> Path:
    return Path(name) if Path(name).is_absolute() else root / name


def read_spacing_csv(path: Path) -> dict[str, tuple[float, dict[str, float]]]:
    """``{filename: (pixel size mm, {published measurement: value})}`` from a per-image CSV
    (``filename,pixel size(mm),head circumference (mm)`` as HC18 publishes it)."""
    import csv

    if not path.is_file():
        raise MimoDataError("spacing CSV not found", path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        px_col = next((h for h in header if h.lower().startswith("pixel size")), None)
        if "filename" not in header or px_col is None:
            raise MimoDataError(f"expected columns 'filename' and 'pixel size(mm)', got {header}", path)
        extra = [h for h in header if h not in ("filename", px_col) and h.lower().endswith("(mm)")]
        out = {}
        for lineno, row in enumerate(reader, 2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            try:
                px = float(row[px_col])
                refs = {_measure_name(h): float(row[h]) for h in extra if row.get(h)}
            except ValueError:
                raise MimoDataError(f"line {lineno}: expected numbers in {[px_col, *extra]}", path) from None
            if not px > 0 or px != px or px == float("inf"):
                raise MimoDataError(
                    f"line {lineno}: pixel size {row[px_col]!r} is not a positive number", path
                )
            out[row["filename"]] = (px, refs)
    return out


def _measure_name(header: str) -> str:
    """``head circumference (mm)`` -> ``head circumference``."""
    return header[: -len("(mm)")].strip().lower()


def _load_case(
    *,
    case_id: str,
    patient_id: str,
    image_path: str,
    mask_paths: tuple[str, ...],
    mode: str,
    label_map: dict | None,
    label_file: str | None,
    modality: str,
    spacing: tuple[float, float],
    reference: dict[str, float],
    fill_holes: bool,
    source: str,
    orientation: tuple[str | None, str | None],
) -> Case:
    image = load_image(Path(image_path))
    labels: dict[str, np.ndarray] = {}
    for mp in map(Path, mask_paths):
        m = load_image(mp, mask=True)
        if m.shape != image.shape[:2]:
            raise MimoDataError(
                f"mask size {m.shape[1]}x{m.shape[0]} does not match image {Path(image_path).name} "
                f"size {image.shape[1]}x{image.shape[0]} (WxH)",
                mp,
            )
        if mode == "binary":
            labels[mp.stem] = m > 0
        elif label_map is not None and all(v is None for v in label_map.values()):
            labels[next(iter(label_map))] = m > 0
        else:
            labels.update(masks_from_label_map(m, label_map, label_path=mp, labels_source=label_file or ""))
    if fill_holes:
        from scipy import ndimage

        labels = {n: ndimage.binary_fill_holes(m) for n, m in labels.items()}
    return Case(
        case_id=case_id,
        patient_id=patient_id,
        image=image,
        labels=labels,
        spacing=spacing,
        modality=modality,
        source=source,
        meta={
            "image_file": image_path,
            "image_right": orientation[0],
            "image_down": orientation[1],
            **({"reference_measurements": reference} if reference else {}),
        },
    )


def read_folder2d(path: str | Path, **options) -> Iterator[Case]:
    """Yield the cases of a 2D image/mask folder (see ``list_folder2d``)."""
    return iter_listing(list_folder2d(path, **options))
