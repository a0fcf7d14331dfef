"""Dataset layouts built tiny by the tests themselves, patient-level splits, and DICOM-SEG reading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from SmoothSegNetLib.training.config import config_from_dict
from SmoothSegNetLib.training.datasets import (
    DatasetError,
    DiskCase,
    discover,
    load_case,
    patient_folds,
    read_patient_list,
    split_cases,
)
from SmoothSegNetLib.training.dicom_seg import label_of_segment, read_seg_labels, referenced_series_uid
from SmoothSegNetLib.volume import CTVolume, Geometry

GEOMETRY = Geometry.create((8, 10, 12), spacing_mm=(0.8, 0.8, 2.5), origin_lps_mm=(-5.0, 3.0, 100.0))


def _labels() -> np.ndarray:
    labels = np.zeros(GEOMETRY.shape_kji, dtype=np.uint8)
    labels[1:5, 2:8, 2:10] = 1
    labels[2:4, 3:6, 4:7] = 2
    labels[1, 8, 1] = 3
    labels[6, 0, 0] = 4
    return labels


def _ct() -> CTVolume:
    rng = np.random.default_rng(0)
    return CTVolume(rng.integers(-100, 200, GEOMETRY.shape_kji).astype(np.int16), GEOMETRY)


def _write(path: Path, array: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array)
    GEOMETRY.apply_to(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _config(tmp_path: Path, kind: str, root: str, **data: object) -> object:
    return config_from_dict(
        {"stage": "tumor", "data": {"kind": kind, "root": root, "folds": 2, **data}}, base_dir=tmp_path
    )


# -- splits -----------------------------------------------------------------------------------------------
def test_no_patient_is_in_two_folds() -> None:
    patients = [f"HCC_{n:03d}" for n in range(1, 106)]
    folds = patient_folds(patients + patients[:10], folds=5, seed=2024)  # repeated ids are one patient
    flat = [p for fold in folds for p in fold]
    assert sorted(flat) == sorted(patients)  # every patient exactly once
    assert all(not set(a) & set(b) for n, a in enumerate(folds) for b in folds[n + 1 :])
    assert sorted(len(f) for f in folds) == [21, 21, 21, 21, 21]


def test_phases_of_a_patient_stay_together(tmp_path: Path) -> None:
    cases = [DiskCase(f"P{p}-{phase}", f"P{p}", tmp_path, tmp_path) for p in range(6) for phase in range(3)]
    for fold in range(2):
        config = config_from_dict(
            {"stage": "tumor", "data": {"kind": "datalist", "root": "x", "folds": 2, "fold": fold}}
        )
        train, val = split_cases(cases, config)  # type: ignore[arg-type]
        assert {c.patient_id for c in train}.isdisjoint({c.patient_id for c in val})
        assert len(train) + len(val) == 18 and len(val) == 9


def test_reference_split_files(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("HCC_015,HCC_031,HCC_066")
    (tmp_path / "lines.txt").write_text("HCC_015\nHCC_031\n")
    assert read_patient_list(tmp_path / "train.txt") == ["HCC_015", "HCC_031", "HCC_066"]
    assert read_patient_list(tmp_path / "lines.txt") == ["HCC_015", "HCC_031"]
    cases = [DiskCase(p, p, tmp_path, tmp_path) for p in ("HCC_015", "HCC_031", "HCC_066", "HCC_100")]
    config = config_from_dict(
        {"stage": "tumor", "data": {"kind": "datalist", "root": "x", "split_file": "train.txt"}}, base_dir=tmp_path
    )
    train, val = split_cases(cases, config)  # type: ignore[arg-type]
    assert [c.case_id for c in train] == ["HCC_015", "HCC_031", "HCC_066"] and [c.case_id for c in val] == ["HCC_100"]


# -- file layouts ---------------------------------------------------------------------------------------
def test_reference_nrrd_layout(tmp_path: Path) -> None:
    for patient in ("HCC_001", "HCC_002"):
        _write(tmp_path / patient / f"{patient}_seg.nrrd", _labels())
        _write(tmp_path / patient / "pre.nrrd", _ct().array)
        _write(tmp_path / patient / "art.nrrd", _ct().array)
    cases = discover(_config(tmp_path, "nrrd_layout", "."))  # type: ignore[arg-type]
    assert [(c.case_id, c.patient_id, c.image.name) for c in cases] == [
        ("HCC_001-1", "HCC_001", "art.nrrd"),
        ("HCC_001-2", "HCC_001", "pre.nrrd"),
        ("HCC_002-1", "HCC_002", "art.nrrd"),
        ("HCC_002-2", "HCC_002", "pre.nrrd"),
    ]
    ct, labels = load_case(cases[0])
    assert np.array_equal(labels, _labels()) and ct.geometry.same_grid(GEOMETRY)


def test_nrrd_layout_without_a_mask_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "HCC_001" / "pre.nrrd", _ct().array)
    with pytest.raises(DatasetError, match="expected one mask file"):
        discover(_config(tmp_path, "nrrd_layout", "."))  # type: ignore[arg-type]


def test_lits_and_msd_layouts(tmp_path: Path) -> None:
    _write(tmp_path / "lits" / "volume-0.nii", _ct().array)
    _write(tmp_path / "lits" / "segmentation-0.nii", _labels().clip(0, 2))
    _write(tmp_path / "msd" / "imagesTr" / "liver_7.nii.gz", _ct().array)
    _write(tmp_path / "msd" / "labelsTr" / "liver_7.nii.gz", _labels().clip(0, 2))
    lits = discover(_config(tmp_path, "nifti", "lits"))  # type: ignore[arg-type]
    msd = discover(_config(tmp_path, "nifti", "msd"))  # type: ignore[arg-type]
    assert [c.case_id for c in lits] == ["lits-0"] and [c.case_id for c in msd] == ["liver_7"]
    ct, labels = load_case(msd[0])
    assert np.array_equal(labels, _labels().clip(0, 2)) and ct.array.dtype == np.int16


def test_datalist(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "ct.nii.gz", _ct().array)
    _write(tmp_path / "a" / "lab.nii.gz", _labels())
    items = [{"image": "a/ct.nii.gz", "label": "a/lab.nii.gz", "patient": "P1", "case": "P1-ct"}]
    (tmp_path / "list.json").write_text(json.dumps({"training": items}))
    cases = discover(_config(tmp_path, "datalist", "list.json"))  # type: ignore[arg-type]
    assert cases == [DiskCase("P1-ct", "P1", tmp_path / "a" / "ct.nii.gz", tmp_path / "a" / "lab.nii.gz")]
    (tmp_path / "bad.json").write_text(json.dumps({"training": [{"image": "a/ct.nii.gz"}]}))
    with pytest.raises(DatasetError, match="entry 0 needs 'image' and 'label'"):
        discover(_config(tmp_path, "datalist", "bad.json"))  # type: ignore[arg-type]


# -- HCC-TACE-Seg: DICOM CT + DICOM-SEG -----------------------------------------------------------------
def _write_seg(ct_files: list[Path], labels: np.ndarray, path: Path) -> None:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(str(f)) for f in ct_files]
    names = {1: "Liver", 2: "Tumor", 3: "Portal vein", 4: "Abdominal aorta"}
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=names[value],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Liver,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n, value in enumerate((1, 2, 3, 4), start=1)
    ]
    # HCC-TACE-Seg segments overlap: the liver segment includes the tumor.
    masks = np.stack([(labels == 1) | (labels == 2), labels == 2, labels == 3, labels == 4], axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=300,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(str(path))


def test_hcc_tace_seg_download_layout(tmp_path: Path) -> None:
    from SmoothSegNetLib.io import write_ct_series

    patient = tmp_path / "HCC_004" / "01-01-2000-study"
    ct_files = write_ct_series(_ct(), patient / "2.000-portal", series_description="portal")
    write_ct_series(_ct(), patient / "3.000-arterial", series_description="arterial")  # another phase
    _write_seg(ct_files, _labels(), patient / "300.000-seg" / "1-1.dcm")
    (tmp_path / "HCC_004" / "LICENSE").write_text("not DICOM")
    cases = discover(_config(tmp_path, "hcc_tace_seg", "."))  # type: ignore[arg-type]
    assert len(cases) == 1 and cases[0].patient_id == "HCC_004"
    assert cases[0].series_uid == str(pydicom.dcmread(str(ct_files[0])).SeriesInstanceUID)
    ct, labels = load_case(cases[0])
    assert ct.geometry.same_grid(GEOMETRY, atol=1e-3)
    assert np.array_equal(labels, _labels())  # tumor painted over liver, vessels kept


def test_seg_on_another_grid_is_refused(tmp_path: Path) -> None:
    from SmoothSegNetLib.io import write_ct_series
    from SmoothSegNetLib.training.dicom_seg import SegmentationReadError

    ct_files = write_ct_series(_ct(), tmp_path / "ct")
    _write_seg(ct_files, _labels(), tmp_path / "seg.dcm")
    shifted = Geometry.create(GEOMETRY.shape_kji, GEOMETRY.spacing_mm, (-5.0, 3.0, 101.0))
    with pytest.raises(SegmentationReadError, match="is not on a slice of the CT grid"):
        read_seg_labels(tmp_path / "seg.dcm", shifted)


def test_pydicom_liver_seg_test_file() -> None:
    # A third-party DICOM-SEG (pydicom's test data): one 512x512 frame of pixels of a "Liver" segment
    # (its header describes three frames 1 mm apart; only the first has pixel data).
    path = Path(pydicom.__file__).parent / "data" / "test_files" / "liver_1frame.dcm"
    ds = pydicom.dcmread(str(path))
    position = [float(v) for v in ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient]
    spacing = [float(v) for v in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    geometry = Geometry.create((3, 512, 512), (spacing[1], spacing[0], 1.0), position)
    labels = read_seg_labels(path, geometry)
    assert referenced_series_uid(path) == str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
    assert int((labels[0] == 1).sum()) == int(ds.pixel_array.sum()) == 36233
    assert not labels[1:].any()


def test_segment_names() -> None:
    assert [label_of_segment(n) for n in ("Liver", "Tumor", "Mass", "Portal vein", "Abdominal Aorta", "Spleen")] == [
        1,
        2,
        2,
        3,
        4,
        None,
    ]
