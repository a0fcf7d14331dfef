"""The attenuation floor (``min_lesion_hu``): a tumor component whose median CT value is under it is fluid (most
likely a simple cyst) and becomes a candidate with reason ``below_min_lesion_hu``, not a lesion.

Hand-made volumes give exact answers; one phantom through the real pipeline checks that a cyst the demo network
calls tumor is listed as a candidate and that no true lesion is lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.inference.thresholds import split_by_thresholds
from SmoothSegNetLib.report.candidates import LesionThresholds, thresholds_from_report
from SmoothSegNetLib.volume import Geometry

GEOMETRY = Geometry(
    shape_kji=(20, 30, 40),
    spacing_mm=(2.0, 2.0, 2.0),
    origin_lps_mm=(0.0, 0.0, 0.0),
    direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
)


def _ball(centre_kji: tuple[int, int, int], radius: float) -> np.ndarray:
    k, j, i = np.indices((20, 30, 40))
    return (k - centre_kji[0]) ** 2 + (j - centre_kji[1]) ** 2 + (i - centre_kji[2]) ** 2 <= radius**2


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three tumor components: a 'cyst' at 10 HU (radius 4 voxels), a 'metastasis' at 60 HU (radius 5) and a
    tiny 10 HU one (radius 1); liver 110 HU around them; every tumor voxel probability 0.9."""
    cyst, met, tiny = _ball((10, 15, 10), 4), _ball((10, 15, 28), 5), _ball((3, 5, 36), 1)
    hu = np.full((20, 30, 40), 110.0, dtype=np.float32)
    hu[cyst], hu[met], hu[tiny] = 10.0, 60.0, 10.0
    tumor = cyst | met | tiny
    return tumor, np.where(tumor, 0.9, 0.0).astype(np.float32), hu


def test_fluid_component_becomes_a_candidate_and_the_first_floor_missed_is_the_reason() -> None:
    tumor, q, hu = _scene()
    floors = LesionThresholds(min_lesion_ml=0.1, min_lesion_hu=20.0)
    lesions, confidence, candidates = split_by_thresholds(tumor, q, GEOMETRY, floors, hu)
    # The metastasis (515 voxels of 8 mm3) is the only lesion.
    assert int(lesions.max()) == 1 and np.array_equal(lesions == 1, _ball((10, 15, 28), 5))
    assert confidence == {1: 0.9}
    # Candidates by decreasing volume: the cyst (fluid), then the tiny one (7 voxels, 0.056 ml: under the
    # volume floor, which is checked first although it is fluid too).
    assert candidates.reasons == {1: "below_min_lesion_hu", 2: "below_min_lesion_ml"}
    assert np.array_equal(candidates.instances == 1, _ball((10, 15, 10), 4))
    assert np.array_equal(candidates.instances == 2, _ball((3, 5, 36), 1))


def test_the_floor_is_on_the_median_and_strict() -> None:
    tumor, q, hu = _scene()
    # At exactly the component's median the component stays a lesion (under, not at, the floor).
    lesions, _, candidates = split_by_thresholds(tumor, q, GEOMETRY, LesionThresholds(min_lesion_hu=10.0), hu)
    assert int(lesions.max()) == 3 and candidates.count == 0
    # A median, not a mean: a quarter of the cyst's voxels at 300 HU (a calcification, a vessel) does not lift it.
    cyst = _ball((10, 15, 10), 4)
    bright = cyst & (np.indices(cyst.shape)[2] >= 12)
    assert 0 < bright.sum() < cyst.sum() / 2
    hu[bright] = 300.0
    assert hu[cyst].mean() > 20.0
    _, _, candidates = split_by_thresholds(tumor, q, GEOMETRY, LesionThresholds(min_lesion_hu=20.0), hu)
    assert candidates.reasons[1] == "below_min_lesion_hu"


def test_no_floor_keeps_every_component_and_a_floor_without_the_ct_is_a_programming_error() -> None:
    tumor, q, _hu = _scene()
    lesions, _, candidates = split_by_thresholds(tumor, q, GEOMETRY, LesionThresholds(), None)
    assert int(lesions.max()) == 3 and candidates.count == 0
    with pytest.raises(ValueError, match="needs the CT"):
        split_by_thresholds(tumor, q, GEOMETRY, LesionThresholds(min_lesion_hu=20.0), None)


def test_thresholds_round_trip_through_the_report_block_and_old_reports_read_as_not_applied() -> None:
    floors = LesionThresholds(
        min_lesion_ml=0.2,
        min_lesion_ml_source="card",
        min_lesion_confidence=0.7,
        min_lesion_confidence_source="card",
        min_lesion_hu=20.0,
        min_lesion_hu_source="cli",
    )
    block = json.loads(json.dumps(floors.as_report()))
    assert block["min_lesion_hu"] == 20.0 and block["source"]["min_lesion_hu"] == "cli"
    assert thresholds_from_report({"thresholds": block}) == floors
    old = {"min_lesion_ml": 0.5, "min_lesion_confidence": None, "source": {"min_lesion_ml": "card"}}
    read = thresholds_from_report({"thresholds": old})
    assert read is not None and read.min_lesion_hu is None and read.min_lesion_hu_source == "not_applied"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -2000.0, 4000.0])
def test_bad_min_lesion_hu_is_refused(value: float) -> None:
    with pytest.raises(InputError, match="--min-lesion-hu must be a number in"):
        SegmentOptions(min_lesion_hu=value)


def test_cli_refuses_a_bad_min_lesion_hu_with_one_error_line(tmp_path: Path) -> None:
    from SmoothSegNetLib.io.writers import write_volume
    from SmoothSegNetLib.phantom import make_phantom

    ct = tmp_path / "ct.nrrd"
    write_volume(ct, make_phantom(3, (40, 36, 20), (9.0, 10.0, 10.0)).ct)
    out = tmp_path / "out"
    result = run_cli("segment", str(ct), "-o", str(out), "--min-lesion-hu", "5000")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "--min-lesion-hu must be a number in [-1024, 3071]" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_pipeline_lists_a_cyst_the_network_calls_tumor_as_a_candidate_and_keeps_every_true_lesion() -> None:
    """Tuning phantom 2031 (arterial phase) has a hepatic cyst (water density, liver label) that the demo tumor
    network calls a lesion. With a 20 HU floor it is a candidate (``below_min_lesion_hu``), source ``cli``;
    every lesion that touches true tumor without the floor is still a lesion with it."""
    from SmoothSegNetLib.evaluation.missed_lesions import evaluation_grid
    from SmoothSegNetLib.inference.pipeline import Segmenter
    from SmoothSegNetLib.phantom import make_phantom
    from SmoothSegNetLib.phantom.tissues import T

    phantom = make_phantom(2031, *evaluation_grid(2031))
    plain = Segmenter(SegmentOptions(device="cpu", min_lesion_hu=None))(phantom.ct)
    floored = Segmenter(SegmentOptions(device="cpu", min_lesion_hu=20.0))(phantom.ct)
    assert plain.thresholds.min_lesion_hu_source in ("card", "not_applied")
    assert floored.thresholds.min_lesion_hu == 20.0 and floored.thresholds.min_lesion_hu_source == "cli"

    cyst = phantom.tissues == T.HEPATIC_CYST
    on_cyst = [n for n in range(1, int(plain.lesions.max()) + 1) if cyst[plain.lesions == n].mean() > 0.5]
    assert on_cyst, "the demo network no longer calls the cyst tumor: choose another phantom"
    candidates = floored.candidates
    assert candidates is not None
    fluid = [n for n, reason in candidates.reasons.items() if reason == "below_min_lesion_hu"]
    assert len(fluid) == len(on_cyst)
    assert all(cyst[candidates.instances == n].mean() > 0.5 for n in fluid)
    true_tumor = phantom.labels == 2
    kept_true = {n for n in range(1, int(plain.lesions.max()) + 1) if true_tumor[plain.lesions == n].any()}
    assert kept_true and all(np.any(floored.lesions[plain.lesions == n]) for n in kept_true)
