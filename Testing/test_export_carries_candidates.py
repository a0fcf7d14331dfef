"""``export`` after a hand correction keeps what the network run stated (issue 12 item 8): the lesion floors it
used and the candidates they dropped — minus a candidate the reader has since accepted as tumor.

A DICOM series with exact threshold models: liver (HU 100) holding a lesion of 6 x 8 x 8 voxels and a small
component of 4 x 4 x 4 voxels (HU 200); voxels 0.8 x 0.9 x 2.0 mm = 1.44 mm³, so the small one is 0.0922 ml,
under ``--min-lesion-ml 0.1``: a candidate, given back to the liver.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SmoothSegNetLib.io import write_ct_series
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model
from Testing.conftest import run_cli

SMALL = (slice(8, 12), slice(18, 22), slice(22, 26))
VOXEL_ML = 0.8 * 0.9 * 2.0 / 1000


def _ct() -> CTVolume:
    a = np.full((16, 30, 36), -500, np.int16)
    a[2:14, 4:26, 4:32] = 100
    a[4:10, 6:14, 6:14] = 200
    a[SMALL] = 200
    return CTVolume(a, Geometry.create(a.shape, (0.8, 0.9, 2.0), (-12.0, 30.5, 101.0)))


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("carry")
    liver = write_threshold_model(root / "models", "liver", threshold_hu=50, spacing_mm=None, orientation="PLI")
    tumor = write_threshold_model(root / "models", "tumor", threshold_hu=150, spacing_mm=None)
    series = root / "series"
    write_ct_series(_ct(), series)
    out = root / "out"
    result = run_cli(
        "segment", str(series), "-o", str(out), "--liver-model", str(liver), "--tumor-model", str(tumor),
        "--min-lesion-ml", "0.1", "--progress", "none", "--skip-plausibility-check",  # not a body: a small box
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return series, out


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_export_states_the_floors_and_candidates_of_the_network_run(
    segmented: tuple[Path, Path], tmp_path: Path
) -> None:
    series, pristine = segmented
    before = json.loads((pristine / "report.json").read_text())
    assert before["thresholds"]["min_lesion_ml"] == 0.1 and before["thresholds"]["source"]["min_lesion_ml"] == "cli"
    [candidate] = before["candidates"]
    assert candidate["volume_ml"] == pytest.approx(64 * VOXEL_ML, abs=1e-4)
    out = Path(shutil.copytree(pristine, tmp_path / "out"))
    result = run_cli("export", str(out), "--dicom", str(series), "--no-sr")
    assert result.returncode == 0, result.stderr
    after = json.loads((out / "report.json").read_text())
    assert after["thresholds"] == before["thresholds"]  # not "not_applied": the run's floors are still stated
    assert after["candidates"] == before["candidates"]
    assert after["tumor_burden"]["count"] == 1
    np.testing.assert_array_equal(_read(out / "candidates.nrrd"), _read(pristine / "candidates.nrrd"))


def test_a_candidate_accepted_by_hand_is_no_longer_listed(segmented: tuple[Path, Path], tmp_path: Path) -> None:
    series, pristine = segmented
    out = Path(shutil.copytree(pristine, tmp_path / "out"))
    image = sitk.ReadImage(str(out / "segmentation.nrrd"))
    labels = sitk.GetArrayFromImage(image)
    assert np.all(labels[SMALL] == 1) and np.all(_read(out / "candidates.nrrd")[SMALL] == 1)
    labels[SMALL] = 2  # the reader accepts the candidate: it becomes tumor
    edited = sitk.GetImageFromArray(labels)
    edited.CopyInformation(image)
    sitk.WriteImage(edited, str(out / "segmentation.nrrd"), True)
    result = run_cli("export", str(out), "--dicom", str(series), "--no-sr")
    assert result.returncode == 0, result.stderr
    after = json.loads((out / "report.json").read_text())
    assert after["candidates"] == []
    assert after["tumor_burden"]["count"] == 2
    assert [e["edited"] for e in after["lesions"]] == [False, True]  # the accepted one is a hand edit
    assert after["lesions"][1]["volume_ml"] == pytest.approx(64 * VOXEL_ML, abs=1e-4)
    assert not _read(out / "candidates.nrrd").any()
