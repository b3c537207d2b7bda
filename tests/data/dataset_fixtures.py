"""Tiny on-disk datasets in every supported layout, written into a test's tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

SHAPE = (32, 32, 12)
# LPS-like storage (as NIfTI converted from DICOM often is): i -> patient left, j -> posterior
AFFINE = np.diag([-0.8, -0.8, 2.5, 1.0])


def label_volume(shape=SHAPE, seed: int = 0) -> np.ndarray:
    """Label map in LPS storage: 1 = liver (patient right, i small), 2 = kidney_left (patient
    left, i large), 3 = spleen; slices 0-1 and 10-11 empty."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.uint8)
    o = int(rng.integers(0, 2))
    lab[2 + o : 12 + o, 6:20, 2:9] = 1
    lab[22:28, 18:26, 3:8] = 2
    lab[20:27, 4:10, 5:10] = 3
    return lab


def ct_volume(lab: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hu = rng.normal(-50, 20, lab.shape).astype(np.float32)
    hu[lab == 1] += 110
    hu[lab == 2] += 80
    hu[lab == 3] += 95
    return hu.astype(np.int16)


def save_nii(path: Path, data: np.ndarray, affine=AFFINE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def make_nnunet(
    root: Path,
    case_ids=("pat01_a", "pat02_a"),
    *,
    msd: bool = False,
    labels: dict | None = None,
    shape=SHAPE,
) -> Path:
    """An nnU-Net v2 (or MSD) dataset with three labels."""
    root.mkdir(parents=True, exist_ok=True)
    training = []
    for i, cid in enumerate(case_ids):
        lab = label_volume(shape, seed=i)
        save_nii(root / "labelsTr" / f"{cid}.nii.gz", lab)
        img = ct_volume(lab, seed=i)
        if msd:
            save_nii(root / "imagesTr" / f"{cid}.nii.gz", img)
            training.append({"image": f"./imagesTr/{cid}.nii.gz", "label": f"./labelsTr/{cid}.nii.gz"})
        else:
            save_nii(root / "imagesTr" / f"{cid}_0000.nii.gz", img)
    if msd:
        ds = {
            "name": "Toy",
            "modality": {"0": "CT"},
            "labels": labels or {"0": "background", "1": "liver", "2": "kidney_left", "3": "spleen"},
            "numTraining": len(case_ids),
            "training": training,
        }
    else:
        ds = {
            "channel_names": {"0": "CT"},
            "labels": labels or {"background": 0, "liver": 1, "kidney_left": 2, "spleen": 3},
            "numTraining": len(case_ids),
            "file_ending": ".nii.gz",
        }
    (root / "dataset.json").write_text(json.dumps(ds))
    return root


def make_per_structure(root: Path, case_ids=("s0001", "s0002")) -> Path:
    names = {1: "liver", 2: "kidney_left", 3: "spleen"}
    for i, cid in enumerate(case_ids):
        lab = label_volume(seed=i)
        save_nii(root / cid / "ct.nii.gz", ct_volume(lab, seed=i))
        for v, name in names.items():
            save_nii(root / cid / "segmentations" / f"{name}.nii.gz", (lab == v).astype(np.uint8))
    return root


def make_folder2d(root: Path, *, label_map: bool = True) -> Path:
    """Two 24x20 images; label maps + labels.txt, or per-structure binary masks."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(2):
        img = np.full((24, 20), 40 + 10 * k, np.uint8)
        lab = np.zeros((24, 20), np.uint8)
        lab[3:10, 2:8] = 1
        lab[12:20, 10:18] = 2
        img[lab > 0] = 200
        Image.fromarray(img).save(root / "images" / f"p{k}_img.png")
        if label_map:
            Image.fromarray(lab).save(root / "masks" / f"p{k}_img.png")
        else:
            (root / "masks" / f"p{k}_img").mkdir()
            Image.fromarray(((lab == 1) * 255).astype(np.uint8)).save(
                root / "masks" / f"p{k}_img" / "polyp.png"
            )
            Image.fromarray(((lab == 2) * 255).astype(np.uint8)).save(
                root / "masks" / f"p{k}_img" / "optic_disc.png"
            )
    if label_map:
        (root / "labels.txt").write_text("# id name\n0 background\n1 polyp\n2: optic_disc\n")
    return root


def make_coco(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    img = np.zeros((16, 20, 3), np.uint8)
    Image.fromarray(img).save(root / "a.png")
    Image.fromarray(img).save(root / "b.png")
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 16, "width": 20, "patient_id": "P1"},
            {"id": 2, "file_name": "b.png", "height": 16, "width": 20},
        ],
        "categories": [{"id": 7, "name": "polyp"}, {"id": 8, "name": "instrument"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[2, 2, 10, 2, 10, 8, 2, 8]]},
            # uncompressed RLE, column-major: 16*5 zeros then 16*3 ones -> columns 5..7 all set
            {
                "id": 2,
                "image_id": 1,
                "category_id": 8,
                "iscrowd": 1,
                "segmentation": {"size": [16, 20], "counts": [80, 48, 192]},
            },
            {"id": 3, "image_id": 2, "category_id": 7, "segmentation": [[12, 4, 18, 4, 18, 12, 12, 12]]},
        ],
    }
    (root / "ann.json").write_text(json.dumps(data))
    return root / "ann.json"


def make_dicom_ct_with_seg(root: Path, n_slices: int = 5, size: int = 16) -> tuple[Path, np.ndarray]:
    """A tiny CT series (LPS, axial) plus a highdicom SEG with segments 'Liver' and 'Spleen'.

    Returns the folder and the (slice, row, col) liver mask as written.
    """
    import highdicom as hd
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sr.codedict import codes
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    root.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    sources = []
    for z in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "PAT7", "Doe^J", "19700101", "O"
        ds.StudyID, ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "1", "20240101", "120000", "A1"
        ds.ReferringPhysicianName, ds.Manufacturer = "", "test"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, z + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [0.0, 0.0, float(z) * 2.0]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 2.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        pix = np.full((size, size), 1024 - 50, np.int16)
        pix[2:8, 1:6] = 1024 + 60  # liver: small column index = patient right (LPS x)
        ds.PixelData = pix.tobytes()
        ds.save_as(root / f"ct_{z:03d}.dcm", enforce_file_format=True)
        sources.append(ds)
    liver = np.zeros((n_slices, size, size), bool)
    liver[1:4, 2:8, 1:6] = True
    spleen = np.zeros((n_slices, size, size), bool)
    spleen[2:4, 9:13, 10:14] = True
    algo = hd.AlgorithmIdentificationSequence(
        name="test", version="1", family=codes.cid7162.ArtificialIntelligence
    )

    def desc(n, label, prop):
        return hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=label,
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=prop,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo,
        )

    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.stack([liver, spleen], axis=-1),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[desc(1, "Liver", codes.SCT.Liver), desc(2, "Spleen", codes.SCT.Spleen)],
        series_instance_uid=generate_uid(),
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="0",
        device_serial_number="0",
    )
    seg.save_as(root / "seg.dcm")
    return root, liver
