"""DICOM image series with DICOM SEG segmentations (pydicom, highdicom).

``path`` is a folder searched recursively for DICOM files (any name), or a single SEG file.
Every SEG found makes one case: its segments (named by ``SegmentLabel``) are the labels,
and the image is the series the SEG references (``ReferencedSeriesSequence``), converted
to a RAS+ canonical volume with Hounsfield units for CT. A SEG whose referenced series is
absent (such as pydicom's ``liver.dcm`` test file) is still read: its masks are placed on
the SEG's own frame grid and the case is marked ``meta["image_missing"] = True`` (the
builder refuses to make training data from it).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mimo.core.errors import MimoDataError
from mimo.core.images import LIMITS, ImageError, check_dicom_size
from mimo.data.case import Case
from mimo.data.readers.base import (
    CaseRef,
    Listing,
    VolumeCase,
    iter_listing,
    normalise_modality,
    patient_id_from,
)

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _read_header(p: Path):
    import pydicom

    try:
        return pydicom.dcmread(str(p), stop_before_pixels=True)
    except Exception:  # not DICOM: skip silently (folders hold notes, thumbnails ...)
        return None


def list_dicom(
    path: str | Path,
    *,
    patient_regex: str | None = None,
    modality: str | None = None,
    body_region: str | None = None,
    kind: str = "dicom",
) -> Listing:
    """List one case per DICOM SEG under ``path`` (a folder or a single SEG file)."""
    root = Path(path)
    if not root.exists():
        raise MimoDataError("path not found", root)
    files = (
        [root]
        if root.is_file()
        else sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    )
    segs: list[tuple[Path, object]] = []
    series: dict[str, list[Path]] = {}
    series_modality: dict[str, str] = {}
    for p in files:
        ds = _read_header(p)
        if ds is None:
            if root.is_file():
                raise MimoDataError("not a readable DICOM file", p)
            continue
        if getattr(ds, "SOPClassUID", None) == SEG_SOP_CLASS or getattr(ds, "Modality", None) == "SEG":
            segs.append((p, ds))
        elif "SeriesInstanceUID" in ds and "PixelSpacing" in ds:
            series.setdefault(str(ds.SeriesInstanceUID), []).append(p)
            series_modality[str(ds.SeriesInstanceUID)] = str(getattr(ds, "Modality", ""))
    if not segs:
        raise MimoDataError("empty dataset: no DICOM SEG file found", root)
    refs = []
    for p, ds in segs:
        ref_uid = None
        if "ReferencedSeriesSequence" in ds and len(ds.ReferencedSeriesSequence):
            ref_uid = str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
        src_files = tuple(str(f) for f in series.get(ref_uid, [])) if ref_uid else ()
        raw_pid = str(getattr(ds, "PatientID", "") or p.stem)
        pid = patient_id_from(raw_pid, patient_regex)
        digest = hashlib.sha1(str(ds.SOPInstanceUID).encode()).hexdigest()[:8]
        cid = f"{raw_pid}_{digest}".replace("/", "_").replace(" ", "_")
        mod = modality or normalise_modality(series_modality.get(ref_uid or ""), default="other")
        load = functools.partial(
            _load_case,
            case_id=cid,
            patient_id=pid,
            seg_path=str(p),
            series_files=src_files,
            modality=mod,
            body_region=body_region,
            source=f"{kind}:{root.name}",
        )
        refs.append(CaseRef(cid, pid, (str(p), *src_files), load))
    refs.sort(key=lambda r: r.case_id)
    return Listing(refs=refs)


def segment_names(seg) -> dict[int, str]:
    """Segment number -> name (``SegmentLabel``, else the property type's code meaning)."""
    out = {}
    for n in seg.segment_numbers:
        d = seg.get_segment_description(n)
        name = getattr(d, "segment_label", None) or str(d.segmented_property_type.meaning)
        out[int(n)] = str(name)
    return out


def _load_case(
    *,
    case_id: str,
    patient_id: str,
    seg_path: str,
    series_files: tuple[str, ...],
    modality: str,
    body_region: str | None,
    source: str,
) -> Case:
    import highdicom as hd
    import nibabel as nib
    import pydicom

    try:
        seg = hd.seg.segread(seg_path)
        names = segment_names(seg)
        seg_vol = seg.get_volume(combine_segments=False, segment_numbers=list(names))
    except Exception as exc:
        raise MimoDataError(f"not a readable DICOM SEG ({type(exc).__name__}: {exc})", seg_path) from None
    image_missing = not series_files
    if not image_missing:
        try:
            dsets = [pydicom.dcmread(f) for f in series_files]
            _check_series_size(dsets, series_files)
            img_vol = hd.get_volume_from_series(dsets, dtype=np.float32)
        except ImageError:
            raise
        except Exception as exc:
            raise MimoDataError(
                f"referenced image series ({len(series_files)} files) not readable as a volume "
                f"({type(exc).__name__}: {exc})",
                Path(series_files[0]).parent,
            ) from None
        try:
            seg_vol = seg_vol.match_geometry(img_vol)
        except Exception as exc:
            raise MimoDataError(
                f"segmentation grid does not match its referenced series ({exc})", seg_path
            ) from None
        img_nib = nib.as_closest_canonical(img_vol.to_nibabel())
    seg_arr = np.asarray(seg_vol.array)
    if seg_arr.ndim == 3:
        seg_arr = seg_arr[..., None]
    labels = {}
    ref_affine = None
    for c, (_, name) in enumerate(names.items()):
        chan = seg_vol.with_array((seg_arr[..., c] > 0).astype(np.uint8))
        m_nib = nib.as_closest_canonical(chan.to_nibabel())
        labels[name] = np.asarray(m_nib.dataobj) > 0
        ref_affine = m_nib.affine
        zooms = tuple(float(z) for z in m_nib.header.get_zooms()[:3])
    if image_missing:
        shape = next(iter(labels.values())).shape
        image = np.zeros(shape, np.float32)
        affine = ref_affine
    else:
        image = np.asarray(img_nib.dataobj, dtype=np.float32)
        affine = img_nib.affine
        zooms = tuple(float(z) for z in img_nib.header.get_zooms()[:3])
    return VolumeCase(
        case_id=case_id,
        patient_id=patient_id,
        image=image,
        labels=labels,
        spacing=zooms,
        modality=modality,
        source=source,
        body_region=body_region,
        affine=np.asarray(affine, dtype=float),
        meta={
            "image_file": series_files[0] if series_files else None,
            "seg_file": seg_path,
            "image_missing": image_missing,
            "segment_numbers": {name: n for n, name in names.items()},
            "n_frames": int(seg.number_of_frames),
        },
    )


def _check_series_size(dsets: list, files) -> None:
    """The size limits of ``mimo.core.images``, from the headers, before any pixel is decoded."""
    for ds, f in zip(dsets, files, strict=True):
        check_dicom_size(ds, f)
    LIMITS.check_volume((len(dsets), int(dsets[0].Rows), int(dsets[0].Columns)), Path(files[0]).parent)


def read_dicom(path: str | Path, **options) -> Iterator[Case]:
    """Yield one case per DICOM SEG under ``path`` (see ``list_dicom``)."""
    return iter_listing(list_dicom(path, **options))
