"""Image files as users and scanners write them, for the reading tests: PNGs written by Pillow
or, when too big to hold in memory, streamed by hand (a valid PNG: IHDR, zlib IDAT, IEND);
a CT DICOM written by pydicom with its File Meta header and window tags; NIfTI by nibabel."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def pillow_png(path: Path, width: int, height: int, mode: str = "L") -> Path:
    Image.new(mode, (width, height)).save(path, format="PNG")
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def streamed_black_png(path: Path, width: int, height: int, rows_per_block: int = 100) -> Path:
    """A valid 8-bit gray PNG of ``width x height`` black pixels, written without holding the
    image: identical blocks of rows compress to identical bytes after a full flush, so one block
    is compressed and repeated; the Adler-32 of the whole stream is computed as it goes."""
    assert height % rows_per_block == 0
    block = (b"\x00" * (width + 1)) * rows_per_block  # filter byte 0 + the row's pixels
    compressor = zlib.compressobj(9)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(height // rows_per_block):
        adler = zlib.adler32(block, adler)
    tail = compressor.flush()[:-4] + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr))
        body = [first] + [repeat] * (height // rows_per_block - 1) + [tail]
        fh.write(_chunk(b"IDAT", b"".join(body)))
        fh.write(_chunk(b"IEND", b""))
    return path


def ct_dicom(path: Path, hu: np.ndarray, *, center="40", width="400") -> Path:
    """One axial CT slice (Explicit VR Little Endian, 16-bit unsigned, HU = value - 1024)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
        generate_uid(),
        generate_uid(),
        generate_uid(),
    )
    ds.PatientID, ds.Modality, ds.InstanceNumber = "P1", "CT", 1
    ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0.0, 0.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 3.0
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = center, width  # DS strings, as scanners write them
    ds.PixelData = (hu.astype(np.int32) + 1024).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def phantom(shape=(24, 20, 6), seed: int = 0) -> np.ndarray:
    """An MR-like float32 volume: a bright ellipsoid with noise on a zero background."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    inside = sum(g**2 for g in grid) < 0.6
    return (inside * (300 + 40 * rng.standard_normal(shape))).astype(np.float32)


def nifti(path: Path, data: np.ndarray, zooms=(0.9, 0.9, 3.0)) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([*zooms, 1.0])), path)
    return path
