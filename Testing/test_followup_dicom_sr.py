"""``followup --dicom-sr``: the follow-up SR reuses the baseline's Tracking UIDs and passes dciodvfy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import pytest
from conftest import require_tool, run_cli

pytestmark = pytest.mark.dciodvfy

PHANTOM = ("--size", "96,96,64", "--spacing", "4,4,4", "--phase", "arterial", "--dicom")


def _visit(root: Path, name: str, *seed: str) -> Path:
    src = root / f"{name}_src"
    assert run_cli("phantom", "-o", str(src), *seed, *PHANTOM).returncode == 0
    out = root / name
    result = run_cli(
        "report",
        str(src / "labels.nrrd"),
        "--image",
        str(src / "dicom"),
        "--ignore-labels",
        "3,4",
        "--dicom-sr",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def visits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("dicom-pair")
    return root, _visit(root, "base", "--seed", "6"), _visit(root, "fu", "--followup-of", "6")


def test_followup_sr_tracks_baseline_lesions(visits: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, base, fu = visits
    out = tmp_path / "out"
    labels = (
        "--labels",
        f"0={root / 'base_src' / 'labels.nrrd'}",
        "--labels",
        f"1={root / 'fu_src' / 'labels.nrrd'}",
    )
    result = run_cli(
        "followup", str(base), str(fu), "-o", str(out), "--phase", "arterial", "--dicom-sr", "--no-png", *labels
    )
    assert result.returncode == 0, result.stderr
    baseline = {
        str(g.tracking_identifier): str(g.tracking_uid)
        for g in hd.sr.srread(str(base / "sr.dcm")).content.get_volumetric_roi_measurement_groups()
    }
    followup_sr = hd.sr.srread(str(out / "sr_visit_1.dcm"))
    assert followup_sr.SpecificCharacterSet == "ISO_IR 192"  # UTF-8, like the case's SR (one SR writer)
    groups = followup_sr.content.get_volumetric_roi_measurement_groups()
    # Phantom seed 6, follow-up 1: all three lesions matched to the same ids (see test_followup_cli).
    # The baseline SR also measures the liver (parenchyma, and including tumors); the follow-up SR tracks lesions only.
    assert {"Liver parenchyma", "Liver including tumors"} <= set(baseline)
    baseline = {name: uid for name, uid in baseline.items() if not name.startswith("Liver")}
    assert {str(g.tracking_identifier): str(g.tracking_uid) for g in groups} == baseline
    responses = {str(g.tracking_identifier): [q.value.meaning for q in g.get_qualitative_evaluations()] for g in groups}
    assert responses == {
        "Lesion 1": ["Target Lesion Stable Disease"],
        "Lesion 2": ["Target Lesion Stable Disease"],
        "Lesion 3": [],
    }
    check = subprocess.run([require_tool("dciodvfy"), str(out / "sr_visit_1.dcm")], capture_output=True, text=True)
    assert [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")] == []


def test_dicom_sr_without_baseline_sr_is_refused(visits: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, base_with_sr, fu = visits
    base = tmp_path / "base"
    shutil.copytree(base_with_sr, base)
    (base / "sr.dcm").unlink()
    out = tmp_path / "out"
    labels = (
        "--labels",
        f"0={root / 'base_src' / 'labels.nrrd'}",
        "--labels",
        f"1={root / 'fu_src' / 'labels.nrrd'}",
    )
    result = run_cli("followup", str(base), str(fu), "-o", str(out), "--dicom-sr", "--no-png", *labels)
    assert result.returncode == 2 and result.stderr.startswith("error:") and "sr.dcm" in result.stderr
    assert not out.exists()
