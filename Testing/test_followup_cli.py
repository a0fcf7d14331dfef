"""``smoothsegnet followup`` on a phantom pair with known truth: files, schema, statuses, responses, bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import SimpleITK as sitk
from _followup_helpers import GRID, _visit
from conftest import run_cli

from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.phantom.followup import make_followup_phantom

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "SmoothSegNetLib" / "schemas" / "followup.schema.json").read_text()
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("pair")
    base = make_phantom(6, *GRID, phase="arterial")
    fu = make_followup_phantom(6, 1, *GRID, phase="arterial")
    return _visit(root, "base", base), _visit(root, "fu", fu), fu.clinical["ground_truth"]["followup"]


@pytest.fixture(scope="module")
def done(pair, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base, fu, _ = pair
    out = tmp_path_factory.mktemp("run") / "out"
    result = run_cli("followup", str(base), str(fu), "-o", str(out), "--phase", "arterial")
    assert result.returncode == 0, result.stderr
    assert "RECIST 1.1 SD, mRECIST PR" in result.stdout
    return out, json.loads((out / "followup.json").read_text())


def test_outputs_and_schema(done) -> None:
    out, data = done
    assert sorted(p.name for p in out.iterdir()) == ["followup.csv", "followup.json", "followup.png", "transforms"]
    jsonschema.validate(data, SCHEMA)
    assert (out / "transforms" / "visit_1.tfm").is_file()
    assert sitk.ReadTransform(str(out / "transforms" / "visit_1.tfm")) is not None
    with (out / "followup.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [r["tracking_id"] for r in rows] == [r["tracking_id"] for r in data["lesions"]]
    assert rows[0]["baseline_long_axis_mm"] == str(data["lesions"][0]["baseline_long_axis_mm"])
    assert data["registration"][0]["liver_dice"] > 0.9 and data["warnings"] == []


def test_statuses_and_responses_match_the_phantom_truth(pair, done) -> None:
    _, _, truth = pair
    _, data = done
    # The phantom's lesions are numbered like the reports' here (decreasing volume, none dropped): compare directly.
    expected = [(t["baseline_lesion"], t["followup_lesion"]) for t in truth["lesions"]]
    assert [(r["baseline_id"], r["followup_id"]) for r in data["lesions"]] == expected
    assert {r["status"] for r in data["lesions"]} == {"matched"}
    assert data["recist"]["response"] == truth["response"]["recist_1_1"]["response"] == "SD"
    assert data["mrecist"]["response"] == truth["response"]["mrecist"]["response"] == "PR"
    # The necrotic targets have no viable tissue left; the untouched one keeps its viable long axis.
    states = {t["followup_lesion"]: t["state"] for t in truth["lesions"]}
    for row in data["lesions"]:
        viable = row["followup_viable_long_axis_mm"]
        assert (viable == 0.0) == (states[row["followup_id"]] == "necrotic")
    assert data["recist"]["baseline_sum_mm"] == pytest.approx(
        sum(
            r["baseline_long_axis_mm"] for r in data["lesions"] if r["tracking_id"] in data["recist"]["target_lesions"]
        ),
        abs=0.01,
    )


def test_unknown_phase_makes_mrecist_not_evaluable(pair, tmp_path: Path) -> None:
    base, fu, _ = pair
    result = run_cli("followup", str(base), str(fu), "-o", str(tmp_path / "o"), "--no-png", "--rigid-affine-only")
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "o" / "followup.json").read_text())
    assert data["mrecist"]["response"] == "NE" and "phase unknown" in data["mrecist"]["reason"]
    assert data["recist"]["response"] == "SD" and data["registration"][0]["method"] == "rigid+affine"


def _edited(folder: Path, tmp: Path, name: str, **dicom: str) -> Path:
    copy = tmp / name
    shutil.copytree(folder, copy)
    report = json.loads((copy / "report.json").read_text())
    report["input"]["dicom"] = {
        "study_instance_uid": "1.2.3",
        "series_instance_uid": "1.2.4",
        "frame_of_reference_uid": "1.2.5",
        **dicom,
    }
    (copy / "report.json").write_text(json.dumps(report))
    return copy


def _refused(result, out: Path, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr
    assert not out.exists()


def test_folder_without_report_is_refused(pair, tmp_path: Path) -> None:
    base, _, _ = pair
    (tmp_path / "empty").mkdir()
    out = tmp_path / "o"
    _refused(run_cli("followup", str(base), str(tmp_path / "empty"), "-o", str(out)), out, "has no report.json")


def test_different_patients_are_refused(pair, tmp_path: Path) -> None:
    base, fu, _ = pair
    a = _edited(base, tmp_path, "a", patient_id="P1", study_date="20250101")
    b = _edited(fu, tmp_path, "b", patient_id="P2", study_date="20250401")
    out = tmp_path / "o"
    _refused(run_cli("followup", str(a), str(b), "-o", str(out)), out, "different patients")


def test_visits_out_of_date_order_are_refused(pair, tmp_path: Path) -> None:
    base, fu, _ = pair
    a = _edited(base, tmp_path, "a", patient_id="P1", study_date="20250401")
    b = _edited(fu, tmp_path, "b", patient_id="P1", study_date="20250101")
    out = tmp_path / "o"
    _refused(run_cli("followup", str(a), str(b), "-o", str(out)), out, "is before visit 0")


def test_unregistrable_liver_is_refused(pair, tmp_path: Path) -> None:
    base, fu, _ = pair
    image = sitk.ReadImage(str(fu / "segmentation.nrrd"))
    blob = np.zeros(sitk.GetArrayFromImage(image).shape, np.uint8)
    blob[30:33, 40:43, 40:43] = 1
    wrong = sitk.GetImageFromArray(blob)
    wrong.CopyInformation(image)
    sitk.WriteImage(wrong, str(tmp_path / "blob.nrrd"))
    out = tmp_path / "o"
    result = run_cli("followup", str(base), str(fu), "-o", str(out), "--labels", f"1={tmp_path / 'blob.nrrd'}")
    _refused(result, out, "under the floor 0.80")
