"""``mimo segment-volume`` on a NIfTI file (non-canonical affine) and on a DICOM series."""

from __future__ import annotations

import re

import highdicom as hd
import nibabel as nib
import nibabel.orientations as no
import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from mimo.cli import app

from .tiny_model import VOLUME_QUESTION, dice, volume_samples

runner = CliRunner()


def canonical_from_display(slices: list[np.ndarray]) -> np.ndarray:
    """A RAS+ volume whose axial slices, displayed as the data builder does, are ``slices``."""
    display = np.stack(slices)  # (Z, H, W)
    return np.ascontiguousarray(np.transpose(display, (2, 1, 0))[::-1, ::-1, :])


def test_nifti_volume_mask_has_the_input_affine_and_dice(tiny, tmp_path):
    samples = volume_samples()
    images = canonical_from_display([s["image"] for s in samples])
    truth = canonical_from_display([s["masks"]["m0"] for s in samples]).astype(np.uint8)
    # store it in a non-canonical (L, P, S) voxel order with anisotropic voxels
    affine = np.array([[-0.7, 0, 0, 30.0], [0, -0.7, 0, 20.0], [0, 0, 2.5, -40.0], [0, 0, 0, 1]])
    to_lps = no.ornt_transform(no.axcodes2ornt("RAS"), no.io_orientation(affine))
    volume_path, reference_path = tmp_path / "vol.nii.gz", tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(no.apply_orientation(images, to_lps).astype(np.uint8), affine), volume_path)
    reference = no.apply_orientation(truth, to_lps)
    nib.save(nib.Nifti1Image(reference, affine), reference_path)
    out = tmp_path / "mask.nii.gz"
    result = runner.invoke(
        app,
        [
            "segment-volume",
            "--model",
            str(tiny["dir"]),
            str(volume_path),
            VOLUME_QUESTION,
            "--out",
            str(out),
            "--reference",
            str(reference_path),
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    written = nib.load(str(out))
    assert np.allclose(written.affine, affine)
    labels = np.asarray(written.dataobj)
    assert labels.shape == reference.shape
    assert dice(labels > 0, reference > 0) > 0.9
    printed = float(re.search(r"Dice: ([0-9.]+)", result.output).group(1))
    assert abs(printed - dice(labels > 0, reference > 0)) < 1e-3
    assert (tmp_path / "mask.labels.json").read_text().count("square") == 1


def write_ct_series(folder, images: list[np.ndarray]) -> list:
    """An axial CT series (HU = pixel - 1024, window 127.5/255 shows the 8-bit images as they are)."""
    folder.mkdir()
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    for k, image in enumerate(images):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.StudyID, ds.AccessionNumber = "P1", "Test^Patient", "1", "A1"
        ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "19700101", "O", "20250101", "120000"
        ds.ReferringPhysicianName, ds.Manufacturer = "", "test"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 3.0
        ds.Rows, ds.Columns = image.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 127.5, 255
        ds.PixelData = (image.astype(np.uint16) + 1024).tobytes()
        ds.save_as(folder / f"slice{k:02d}.dcm", enforce_file_format=True)
        datasets.append(ds)
    return datasets


def test_dicom_series_gives_nifti_and_dicom_seg(tiny, tmp_path):
    samples = volume_samples()
    datasets = write_ct_series(tmp_path / "series", [s["image"] for s in samples])
    out = tmp_path / "out" / "mask.nii.gz"
    result = runner.invoke(
        app,
        [
            "segment-volume",
            "--model",
            str(tiny["dir"]),
            str(tmp_path / "series"),
            VOLUME_QUESTION,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    seg_path = tmp_path / "out" / "mask_seg.dcm"
    assert seg_path.is_file() and sorted(nib.load(str(out)).shape) == [3, 64, 64]
    seg = hd.seg.segread(seg_path)
    assert [seg.get_segment_description(n).segment_label for n in seg.segment_numbers] == ["square"]
    uids = [ds.SOPInstanceUID for ds in datasets]
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=[1], assert_missing_frames_are_empty=True
    )[..., 0]
    # an axial DICOM's pixel array is already shown radiologically: frame k is slice k's mask
    for k, sample in enumerate(samples):
        assert dice(frames[k], sample["masks"]["m0"]) > 0.9, k
