"""report.json records where its CT came from (absolute path; DICOM patient id and study date) for follow-up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _report_helpers import ct_with, ellipsoid_mask, grid
from conftest import run_cli

from SmoothSegNetLib.io import write_ct_series
from SmoothSegNetLib.io.writers import write_labelmap, write_volume


def _case(tmp_path: Path) -> tuple[object, np.ndarray]:
    g = grid((8, 30, 30), (1.0, 1.0, 2.0), np.eye(3))
    labels = np.zeros(g.shape_kji, np.uint8)
    labels[ellipsoid_mask(g, g.index_to_lps([15, 15, 4]), (12.0, 12.0, 6.0), np.eye(3))] = 1
    return g, labels


def test_relative_image_path_is_recorded_absolute(tmp_path: Path) -> None:
    g, labels = _case(tmp_path)
    write_volume(tmp_path / "ct.nrrd", ct_with(labels, g))
    write_labelmap(tmp_path / "labels.nrrd", labels, g)
    result = run_cli("report", "labels.nrrd", "--image", "ct.nrrd", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    entry = json.loads((tmp_path / "out" / "report.json").read_text())["input"]
    assert entry["source"] == "ct.nrrd" and entry["path"] == str((tmp_path / "ct.nrrd").resolve())
    assert entry["dicom"] is None


def test_dicom_patient_id_and_study_date_are_recorded(tmp_path: Path) -> None:
    g, labels = _case(tmp_path)
    write_ct_series(ct_with(labels, g), tmp_path / "dcm", patient_id="PAT-7", attributes={"StudyDate": "20250314"})
    write_labelmap(tmp_path / "labels.nrrd", labels, g)
    result = run_cli(
        "report", str(tmp_path / "labels.nrrd"), "--image", str(tmp_path / "dcm"), "-o", str(tmp_path / "o")
    )
    assert result.returncode == 0, result.stderr
    entry = json.loads((tmp_path / "o" / "report.json").read_text())["input"]
    assert entry["path"] == str((tmp_path / "dcm").resolve())
    assert entry["dicom"]["patient_id"] == "PAT-7" and entry["dicom"]["study_date"] == "20250314"
