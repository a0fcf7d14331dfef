"""``smoothsegnet phantom``: the files, their geometry, the DICOM series (dciodvfy), bad options."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import require_tool, run_cli

from SmoothSegNetLib.phantom import make_phantom


def test_writes_ct_labels_clinical_on_the_requested_grid(tmp_path: Path) -> None:
    out = tmp_path / "ph"
    result = run_cli("phantom", "-o", str(out), "--seed", "5", "--size", "40,36,24", "--spacing", "9,10,8.5")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["clinical.json", "ct.nrrd", "labels.nrrd"]
    ct = sitk.ReadImage(str(out / "ct.nrrd"))
    labels = sitk.ReadImage(str(out / "labels.nrrd"))
    assert ct.GetPixelID() == sitk.sitkInt16 and labels.GetPixelID() == sitk.sitkUInt8
    expected = make_phantom(5, (40, 36, 24), (9.0, 10.0, 8.5))
    for image in (ct, labels):
        assert image.GetSize() == (40, 36, 24)
        assert np.allclose(image.GetSpacing(), (9.0, 10.0, 8.5))
        assert np.allclose(image.GetOrigin(), expected.ct.geometry.origin_lps_mm, atol=1e-4)
        assert np.allclose(image.GetDirection(), np.eye(3).ravel())
    assert np.array_equal(sitk.GetArrayFromImage(ct), expected.ct.array)
    assert np.array_equal(sitk.GetArrayFromImage(labels), expected.labels)
    record = json.loads((out / "clinical.json").read_text())
    assert record == json.loads(json.dumps(expected.clinical))
    assert "tlvr" in record["ground_truth"] and "T_involvment" in record["variables"]


def test_oblique_grid_is_written_with_its_direction(tmp_path: Path) -> None:
    out = tmp_path / "obl"
    result = run_cli(
        "phantom", "-o", str(out), "--seed", "2", "--size", "24,24,16", "--spacing", "10,10,10", "--oblique"
    )
    assert result.returncode == 0, result.stderr
    image = sitk.ReadImage(str(out / "labels.nrrd"))
    direction = np.reshape(image.GetDirection(), (3, 3))
    expected = make_phantom(2, (24, 24, 16), (10.0, 10.0, 10.0), oblique=True).ct.geometry.direction_array
    assert np.allclose(direction, expected, atol=1e-6)
    assert not np.allclose(np.abs(direction), np.eye(3), atol=0.05)


def test_dicom_series_passes_dciodvfy(tmp_path: Path) -> None:
    dciodvfy = require_tool("dciodvfy")
    out = tmp_path / "dcm"
    result = run_cli("phantom", "-o", str(out), "--seed", "3", "--size", "48,40,8", "--spacing", "8,8,8", "--dicom")
    assert result.returncode == 0, result.stderr
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 8
    for path in files:
        check = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
        report = check.stdout + check.stderr
        assert "Error" not in report, report
    from SmoothSegNetLib.io import read_volume

    ct = read_volume(out / "dicom")
    expected = make_phantom(3, (48, 40, 8), (8.0, 8.0, 8.0))
    assert np.array_equal(ct.array, expected.ct.array)
    assert ct.geometry.same_grid(expected.ct.geometry)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--seed", "-3"], ["seed"]),
        (["--seed", "1", "--size", "10,10"], ["--size", "10,10"]),
        (["--seed", "1", "--size", "a,b,c"], ["--size"]),
        (["--seed", "1", "--size", "64,4,64"], ["size", ">= 8"]),
        (["--seed", "1", "--spacing", "1,0,1"], ["spacing"]),
        (["--seed", "1", "--spacing", "1,1,nan"], ["spacing"]),
        (["--seed", "x"], ["--seed"]),
        (["--seed", "1", "--phase", "delayed"], ["--phase"]),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "never"
    result = run_cli("phantom", "-o", str(out), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    for word in words:
        assert word in lines[0]
    assert not out.exists()


def test_output_that_is_a_file_exits_2_and_keeps_the_file(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep me")
    result = run_cli("phantom", "-o", str(target), "--seed", "1", "--size", "16,16,8", "--spacing", "10,10,10")
    assert result.returncode == 2 and result.stderr.startswith("error:")
    assert target.read_text() == "keep me"


def test_preview_picture(tmp_path: Path) -> None:
    out = tmp_path / "pv"
    result = run_cli("phantom", "-o", str(out), "--seed", "4", "--size", "64,64,40", "--spacing", "6,6,6", "--preview")
    assert result.returncode == 0, result.stderr
    png = (out / "preview.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
