"""Issue 16: a second pass of the tumor network on a finer grid lists what it finds beyond the lesions for review.

Unit tests give the probability maps directly. The pipeline tests use threshold networks (q = e^z / (e^z + 1),
z = 50 * (HU - 150) / 450) whose tumor card runs at 2 mm on a 1 mm CT: a plate one voxel thick at 200 HU is
mixed with the 100 HU liver on the 2 mm grid (q < 0.5 there), and seen whole on a 1 mm grid (q = 0.9961).
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
from SmoothSegNetLib.inference.thresholds import add_fine_pass, split_by_thresholds
from SmoothSegNetLib.io.writers import write_volume
from SmoothSegNetLib.report.candidates import LesionThresholds, thresholds_from_report
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import threshold_options

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "SmoothSegNetLib/schemas/report.schema.json").read_text())
GEOMETRY = Geometry.create((10, 10, 20), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
PLATE_Q = 0.9961  # 1 / (1 + exp(-50 * (200 - 150) / 450))


def _maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first pass's q, the fine pass's q and the context on a 10 x 10 x 20 grid ([k, j, i]).

    First pass: a lesion A (q 0.9, 27 voxels) and a component under the volume floor D (q 0.6, 8 voxels).
    Fine pass: A again, grown by one voxel (touches A); D grown (holds D); B (q 0.8 with one voxel of 0.99, 36
    voxels: mean 0.8053); C (q 0.95, 12 voxels); S (q 0.7, 2 voxels: 0.002 ml); E (q 0.9) outside the context.
    """
    q = np.zeros((10, 10, 20), np.float32)
    q[2:5, 2:5, 2:5] = 0.9  # A
    q[7:9, 2:4, 7:9] = 0.6  # D
    fine = np.zeros_like(q)
    fine[2:5, 2:5, 2:6] = 0.9  # A and one more slab
    fine[6:9, 1:5, 6:10] = 0.7  # D grown
    fine[2:5, 2:5, 10:14] = 0.8  # B
    fine[3, 3, 12] = 0.99  # B's peak, above C's
    fine[6:8, 6:8, 15:18] = 0.95  # C
    fine[2, 8, 18:20] = 0.7  # S
    fine[0, 8:10, 0:2] = 0.9  # E
    context = np.ones(q.shape, bool)
    context[0, :, :] = False
    return q, fine, context


def _split(q: np.ndarray, context: np.ndarray) -> tuple[np.ndarray, object]:
    thresholds = LesionThresholds(min_lesion_ml=0.01, min_lesion_ml_source="cli")
    lesions, _confidence, candidates = split_by_thresholds((q >= 0.5) & context, q, GEOMETRY, thresholds)
    return lesions, candidates


def test_fine_pass_components_touching_no_lesion_or_candidate_are_added_with_their_own_confidence() -> None:
    q, fine, context = _maps()
    lesions, candidates = _split(q, context)
    assert int((lesions == 1).sum()) == 27 and candidates.count == 1  # A; D under 0.01 ml
    merged = add_fine_pass(candidates, q, fine, context, lesions, GEOMETRY, min_ml=0.005)
    # B (36 voxels), C (12), D (8): A's fine component touches A, D's holds D, S is under 0.005 ml, E outside.
    assert [int((merged.instances == n).sum()) for n in (1, 2, 3)] == [36, 12, 8]
    assert dict(merged.reasons) == {1: "fine_pass", 2: "fine_pass", 3: "below_min_lesion_ml"}
    # The fine pass's own mean probability for its components; D keeps the first pass's.
    assert merged.confidence == {1: pytest.approx(0.8053, abs=1e-4), 2: pytest.approx(0.95), 3: pytest.approx(0.6)}
    assert (merged.instances[2:5, 2:5, 10:14] == 1).all() and not merged.instances[lesions > 0].any()
    with_small = add_fine_pass(candidates, q, fine, context, lesions, GEOMETRY, min_ml=0.0)
    assert with_small.count == 4 and int((with_small.instances == 4).sum()) == 2  # S


def test_limit_keeps_the_fine_components_with_the_highest_mean_probability() -> None:
    q, fine, context = _maps()
    lesions, candidates = _split(q, context)
    one = add_fine_pass(candidates, q, fine, context, lesions, GEOMETRY, min_ml=0.005, limit=1)
    # C (12 voxels, mean 0.95) is kept over the larger B (mean 0.8053, peak 0.99); D, a floor candidate, is not
    # counted.
    assert dict(one.reasons) == {1: "fine_pass", 2: "below_min_lesion_ml"}
    assert int((one.instances == 1).sum()) == 12 and one.confidence[1] == pytest.approx(0.95)
    fine[:] = np.where(fine > 0.5, 0.4, 0.0)  # nothing reaches 0.5 on the fine grid
    assert add_fine_pass(candidates, q, fine, context, lesions, GEOMETRY) is candidates


def _ct(reflect: bool = False) -> CTVolume:
    a = np.full((20, 30, 40), -500, np.int16)
    a[2:18, 3:27, 3:37] = 100  # liver
    a[4:8, 6:12, 6:16] = 220  # a lesion both passes find (240 voxels)
    a[9:17, 14:22, 27] = 200  # the plate: 8 x 8 voxels, one thick along i
    geometry = Geometry.create(a.shape, (1.0, 1.0, 1.0), (10.0, -20.0, 30.0))
    if reflect:  # the same patient stored with i running right to left
        a = a[:, :, ::-1].copy()
        geometry = Geometry.create(a.shape, (1.0, 1.0, 1.0), (10.0 + 39.0, -20.0, 30.0), np.diag([-1.0, 1.0, 1.0]))
    return CTVolume(a, geometry)


def _options(tmp_path: Path, **changes: object) -> SegmentOptions:
    post = {"min_lesion_ml": 0.05, "candidate_fine_spacing_mm": 1.0}
    return threshold_options(tmp_path, post, [2.0, 2.0, 2.0], **changes)


@pytest.mark.parametrize("reflect", [False, True])
def test_the_first_pass_misses_the_plate_and_the_fine_pass_lists_it_in_place(tmp_path: Path, reflect: bool) -> None:
    ct = _ct(reflect)
    off = Segmenter(_options(tmp_path, candidate_fine_spacing_mm=0.0, probability_map=True))(ct)
    plate = np.zeros(ct.geometry.shape_kji, bool)
    plate[9:17, 14:22, 12 if reflect else 27] = True
    assert off.candidates is not None and off.candidates.count == 0
    assert float(off.probability["tumor"][plate].max()) < 0.5  # type: ignore[index]  # the 2 mm grid mixes it
    assert len(off.confidence) == 1
    on = Segmenter(_options(tmp_path))(ct)
    assert on.thresholds.candidate_fine_spacing_mm == 1.0 and on.thresholds.candidate_fine_spacing_mm_source == "card"
    assert on.candidates is not None and dict(on.candidates.reasons) == {1: "fine_pass"}
    assert np.array_equal(on.candidates.instances == 1, plate)
    assert on.candidates.confidence[1] == pytest.approx(PLATE_Q, abs=1e-4)
    # Never counted: the lesions and the labelmap are those of the first pass.
    assert np.array_equal(on.lesions, off.lesions) and np.array_equal(on.labelmap, off.labelmap)
    assert (on.labelmap[plate] == 1).all()


def test_segment_reports_the_fine_pass_and_reads_it_back(tmp_path: Path) -> None:
    write_volume(tmp_path / "ct.nrrd", _ct())
    result = run_case(
        Case(tmp_path / "ct.nrrd", tmp_path / "out"), Segmenter(_options(tmp_path)), skip_plausibility_check=True
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["thresholds"]["candidate_fine_spacing_mm"] == 1.0
    assert report["thresholds"]["source"]["candidate_fine_spacing_mm"] == "card"
    # The plate is not in the burden: only the first pass's lesion (its 2 mm mask mapped back) is counted.
    assert report["tumor_burden"]["count"] == 1 and not result.lesions[9:17, 14:22, 27].any()
    assert report["tumor_burden"]["total_volume_ml"] == pytest.approx(np.count_nonzero(result.lesions) / 1000.0)
    [entry] = report["candidates"]
    assert entry["reason"] == "fine_pass" and entry["volume_ml"] == pytest.approx(0.064)
    assert entry["confidence"] == pytest.approx(PLATE_Q, abs=1e-4)
    assert entry["centroid_lps_mm"] == [10.0 + 27.0, -20.0 + 17.5, 30.0 + 12.5]
    assert thresholds_from_report(report) == result.thresholds


@pytest.mark.parametrize("bad", [0.4, 11.0, -1.0, float("nan")])
def test_bad_fine_spacing_is_refused(bad: float) -> None:
    with pytest.raises(InputError, match=r"--candidate-fine-spacing must be 0 \(off\) or a spacing in \[0.5, 10\] mm"):
        SegmentOptions(candidate_fine_spacing_mm=bad)


def test_cli_refuses_a_bad_fine_spacing_with_one_line_and_zero_turns_it_off(tmp_path: Path) -> None:
    write_volume(tmp_path / "ct.nrrd", _ct())
    bad = run_cli("segment", str(tmp_path / "ct.nrrd"), "-o", str(tmp_path / "out"), "--candidate-fine-spacing", "0.2")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --candidate-fine-spacing must be 0 (off) or a spacing in [0.5, 10] mm, got 0.2"
    ]
    assert not (tmp_path / "out").exists()
    options = _options(tmp_path)
    off = run_cli(
        "segment", str(tmp_path / "ct.nrrd"), "-o", str(tmp_path / "off"), "--liver-model", options.liver_model,
        "--tumor-model", options.tumor_model, "--candidate-fine-spacing", "0", "--skip-plausibility-check",
    )  # fmt: skip
    assert off.returncode == 0, off.stderr
    report = json.loads((tmp_path / "off" / "report.json").read_text())
    assert report["thresholds"]["candidate_fine_spacing_mm"] == 0.0
    assert report["thresholds"]["source"]["candidate_fine_spacing_mm"] == "cli" and report["candidates"] == []


def test_the_fine_pass_reports_progress_as_the_tumor_stage_and_never_goes_back(tmp_path: Path) -> None:
    from SmoothSegNetLib.progress import CASE_STAGES

    seen: list[tuple[str, float]] = []
    Segmenter(_options(tmp_path))(_ct(), lambda stage, fraction, message="": seen.append((stage, fraction)))
    # Every stage is one the case progress bar knows (an unknown one would make the bar jump to its own 0..1).
    assert {stage for stage, _ in seen} <= set(CASE_STAGES)
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # The tumor stage has 0.5..0.98 of the segmentation; its first pass (one whole-volume window here) ends a
    # quarter of the way, at 0.62, and the fine pass takes the rest, to 0.98.
    tumor = [f for s, f in seen if s == "tumor"]
    assert tumor == pytest.approx([0.5 + 0.48 * 0.25, 0.98])
