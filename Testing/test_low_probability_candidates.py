"""Issue 16: regions the tumor network sees too faintly to call tumor are listed for review, never counted.

Hand-computable regions on a 1 mm grid: the unit tests give the probability map directly; the pipeline tests use
threshold networks (q = e^z / (e^z + 1), z = 50 * (HU - 150) / 450), so a block of 145 HU has q = 0.3646 and one
of 140 HU q = 0.2479.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import run_cli

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.inference.cases import Case, run_case
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.inference.thresholds import add_low_probability, split_by_thresholds
from SmoothSegNetLib.io.writers import write_volume
from SmoothSegNetLib.report.candidates import LesionThresholds, thresholds_from_report
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import threshold_options

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "SmoothSegNetLib/schemas/report.schema.json").read_text())
GEOMETRY = Geometry.create((10, 10, 20), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


def _q_map() -> tuple[np.ndarray, np.ndarray]:
    """q and the context on a 10 x 10 x 20 grid ([k, j, i]).

    A: a lesion (q 0.9, 27 voxels) with a fringe of 0.3 on one side; B: a faint region (q 0.3, 36 voxels);
    C: a fainter, smaller one (q 0.25, 12 voxels); D: a component under the volume floor (q 0.6, 8 voxels) with
    a halo of 0.3; E: q 0.3 outside the context.
    """
    q = np.zeros((10, 10, 20), np.float32)
    q[2:5, 2:5, 1:2] = 0.3  # A's fringe
    q[2:5, 2:5, 2:5] = 0.9  # A
    q[2:5, 2:5, 10:14] = 0.3  # B
    q[6:8, 6:8, 15:18] = 0.25  # C
    q[6:9, 1:5, 6:10] = 0.3  # D's halo
    q[7:9, 2:4, 7:9] = 0.6  # D
    q[0:1, 8:10, 18:20] = 0.3  # E
    context = np.ones(q.shape, bool)
    context[0, :, :] = False
    return q, context


def _split(q: np.ndarray, context: np.ndarray) -> tuple[np.ndarray, object]:
    thresholds = LesionThresholds(min_lesion_ml=0.01, min_lesion_ml_source="cli")
    lesions, _confidence, candidates = split_by_thresholds((q >= 0.5) & context, q, GEOMETRY, thresholds)
    return lesions, candidates


def test_faint_regions_touching_no_lesion_or_candidate_are_added_largest_first() -> None:
    q, context = _q_map()
    lesions, candidates = _split(q, context)
    assert int(lesions.max()) == 1 and int((lesions == 1).sum()) == 27  # A
    assert candidates.count == 1 and int((candidates.instances == 1).sum()) == 8  # D, under 0.01 ml
    merged = add_low_probability(candidates, q, context, lesions, 0.2, GEOMETRY, min_ml=0.0)
    # B (36 voxels), C (12), D (8): A's fringe touches A, D's halo holds D, E lies outside the context.
    assert [int((merged.instances == n).sum()) for n in (1, 2, 3)] == [36, 12, 8]
    assert dict(merged.reasons) == {1: "low_tumor_probability", 2: "low_tumor_probability", 3: "below_min_lesion_ml"}
    assert merged.confidence == {1: pytest.approx(0.3), 2: pytest.approx(0.25), 3: pytest.approx(0.6)}
    assert not merged.instances[q == 0.9].any() and not merged.instances[0].any()
    assert (merged.instances[2:5, 2:5, 10:14] == 1).all()


def test_threshold_and_minimum_volume_decide_which_faint_regions_are_listed() -> None:
    q, context = _q_map()
    lesions, candidates = _split(q, context)
    # C (q 0.25) is under 0.28; at 0.02 ml C (0.012 ml) is too small; above 0.3 nothing faint is left.
    assert add_low_probability(candidates, q, context, lesions, 0.28, GEOMETRY).count == 2
    assert add_low_probability(candidates, q, context, lesions, 0.2, GEOMETRY, min_ml=0.02).count == 2
    unchanged = add_low_probability(candidates, q, context, lesions, 0.35, GEOMETRY)
    assert unchanged is candidates


def test_limit_keeps_the_faint_regions_with_the_highest_peak() -> None:
    q, context = _q_map()
    q[2:5, 2:5, 10] = 0.2  # B's peak stays 0.3; C's becomes the higher one
    q[7, 7, 16] = 0.45
    lesions, candidates = _split(q, context)
    one = add_low_probability(candidates, q, context, lesions, 0.2, GEOMETRY, limit=1)
    # C (12 voxels, peak 0.45) is kept over the larger B (peak 0.3); D, a floor candidate, is not counted.
    assert sorted(one.reasons.values()) == ["below_min_lesion_ml", "low_tumor_probability"]
    assert int((one.instances == 1).sum()) == 12 and one.reasons[1] == "low_tumor_probability"
    assert add_low_probability(candidates, q, context, lesions, 0.2, GEOMETRY, limit=5).count == 3


def _ct() -> CTVolume:
    a = np.full((20, 30, 40), -500, np.int16)
    a[2:18, 3:27, 3:37] = 100  # liver
    a[4:7, 6:10, 6:15] = 200  # a lesion, q 0.996 (108 voxels)
    a[4:7, 6:10, 15:17] = 145  # its fringe, q 0.365: touches the lesion
    a[10:14, 6:10, 20:24] = 145  # L: 64 voxels, q 0.365
    a[10:13, 16:19, 8:11] = 145  # S: 27 voxels (0.027 ml), under the 0.05 ml minimum
    a[10:14, 16:20, 28:32] = 140  # F: 64 voxels, q 0.248, under 0.3
    return CTVolume(a, Geometry.create(a.shape, (1.0, 1.0, 1.0), (10.0, -20.0, 30.0)))


def _options(tmp_path: Path, limit: int | None = None, **changes: object) -> SegmentOptions:
    post: dict[str, object] = {"min_lesion_ml": 0.05, "candidate_probability": 0.3}
    if limit is not None:
        post["candidate_limit"] = limit
    return threshold_options(tmp_path, post, **changes)


def test_segment_lists_faint_regions_as_candidates_and_never_counts_them(tmp_path: Path) -> None:
    write_volume(tmp_path / "ct.nrrd", _ct())
    result = run_case(
        Case(tmp_path / "ct.nrrd", tmp_path / "out"), Segmenter(_options(tmp_path)), skip_plausibility_check=True
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["thresholds"]["candidate_probability"] == 0.3
    assert report["thresholds"]["source"]["candidate_probability"] == "card"
    assert report["thresholds"]["candidate_limit"] is None
    assert [e["voxel_count"] for e in report["lesions"]] == [108]
    assert report["tumor_burden"]["count"] == 1 and report["tumor_burden"]["total_volume_ml"] == pytest.approx(0.108)
    [entry] = report["candidates"]
    assert entry["reason"] == "low_tumor_probability" and entry["volume_ml"] == pytest.approx(0.064)
    assert entry["confidence"] == pytest.approx(0.3646, abs=1e-4)
    assert entry["centroid_lps_mm"] == [10.0 + 21.5, -20.0 + 7.5, 30.0 + 11.5]
    # The region stays liver in the labelmap; the earlier report's block reads back the same.
    assert (result.labelmap[10:14, 6:10, 20:24] == 1).all()
    assert thresholds_from_report(report) == result.thresholds


def test_the_option_overrides_the_card_and_zero_turns_it_off(tmp_path: Path) -> None:
    off = Segmenter(_options(tmp_path, candidate_probability=0.0))(_ct())
    assert off.thresholds.candidate_probability == 0.0 and off.thresholds.candidate_probability_source == "cli"
    assert off.candidates is not None and off.candidates.count == 0
    lower = Segmenter(_options(tmp_path, candidate_probability=0.2))(_ct())
    assert lower.candidates is not None
    assert sorted(int((lower.candidates.instances == n).sum()) for n in (1, 2)) == [64, 64]  # L and F
    assert set(lower.candidates.reasons.values()) == {"low_tumor_probability"}
    # The card's limit of one keeps L (peak 0.365) and drops F (0.248); the report states it.
    one = Segmenter(_options(tmp_path, limit=1, candidate_probability=0.2))(_ct())
    assert one.candidates is not None and one.candidates.count == 1
    assert one.thresholds.as_report()["candidate_limit"] == 1
    assert (one.candidates.instances[10:14, 6:10, 20:24] == 1).all()


@pytest.mark.parametrize("bad", [0.5, -0.1, float("nan")])
def test_bad_candidate_probability_is_refused(bad: float) -> None:
    with pytest.raises(InputError, match=r"--candidate-probability must be a number in \[0, 0.5\) \(0 = off\)"):
        SegmentOptions(candidate_probability=bad)


def test_cli_refuses_a_bad_candidate_probability_with_one_line(tmp_path: Path) -> None:
    write_volume(tmp_path / "ct.nrrd", _ct())
    result = run_cli(
        "segment", str(tmp_path / "ct.nrrd"), "-o", str(tmp_path / "out"), "--candidate-probability", "0.7"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --candidate-probability must be a number in [0, 0.5) (0 = off), got 0.7"
    ]
    assert not (tmp_path / "out").exists()
