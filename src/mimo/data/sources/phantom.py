"""Seeded procedural phantoms with anatomy-like structures and lesions, every one masked:

* ``abdomen_ct``: a small 3D CT volume in HU (RAS+ affine): body, liver on the patient's right,
  spleen on the left, both kidneys, aorta, vertebra, stomach, gallbladder, optional liver tumour;
* ``chest_xray``: a 2D PA radiograph (``meta['image_right'] = 'L'``, ``meta['image_down'] = 'I'``):
  both lungs, heart, spine, both clavicles, optional nodule, pneumothorax or cardiomegaly;
* ``brain_mri``: a small 3D T1-like volume (RAS+): brain, hemispheres, grey and white matter,
  lateral ventricles, optional tumour.

Shapes are ellipsoids with smooth random boundary perturbations, intensities carry smooth texture
and noise. Each case is deterministic for ``(seed, index)`` and has its own patient id
(``phantom_abdomen_ct_0003``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage

from mimo.data.case import Case

SOURCE = "phantom"
KINDS = ("abdomen_ct", "chest_xray", "brain_mri")


def _smooth_noise(shape: tuple[int, ...], rng: np.random.Generator, sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return n / (n.std() + 1e-6)


def _blob(
    grid: list[np.ndarray],
    centre: Sequence[float],
    radii: Sequence[float],
    warp: np.ndarray,
    amount: float = 0.12,
) -> np.ndarray:
    """Ellipsoid/ellipse in voxel units whose boundary is perturbed by a smooth noise field."""
    d2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
    return d2 <= 1.0 + amount * warp


def _abdomen_ct(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict, tuple, np.ndarray, dict]:
    nx = ny = size
    nz = max(8, size // 4)
    spacing = (320.0 / size, 320.0 / size, 5.0)
    grid = list(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"))
    w = _smooth_noise((nx, ny, nz), rng, 4)
    s = size / 128.0
    j = rng.uniform(-0.04, 0.04, size=8) * size  # per-patient jitter of positions
    cx, cy = nx / 2, ny / 2
    body = _blob(grid[:2] + [grid[2]], (cx, cy, nz / 2), (56 * s, 42 * s, 10 * nz), w, 0.03)
    # RAS+: index x grows toward patient right, y toward anterior, z toward superior
    liver = _blob(grid, (cx + 26 * s + j[0], cy + 6 * s, nz * 0.75), (24 * s, 26 * s, nz * 0.6), w) & body
    spleen = _blob(grid, (cx - 36 * s + j[1], cy - 14 * s, nz * 0.7), (10 * s, 15 * s, nz * 0.4), w)
    stomach = _blob(grid, (cx - 18 * s + j[2], cy + 18 * s, nz * 0.8), (15 * s, 12 * s, nz * 0.35), w)
    kid_r = _blob(grid, (cx + 22 * s, cy - 20 * s + j[3], nz * 0.35), (8 * s, 11 * s, nz * 0.35), w)
    kid_l = _blob(grid, (cx - 22 * s, cy - 20 * s + j[4], nz * 0.4), (8 * s, 11 * s, nz * 0.35), w)
    aorta = ((grid[0] - (cx - 4 * s)) ** 2 + (grid[1] - (cy - 14 * s)) ** 2) <= (4.5 * s) ** 2
    vert_body = ((grid[0] - cx) ** 2 + (grid[1] - (cy - 26 * s)) ** 2) <= (9 * s) ** 2
    gall = _blob(grid, (cx + 18 * s + j[5], cy + 18 * s, nz * 0.3), (5 * s, 7 * s, nz * 0.2), w, 0.05)
    liver &= ~gall & ~kid_r
    stomach &= ~liver
    spleen &= ~stomach
    hu = np.full((nx, ny, nz), -1000.0, np.float32)
    hu[body] = -90.0  # subcutaneous / visceral fat
    inner = ndimage.binary_erosion(body, iterations=max(2, int(6 * s)))
    hu[inner] = 20.0
    labels = {
        "liver": liver,
        "spleen": spleen,
        "stomach": stomach,
        "kidney_right": kid_r,
        "kidney_left": kid_l,
        "aorta": aorta,
        "vertebra": vert_body,
        "gallbladder": gall,
    }
    values = {
        "liver": 60,
        "spleen": 48,
        "stomach": 15,
        "kidney_right": 150,
        "kidney_left": 150,
        "aorta": 200,
        "vertebra": 500,
        "gallbladder": 8,
    }
    for name, mask in labels.items():
        hu[mask] = values[name]
    hu[stomach & (grid[1] > cy + 24 * s)] = -800.0  # an air pocket at the anterior stomach
    labels["stomach"] = stomach
    if rng.random() < 0.6:
        idx = np.argwhere(ndimage.binary_erosion(liver, iterations=max(2, int(5 * s))))
        if len(idx):
            c = idx[int(rng.integers(len(idx)))]
            r = rng.uniform(4, 8) * s
            tumour = _blob(
                grid, c, (r, r * rng.uniform(0.8, 1.2), max(1.0, r * spacing[0] / spacing[2])), w, 0.1
            )
            tumour &= liver
            if tumour.any():
                hu[tumour] = rng.uniform(15, 35)
                labels["liver"] = liver & ~tumour
                labels["liver_tumor"] = tumour
    hu += (8.0 * _smooth_noise(hu.shape, rng, 1.5) + 6.0 * rng.standard_normal(hu.shape)).astype(
        np.float32
    ) * (hu > -950)
    labels = {k: v for k, v in labels.items() if v.any()}
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-spacing[0] * nx / 2, -spacing[1] * ny / 2, -spacing[2] * nz / 2]
    return hu, labels, spacing, affine, {}


def _chest_xray(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict, tuple, None, dict]:
    h = w = size
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    warp = _smooth_noise((h, w), rng, 6)
    s = size / 256.0
    j = rng.uniform(-0.03, 0.03, size=6) * size
    cx = w / 2
    # PA film as displayed: patient left on the image right (+x -> L), feet down (+y -> I)
    lung_l = _blob([xx, yy], (cx + 52 * s + j[0], 125 * s), (40 * s, 78 * s), warp, 0.08)
    lung_r = _blob([xx, yy], (cx - 52 * s + j[1], 122 * s), (42 * s, 75 * s), warp, 0.08)
    cardiomegaly = rng.random() < 0.25
    hr = (58 if cardiomegaly else 40) * s
    heart = _blob([xx, yy], (cx + 12 * s, 175 * s), (hr, 34 * s), warp, 0.05)
    spine = np.abs(xx - cx) <= 9 * s
    clav_l = (np.abs(yy - (48 * s + 0.25 * (xx - cx))) <= 4 * s) & (xx > cx + 12 * s) & (xx < cx + 80 * s)
    clav_r = (np.abs(yy - (48 * s - 0.25 * (xx - cx))) <= 4 * s) & (xx < cx - 12 * s) & (xx > cx - 80 * s)
    lung_l &= ~heart
    lung_r &= ~heart
    img = np.full((h, w), 0.55, np.float32)
    thorax = _blob([xx, yy], (cx, 130 * s), (110 * s, 105 * s), warp, 0.03)
    img[~thorax] = 0.35
    for m, v in ((lung_l, 0.18), (lung_r, 0.18), (heart, 0.7), (spine, 0.8), (clav_l, 0.85), (clav_r, 0.85)):
        img[m] = np.maximum(img[m], v) if v > 0.5 else v
    labels = {
        "lung_left": lung_l,
        "lung_right": lung_r,
        "heart": heart,
        "spine": spine,
        "clavicle_left": clav_l,
        "clavicle_right": clav_r,
    }
    if cardiomegaly:
        labels["cardiomegaly"] = heart.copy()
    finding = rng.random()
    if finding < 0.35:
        lung, name = (lung_l, "lung_left") if rng.random() < 0.5 else (lung_r, "lung_right")
        idx = np.argwhere(ndimage.binary_erosion(lung, iterations=int(10 * s) + 1))
        if len(idx):
            cyx = idx[int(rng.integers(len(idx)))]
            r = rng.uniform(5, 10) * s
            nodule = _blob([yy, xx], cyx, (r, r), warp, 0.05) & lung
            img[nodule] = 0.6
            labels["nodule"] = nodule
    elif finding < 0.55:
        side_left = rng.random() < 0.5
        lung = lung_l if side_left else lung_r
        lx = xx - (cx + (52 if side_left else -52) * s)
        rim = (lx > 22 * s) if side_left else (lx < -22 * s)
        ptx = lung & (rim | (yy < 70 * s))
        if ptx.any():
            img[ptx] = 0.06
            labels["lung_left" if side_left else "lung_right"] = lung & ~ptx
            labels["pneumothorax"] = ptx
    # lung markings, texture and noise
    markings = 0.05 * _smooth_noise((h, w), rng, 1.2) * (lung_l | lung_r)
    img = img + markings + 0.03 * _smooth_noise((h, w), rng, 3) + 0.015 * rng.standard_normal((h, w))
    img = np.clip(ndimage.gaussian_filter(img, 0.7), 0, 1) * 255.0
    labels = {k: v for k, v in labels.items() if v.any()}
    spacing = (350.0 / size, 350.0 / size)
    return (
        img.astype(np.float32),
        labels,
        spacing,
        None,
        {"image_right": "L", "image_down": "I", "view": "PA"},
    )


def _brain_mri(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict, tuple, np.ndarray, dict]:
    nx, ny, nz = size, int(size * 1.15), max(8, size // 3)
    spacing = (180.0 / nx, 210.0 / ny, 4.0)
    grid = list(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"))
    w = _smooth_noise((nx, ny, nz), rng, 3)
    cx, cy, cz = nx / 2, ny / 2, nz / 2
    head = _blob(grid, (cx, cy, cz), (0.45 * nx, 0.45 * ny, 0.9 * nz), w, 0.02)
    brain = _blob(grid, (cx, cy, cz), (0.38 * nx, 0.39 * ny, 0.8 * nz), w, 0.03)
    fissure = np.abs(grid[0] - cx) < 0.6
    brain &= ~fissure
    wm = _blob(grid, (cx, cy, cz), (0.30 * nx, 0.31 * ny, 0.65 * nz), w, 0.15) & brain
    off = 0.07 * nx
    vent_r = _blob(grid, (cx + off, cy + 0.03 * ny, cz), (0.045 * nx, 0.17 * ny, 0.35 * nz), w, 0.1)
    vent_l = _blob(grid, (cx - off, cy + 0.03 * ny, cz), (0.045 * nx, 0.17 * ny, 0.35 * nz), w, 0.1)
    wm &= ~(vent_l | vent_r)
    gm = brain & ~wm & ~vent_l & ~vent_r
    img = np.zeros((nx, ny, nz), np.float32)
    img[head] = 0.7  # scalp
    img[ndimage.binary_erosion(head, iterations=2) & ~brain] = 0.08  # skull and CSF
    img[gm], img[wm] = 0.55, 0.8
    img[vent_l | vent_r] = 0.12
    labels = {
        "brain": brain,
        "left_hemisphere": brain & (grid[0] < cx),
        "right_hemisphere": brain & (grid[0] > cx),
        "grey_matter": gm,
        "white_matter": wm,
        "Left-Lateral-Ventricle": vent_l,
        "Right-Lateral-Ventricle": vent_r,
    }
    if rng.random() < 0.6:
        idx = np.argwhere(ndimage.binary_erosion(wm, iterations=2))
        if len(idx):
            c = idx[int(rng.integers(len(idx)))]
            r = rng.uniform(0.05, 0.09) * nx
            tumour = _blob(grid, c, (r, r * 1.1, max(1.0, r * spacing[0] / spacing[2])), w, 0.15) & brain
            if tumour.any():
                img[tumour] = 0.35
                rim = tumour & ~ndimage.binary_erosion(tumour)
                img[rim] = 0.9
                labels["brain_tumor"] = tumour
                labels["grey_matter"] = labels["grey_matter"] & ~tumour
                labels["white_matter"] = labels["white_matter"] & ~tumour
    img = img + 0.03 * _smooth_noise(img.shape, rng, 2) + 0.02 * rng.standard_normal(img.shape)
    img = np.clip(img, 0, None) * 1000.0
    labels = {k: v for k, v in labels.items() if v.any()}
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-spacing[0] * cx, -spacing[1] * cy, -spacing[2] * cz]
    return img, labels, spacing, affine, {}


_MAKERS = {
    "abdomen_ct": (_abdomen_ct, "CT", "abdomen", 96),
    "chest_xray": (_chest_xray, "XR", "chest", 192),
    "brain_mri": (_brain_mri, "MR", "head", 80),
}


def read_phantom(
    n: int = 10,
    kinds: Sequence[str] | str = KINDS,
    size: int | None = None,
    seed: int = 0,
    **options: object,
) -> Iterator[Case]:
    """Yield ``n`` phantom cases cycling through ``kinds``.

    Args:
        n: number of cases.
        kinds: subset of ``KINDS`` (a sequence or a comma-separated string).
        size: in-plane size in pixels (default 96 for CT, 192 for X-ray, 80 for MRI).
        seed: base seed; case ``i`` uses ``(seed, i)`` so it does not depend on ``n``.
    """
    if options:
        raise ValueError(f"phantom: unknown option(s) {sorted(options)}; accepted: n, kinds, size, seed")
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in _MAKERS]
    if bad or not kinds:
        raise ValueError(f"phantom: kinds {list(kinds)!r}: expected a non-empty subset of {KINDS}")
    if size is not None and int(size) < 32:
        raise ValueError(f"phantom: size must be at least 32 pixels, got {size}")
    for i in range(int(n)):
        kind = kinds[i % len(kinds)]
        make, modality, region, default_size = _MAKERS[kind]
        rng = np.random.default_rng([int(seed), i])
        image, labels, spacing, affine, meta = make(rng, int(size or default_size))
        # the seed is part of the id (seed 0 keeps the short form): two phantom sources with
        # different seeds never produce the same case, patient or record ids
        case_id = f"phantom_{kind}_{i:04d}" if int(seed) == 0 else f"phantom_{kind}_s{int(seed)}_{i:04d}"
        yield Case(
            case_id=case_id,
            patient_id=case_id,
            image=image,
            labels=labels,
            spacing=tuple(float(v) for v in spacing),
            modality=modality,
            source=SOURCE,
            body_region=region,
            affine=affine,
            meta={"kind": kind, "seed": int(seed), "index": i, **meta},
        )
