"""Hand edits survive into every output (issue 12 item 7): segment -> edit a lesion -> export, through the CLI.

``export`` used to measure again and overwrite report.json, dropping the edit and the confidences, and wrote
the edited lesion as an AUTOMATIC segment. Now the edited lesion is ``edited`` in report.json / report.csv,
SEMIAUTOMATIC (the network still named) in the SEG, and its SR group says Manual Processing.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.sr.codedict import codes

from SmoothSegNetLib.io import write_ct_series
from SmoothSegNetLib.io.writers import write_labelmap
from SmoothSegNetLib.report.edits import carry_edits
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model
from Testing.conftest import run_cli

SEMI = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
AUTO = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC


def _ct() -> CTVolume:
    """Liver (HU 100) with a large (6x8x8) and a small (4x4x4) lesion (HU 200); anisotropic voxels."""
    a = np.full((16, 30, 36), -500, np.int16)
    a[2:14, 4:26, 4:32] = 100
    a[4:10, 6:14, 6:14] = 200
    a[8:12, 18:22, 22:26] = 200
    return CTVolume(a, Geometry.create(a.shape, (0.8, 0.9, 2.0), (-12.0, 30.5, 101.0)))


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A DICOM series segmented by ``segment --dicom-seg --dicom-sr`` with exact threshold models."""
    root = tmp_path_factory.mktemp("edits")
    liver = write_threshold_model(root / "models", "liver", threshold_hu=50, spacing_mm=None, orientation="PLI")
    tumor = write_threshold_model(root / "models", "tumor", threshold_hu=150, spacing_mm=None)
    series = root / "series"
    write_ct_series(_ct(), series)
    out = root / "out"
    models = ["--liver-model", str(liver), "--tumor-model", str(tumor)]
    result = run_cli(
        "segment", str(series), "-o", str(out), *models, "--dicom-sr", "--progress", "none", "--skip-plausibility-check"
    )  # a small synthetic series, not a body
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert [e["edited"] for e in report["lesions"]] == [False, False]
    assert all(e["confidence"] is not None for e in report["lesions"])
    return series, out, report


def _grow_lesion_2(out: Path) -> None:
    """A reader grows lesion 2 by one slice of liver voxels and saves segmentation.nrrd (lesions.nrrd is stale)."""
    image = sitk.ReadImage(str(out / "segmentation.nrrd"))
    labels = sitk.GetArrayFromImage(image)
    assert np.all(labels[12, 18:22, 22:26] == 1)
    labels[12, 18:22, 22:26] = 2
    edited = sitk.GetImageFromArray(labels)
    edited.CopyInformation(image)
    sitk.WriteImage(edited, str(out / "segmentation.nrrd"), True)


def _methods(group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations) -> list[str]:
    return [e.value.meaning for e in group.get_qualitative_evaluations(name=codes.DCM.SegmentationMethod)]


def test_an_edited_lesion_stays_edited_through_export(segmented: tuple[Path, Path, dict], tmp_path: Path) -> None:
    series, pristine, before = segmented
    out = Path(shutil.copytree(pristine, tmp_path / "out"))
    _grow_lesion_2(out)
    result = run_cli("export", str(out), "--dicom", str(series))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    one, two = report["lesions"]
    assert (one["edited"], two["edited"]) == (False, True)
    assert two["voxel_count"] == 4 * 4 * 4 + 4 * 4
    # The unchanged lesion keeps its network confidence; the edited one has none any more.
    assert one["confidence"] == before["lesions"][0]["confidence"] and two["confidence"] is None
    assert "lesion(s) 2 were edited by hand after the network result" in report["warnings"]
    with (out / "report.csv").open(newline="") as stream:
        assert [row["edited"] for row in csv.DictReader(stream)] == ["False", "True"]
    seg = hd.seg.segread(str(out / "seg.dcm"))
    descriptions = {seg.get_segment_description(n).segment_label: seg.get_segment_description(n) for n in (1, 2, 3)}
    assert descriptions["Lesion 1"].algorithm_type == AUTO
    assert descriptions["Lesion 2"].algorithm_type == SEMI
    assert descriptions["Liver"].algorithm_type == AUTO
    # Semi-automatic: the network that made it is still named.
    assert descriptions["Lesion 2"].algorithm_identification[0].AlgorithmName.startswith("TEST tumor")
    groups = {
        g.tracking_identifier: g
        for g in hd.sr.srread(str(out / "sr.dcm")).content.get_volumetric_roi_measurement_groups()
    }
    assert _methods(groups["Lesion 1"]) == ["Artificial Intelligence"]
    assert _methods(groups["Lesion 2"]) == ["Artificial Intelligence", "Manual Processing"]

    # A second export (lesions.nrrd now matches) keeps the edit: an edit stays an edit.
    again = run_cli("export", str(out), "--dicom", str(series))
    assert again.returncode == 0, again.stderr
    report = json.loads((out / "report.json").read_text())
    assert [e["edited"] for e in report["lesions"]] == [False, True]
    assert report["lesions"][0]["confidence"] == before["lesions"][0]["confidence"]
    seg = hd.seg.segread(str(out / "seg.dcm"))
    assert seg.get_segment_description(3).algorithm_type == SEMI


def test_report_since_an_earlier_run_marks_the_edit(segmented: tuple[Path, Path, dict], tmp_path: Path) -> None:
    series, pristine, before = segmented
    out = Path(shutil.copytree(pristine, tmp_path / "out"))
    _grow_lesion_2(out)
    measured = tmp_path / "measured"
    result = run_cli(
        "report", str(out / "segmentation.nrrd"), "--image", str(series), "-o", str(measured), "--since", str(out),
        "--dicom-sr",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((measured / "report.json").read_text())
    assert [e["edited"] for e in report["lesions"]] == [False, True]
    assert report["lesions"][0]["confidence"] == before["lesions"][0]["confidence"]
    assert [m["id"] for m in report["models"]] == [m["id"] for m in before["models"]]
    seg = hd.seg.segread(str(measured / "seg.dcm"))
    assert [seg.get_segment_description(n).algorithm_type for n in (2, 3)] == [AUTO, SEMI]


def test_report_since_a_folder_without_a_lesion_map_is_refused(tmp_path: Path) -> None:
    ct = _ct()
    write_ct_series(ct, tmp_path / "series")
    labels = np.where(ct.array > 150, 2, np.where(ct.array > 50, 1, 0)).astype(np.uint8)
    write_labelmap(tmp_path / "labels.nrrd", labels, ct.geometry)
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "report.json").write_text("{}")
    result = run_cli(
        "report", str(tmp_path / "labels.nrrd"), "--image", str(tmp_path / "series"), "-o", str(tmp_path / "o"),
        "--since", str(tmp_path / "earlier"),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --since {tmp_path / 'earlier'} must be an output folder holding report.json and lesions.nrrd"
    ]
    assert not (tmp_path / "o").exists()


def test_carry_edits_by_exact_voxels() -> None:
    previous = np.zeros((2, 4, 4), np.uint16)
    previous[0, :2, :2] = 1
    previous[1, 2:, 2:] = 2
    previous[0, 3, 0] = 3
    now = previous.copy()
    now[0, 3, 0] = 0  # lesion 3 removed
    now[1, 1, 2] = 2  # lesion 2 grown
    report = {
        "lesions": [{"id": 1, "confidence": 0.9, "edited": False}, {"id": 2, "confidence": 0.8}, {"id": 3}],
        "warnings": ["lesion(s) 3 were edited by hand after the network result", "GPU memory: ran on the CPU"],
    }
    carried = carry_edits(report, previous, now)
    assert carried.edited == (2,)
    assert carried.confidence == {1: 0.9}
    assert carried.warnings == ("GPU memory: ran on the CPU",)
    # Without the earlier lesion map nothing can be told; without an earlier report nothing is carried.
    assert carry_edits(report, None, now).edited == () and carry_edits(None, previous, now).confidence == {}
