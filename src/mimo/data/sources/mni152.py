"""The MNI152 T1 template with brain, grey- and white-matter masks (shipped inside nilearn, no
download), left/right hemispheres split at the world midline x = 0, and optional synthetic lesions.

The template is one subject (``patient_id`` ``MNI152``). To hold out a slab for evaluation, read
it with ``slices=(lo, hi)`` (axial indices, ``lo`` inclusive, ``hi`` exclusive): the case then holds
only that slab, its affine is shifted accordingly, and ``meta['axial_range']`` records the range.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage

from mimo.data.case import Case

SOURCE = "mni152"


def _load(resolution: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=resolution)
    image = np.asarray(template.get_fdata(), dtype=np.float32)
    affine = np.asarray(template.affine, dtype=float)
    masks = {
        "brain": datasets.load_mni152_brain_mask(resolution=resolution),
        "grey_matter": datasets.load_mni152_gm_mask(resolution=resolution),
        "white_matter": datasets.load_mni152_wm_mask(resolution=resolution),
    }
    out = {}
    for name, img in masks.items():
        if img.shape != image.shape or not np.allclose(img.affine, affine):
            raise ValueError(
                f"nilearn MNI152 {name} mask does not match the template grid ({img.shape} vs {image.shape})"
            )
        out[name] = np.asarray(img.dataobj) > 0
    return image, affine, out


def _check_ras(affine: np.ndarray) -> None:
    diag = np.diag(affine)[:3]
    off = affine[:3, :3] - np.diag(diag)
    if np.any(diag <= 0) or np.abs(off).max() > 1e-6:
        raise ValueError(f"MNI152 template affine is not RAS+ diagonal: {affine.tolist()}")


def _exclusive_tissues(image: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    """nilearn's grey- and white-matter masks are thresholded probability maps that overlap
    (and spill slightly outside the brain mask); make them disjoint and inside the brain by
    giving overlap voxels to the tissue whose typical T1 intensity is closer (white matter is
    brighter on T1)."""
    brain, gm, wm = (
        masks["brain"],
        masks["grey_matter"] & masks["brain"],
        masks["white_matter"] & masks["brain"],
    )
    both = gm & wm
    cut = 0.5 * (float(np.median(image[gm & ~wm])) + float(np.median(image[wm & ~gm])))
    to_wm = both & (image >= cut)
    masks["grey_matter"] = gm & ~to_wm
    masks["white_matter"] = (wm & ~both) | to_wm
    masks["brain"] = brain


def _lesions(
    image: np.ndarray, masks: dict[str, np.ndarray], n: int, rng: np.random.Generator, voxel_mm: np.ndarray
) -> list[np.ndarray]:
    """Ellipsoids (radii 4-10 mm) centred in white matter and kept inside the brain; the image is
    darkened there (T1-hypointense, as many white-matter lesions are) with a soft edge."""
    wm = ndimage.binary_erosion(masks["white_matter"], iterations=2)
    centres = np.argwhere(wm if wm.any() else masks["white_matter"])
    out: list[np.ndarray] = []
    for _ in range(n):
        for _attempt in range(20):
            c = centres[int(rng.integers(len(centres)))]
            r = rng.uniform(4.0, 10.0, size=3) / voxel_mm
            lo = np.maximum(0, np.floor(c - 1.3 * r).astype(int))
            hi = np.minimum(image.shape, np.ceil(c + 1.3 * r).astype(int) + 1)
            box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            grid = np.indices(hi - lo, dtype=np.float32)
            d2 = sum(((grid[k] + lo[k] - c[k]) / r[k]) ** 2 for k in range(3))
            mask = np.zeros(image.shape, bool)
            mask[box] = (d2 <= 1.0) & masks["brain"][box]
            if mask.sum() >= 8 and not any((mask & m).any() for m in out):
                break
        weight = np.clip(1.3 - d2, 0.0, 1.0)  # 1 inside, fading over the rim
        factor = rng.uniform(0.35, 0.6)
        image[box] *= 1.0 - (1.0 - factor) * weight * masks["brain"][box]
        out.append(mask)
    return out


def _slabs(slices: object, depth: int) -> list[tuple[int, int]]:
    if slices is None:
        return [(0, depth)]
    if isinstance(slices, str):
        parts = slices.replace(":", "-").split("-")
        slices = (int(parts[0]), int(parts[1]))
    items = list(slices)  # type: ignore[arg-type]
    if items and isinstance(items[0], int | np.integer):
        items = [tuple(items)]
    out = []
    for item in items:
        lo, hi = (int(v) for v in item)
        if not 0 <= lo < hi <= depth:
            raise ValueError(f"mni152: slices={item!r}: expected 0 <= lo < hi <= {depth} (axial indices)")
        out.append((lo, hi))
    return out


def read_mni152(
    lesions: int = 0,
    seed: int = 0,
    resolution: int = 1,
    slices: tuple[int, int] | Sequence[tuple[int, int]] | str | None = None,
    **options: object,
) -> Iterator[Case]:
    """Yield the MNI152 T1 template as ``Case``(s) in RAS+ orientation, modality MR, body region head.

    Args:
        lesions: number of synthetic lesions (ellipsoids in white matter; labels ``lesion_1`` ...).
        seed: seed for the lesions.
        resolution: 1 or 2 mm (nilearn's bundled grids).
        slices: an axial range ``(lo, hi)`` (or a list of them, or ``"lo-hi"``): yield only that slab
            (one case per range), e.g. to hold a slab out for evaluation.

    Labels: ``brain``, ``grey_matter``, ``white_matter`` (made disjoint, see ``_exclusive_tissues``),
    ``left_hemisphere``, ``right_hemisphere`` and ``lesion_i``; lesions are removed from the grey-
    and white-matter masks.
    """
    if options:
        raise ValueError(
            f"mni152: unknown option(s) {sorted(options)}; accepted: lesions, seed, resolution, slices"
        )
    if int(resolution) not in (1, 2):
        raise ValueError(f"mni152: resolution must be 1 or 2 (mm), got {resolution!r}")
    image, affine, masks = _load(int(resolution))
    _check_ras(affine)
    _exclusive_tissues(image, masks)
    # world x of each voxel column; RAS+: x < 0 is the patient's left
    x_world = affine[0, 0] * np.arange(image.shape[0]) + affine[0, 3]
    left = (x_world < 0)[:, None, None] & masks["brain"]
    right = (x_world > 0)[:, None, None] & masks["brain"]
    labels = {**masks, "left_hemisphere": left, "right_hemisphere": right}
    rng = np.random.default_rng(seed)
    voxel_mm = np.abs(np.diag(affine)[:3])
    lesion_masks = _lesions(image, masks, int(lesions), rng, voxel_mm)
    for i, m in enumerate(lesion_masks, 1):
        labels["grey_matter"] = labels["grey_matter"] & ~m
        labels["white_matter"] = labels["white_matter"] & ~m
        labels[f"lesion_{i}"] = m
    image = image * 1000.0  # template is in [0, 1]; MR-like scale, normalised later by percentiles
    for lo, hi in _slabs(slices, image.shape[2]):
        whole = (lo, hi) == (0, image.shape[2])
        shifted = affine.copy()
        shifted[:3, 3] += affine[:3, 2] * lo
        case_id = "mni152" if whole else f"mni152_z{lo:03d}-{hi:03d}"
        yield Case(
            case_id=case_id,
            patient_id="MNI152",
            image=np.ascontiguousarray(image[:, :, lo:hi]),
            labels={k: np.ascontiguousarray(v[:, :, lo:hi]) for k, v in labels.items()},
            spacing=tuple(float(v) for v in voxel_mm),
            modality="MR",
            source=SOURCE,
            body_region="head",
            affine=shifted,
            meta={
                "axial_range": (lo, hi),
                "axial_offset": lo,
                "resolution_mm": int(resolution),
                "lesions": len(lesion_masks),
                "seed": int(seed),
                "template": "MNI152 (nilearn)",
            },
        )
