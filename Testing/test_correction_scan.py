"""Issue 16 (review list): the liver scan finds lesions the tumor network never saw and lists them for review.

The synthetic liver is 100 HU with Gaussian noise (sigma 4 HU, seeded) on an anisotropic grid; a dark ball
(radius 6 mm, 65 HU) is labelled liver (the network missed it), a bright lesion is labelled and numbered (the
network found it), and a bright tube (a vessel, 160 HU, radius 2 mm) crosses the liver. Unit tests call the scan
directly; the pipeline tests use threshold networks (tumor: HU >= 150), which never see the dark ball.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import run_cli
from scipy import ndimage

from SmoothSegNetLib.correction.scan import (
    SCAN_FEATURES,
    SCAN_FILE,
    ScanSettings,
    blob_seeds,
    default_scan_settings,
    findings_score_map,
    scan_findings,
    scan_liver,
    small_blob,
)
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.evaluation.scan_candidates import collect_seed, fit_file, labelled, main, outcome, positive
from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.inference.boosted_trees import BoostedTrees
from SmoothSegNetLib.inference.cases import Case, run_case
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.inference.thresholds import add_scan_findings, split_by_thresholds
from SmoothSegNetLib.io.writers import write_volume
from SmoothSegNetLib.report.candidates import LesionThresholds, thresholds_from_report
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import threshold_options

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "SmoothSegNetLib/schemas/report.schema.json").read_text())
SPACING_IJK = (0.8, 0.8, 2.0)
SHAPE_KJI = (30, 90, 90)
ORIGIN = (-20.0, 35.0, 100.0)
BALL_KJI = (15.0, 55.0, 30.0)  # voxel index of the hidden ball's centre
BALL_RADIUS_MM = 6.0


def _distance_mm(shape: tuple[int, ...], centre: tuple[float, ...]) -> np.ndarray:
    spacing_kji = np.array(SPACING_IJK[::-1])
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum(((g - c) * d) ** 2 for g, c, d in zip(grids, centre, spacing_kji)))


def _case(reflect: bool = False) -> tuple[CTVolume, np.ndarray, np.ndarray, np.ndarray]:
    """CT, labelmap, lesions and the hidden ball's mask ([k, j, i]); reflected: i runs right to left."""
    rng = np.random.default_rng(5)
    hu = np.full(SHAPE_KJI, -100.0, np.float32)
    liver = np.zeros(SHAPE_KJI, bool)
    liver[3:27, 8:82, 8:82] = True
    hu[liver] = 100.0
    ball = _distance_mm(SHAPE_KJI, BALL_KJI) <= BALL_RADIUS_MM
    hu[ball] = 65.0
    found = _distance_mm(SHAPE_KJI, (15.0, 25.0, 62.0)) <= 7.0
    hu[found] = 200.0
    kk, jj = np.ogrid[0 : SHAPE_KJI[0], 0 : SHAPE_KJI[1]]
    across = np.sqrt(((kk - 10) * SPACING_IJK[2]) ** 2 + ((jj - 30) * SPACING_IJK[1]) ** 2) <= 2.0
    tube = across[:, :, None] & (np.arange(SHAPE_KJI[2]) > 40)[None, None, :]
    hu[tube & liver] = 160.0
    hu += rng.normal(0.0, 4.0, SHAPE_KJI).astype(np.float32)
    labels = np.where(liver, 1, 0).astype(np.uint8)
    labels[found] = 2
    lesions = found.astype(np.uint16)
    geometry = Geometry.create(SHAPE_KJI, SPACING_IJK, ORIGIN)
    if reflect:
        hu, labels, lesions, ball = (a[:, :, ::-1].copy() for a in (hu, labels, lesions, ball))
        origin = (ORIGIN[0] + (SHAPE_KJI[2] - 1) * SPACING_IJK[0], ORIGIN[1], ORIGIN[2])
        geometry = Geometry.create(SHAPE_KJI, SPACING_IJK, origin, np.diag([-1.0, 1.0, 1.0]))
    return CTVolume(np.rint(hu).astype(np.int16), geometry), labels, lesions, ball


def _centroid_lps(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    return geometry.index_to_lps(np.argwhere(mask).mean(axis=0)[::-1])


def _full(finding, shape: tuple[int, ...]) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.zeros(shape, bool)
    out[finding.box] = finding.mask
    return out


def test_the_bundled_scan_finds_the_hidden_ball_first_and_keeps_away_from_the_lesion() -> None:
    ct, labels, lesions, ball = _case()
    [first, *rest] = scan_liver(ct.array, ct.geometry, labels, lesions, 3)
    mask = _full(first, ball.shape)
    # A review candidate, grown on the coarse grid: mostly inside the ball, over half of it, centred on it.
    assert np.count_nonzero(mask & ball) >= 0.75 * mask.sum() and np.count_nonzero(mask & ball) >= 0.5 * ball.sum()
    true_centre = ct.geometry.index_to_lps(np.array(BALL_KJI[::-1]))
    assert np.linalg.norm(_centroid_lps(mask, ct.geometry) - true_centre) < 1.5
    assert 0.0 < first.score < 1.0 and all(f.score <= first.score for f in rest)
    # No finding outside the liver or within one voxel (26-neighbours) of the lesion the network found.
    grown = ndimage.binary_dilation(lesions > 0, structure=np.ones((3, 3, 3), bool))
    for f in (first, *rest):
        full = _full(f, ball.shape)
        assert (labels[full] == 1).all() and not (full & grown).any()


def test_a_reflected_grid_finds_the_same_ball_in_the_same_place() -> None:
    ct, labels, lesions, ball = _case()
    flipped, f_labels, f_lesions, _ = _case(reflect=True)
    [a] = scan_liver(ct.array, ct.geometry, labels, lesions, 1)
    [b] = scan_liver(flipped.array, flipped.geometry, f_labels, f_lesions, 1)
    ca, cb = _centroid_lps(_full(a, ball.shape), ct.geometry), _centroid_lps(_full(b, ball.shape), flipped.geometry)
    # The coarse blocks start at the liver's first voxel either way; here the liver spans 74 voxels along i
    # (an even number of 2-voxel blocks), so the blocks hold the same voxels and the masks mirror exactly.
    assert np.allclose(ca, cb, atol=1e-6)
    assert np.array_equal(_full(a, ball.shape)[:, :, ::-1], _full(b, ball.shape))
    assert a.score == pytest.approx(b.score, abs=1e-9)


def test_the_coarse_grid_averages_whole_voxels_and_maps_back_to_whole_blocks() -> None:
    ct, labels, lesions, _ball = _case()
    settings = replace(default_scan_settings(), model=None)
    [first, *_] = scan_findings(ct.array, ct.geometry, labels, lesions, settings)
    # 0.8 mm in-plane -> blocks of 2 voxels (1.6 mm); 2 mm slices -> 1. The liver starts at j = i = 8 (even
    # offsets from it), so every finding is a union of 1 x 2 x 2 blocks aligned on the liver's first voxel.
    full = _full(first, SHAPE_KJI)
    blocks = full[:, 8:82, 8:82].reshape(30, 37, 2, 37, 2)
    assert (blocks.all(axis=(2, 4)) == blocks.any(axis=(2, 4))).all()


def test_seeds_on_a_flat_liver_are_none_and_a_ball_is_the_strongest() -> None:
    spacing = np.array([2.0, 0.8, 0.8])
    liver = np.ones((20, 60, 60), bool)
    flat = np.full(liver.shape, 100.0, np.float32)
    assert blob_seeds(flat, liver, np.zeros_like(liver), spacing, ScanSettings()) == []
    dark = flat.copy()
    dark[_distance_mm_kji(liver.shape, (10, 30, 30), spacing) <= 5.0] = 60.0
    [seed, *_] = blob_seeds(dark, liver, np.zeros_like(liver), spacing, ScanSettings())
    assert seed.voxel == (10, 30, 30) and not seed.bright
    assert seed.ratio_small > 0.5  # a ball: its three curvatures are alike


def _distance_mm_kji(shape: tuple[int, ...], centre: tuple[float, ...], spacing_kji: np.ndarray) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum(((g - c) * d) ** 2 for g, c, d in zip(grids, centre, spacing_kji)))


def test_no_liver_or_no_limit_gives_nothing_and_mismatched_grids_are_refused() -> None:
    ct, labels, lesions, _ball = _case()
    assert scan_liver(ct.array, ct.geometry, np.zeros_like(labels), np.zeros_like(lesions), 3) == []
    assert scan_liver(ct.array, ct.geometry, labels, lesions, 0) == []
    with pytest.raises(InputError, match="one grid"):
        scan_liver(ct.array[:-1], ct.geometry, labels, lesions, 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid_mm": 0}, "grid_mm must be a finite number > 0"),
        ({"seeds": -1}, "seeds must be an integer >= 0"),
        ({"scales_mm": []}, "scales_mm must be numbers"),
        ({"edge_mm": float("nan")}, "edge_mm must be a finite number >= 0"),
        ({"small_radius_mm": -1}, "small_radius_mm must be a finite number >= 0"),
        ({"small_min_ml": "0.1"}, "small_min_ml must be a finite number >= 0"),
        ({"colour": 1}, "unknown scan settings"),
        ({"model": {"features": ["nope"], "centre": [0], "scale": [1], "weights": [1], "intercept": 0}}, "nope"),
    ],
)
def test_bad_scan_settings_are_refused(change: dict[str, object], message: str) -> None:
    data = json.loads(SCAN_FILE.read_text())
    with pytest.raises(InputError, match=message):
        ScanSettings.from_dict({**data, **change})


def test_the_bundled_settings_load_with_boosted_trees_of_known_features_fitted_on_training_seeds() -> None:
    data = json.loads(SCAN_FILE.read_text())
    settings = default_scan_settings()
    assert isinstance(settings.model, BoostedTrees) and set(settings.model.features) <= set(SCAN_FEATURES)
    # Fitted on training seeds only: no tuning (2004-2063) or held-out (3000-) seed.
    assert "Fitted on training phantoms 1100-1599 (500 cases)" in data["tuning"]
    assert "boosted trees" in data["tuning"] and "20" not in data["tuning"].split("phantoms ")[1][:2]


def test_scan_findings_are_added_after_the_floors_best_score_first_never_on_a_lesion_or_candidate() -> None:
    geometry = Geometry.create((10, 10, 20), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    q = np.zeros((10, 10, 20), np.float32)
    q[2:5, 2:5, 2:5] = 0.9  # a lesion
    q[7:9, 2:4, 7:9] = 0.6  # under the volume floor: a candidate
    thresholds = LesionThresholds(min_lesion_ml=0.01, min_lesion_ml_source="cli")
    lesions, _confidence, candidates = split_by_thresholds(q >= 0.5, q, geometry, thresholds)
    score = np.zeros_like(q)
    score[2:5, 2:5, 5:8] = 0.9  # touches the lesion: never
    score[7:9, 1:4, 6:9] = 0.8  # holds the candidate: listed once, as the floor's
    score[2:5, 6:9, 12:15] = 0.3  # B
    score[6:8, 6:8, 15:18] = 0.6  # C
    context = np.ones(q.shape, bool)
    merged = add_scan_findings(candidates, q, score, context, lesions, geometry, 0.005, limit=1)
    # Numbered again by decreasing volume: C (12 voxels) before the floor's candidate (8).
    assert dict(merged.reasons) == {1: "ct_scan", 2: "below_min_lesion_ml"}
    assert np.array_equal(merged.instances == 1, score == 0.6)
    assert np.array_equal(merged.instances == 2, candidates.instances == 1)
    assert merged.confidence[1] == pytest.approx(0.6)
    both = add_scan_findings(candidates, q, score, context, lesions, geometry, 0.005, limit=None)
    assert sorted(both.reasons.values()) == ["below_min_lesion_ml", "ct_scan", "ct_scan"]
    assert sorted(round(both.confidence[n], 4) for n, r in both.reasons.items() if r == "ct_scan") == [0.3, 0.6]


def test_the_score_map_holds_each_findings_score_and_a_floor_for_zero() -> None:
    ct, labels, lesions, _ball = _case()
    settings = replace(default_scan_settings(), model=None)
    findings = scan_findings(ct.array, ct.geometry, labels, lesions, settings)[:2]
    score = findings_score_map(findings, SHAPE_KJI)
    assert (score > 0).sum() == sum(int(f.mask.sum()) for f in findings)
    assert float(score.min()) == 0.0 and 0 < float(score[score > 0].min()) <= 1e-6


def _options(tmp_path: Path, **changes: object) -> SegmentOptions:
    post = {"min_lesion_ml": 0.05, "candidate_scan": 2}
    return threshold_options(tmp_path, post, [2.0, 2.0, 2.0], **changes)


@pytest.mark.parametrize("reflect", [False, True])
def test_the_pipeline_lists_the_ball_the_network_never_saw_in_place(tmp_path: Path, reflect: bool) -> None:
    ct, _labels, _lesions, ball = _case(reflect)
    off = Segmenter(_options(tmp_path, candidate_scan=0))(ct)
    on = Segmenter(_options(tmp_path))(ct)
    assert off.thresholds.candidate_scan == 0 and off.thresholds.candidate_scan_source == "cli"
    assert on.thresholds.candidate_scan == 2 and on.thresholds.candidate_scan_source == "card"
    assert not (off.labelmap[ball] == 2).any()  # the threshold network never sees the dark ball
    assert on.candidates is not None
    scan = [n for n, r in on.candidates.reasons.items() if r == "ct_scan"]
    hit = [n for n in scan if (on.candidates.instances == n)[ball].any()]
    assert len(scan) <= 2 and len(hit) == 1
    centre = ct.geometry.index_to_lps(
        np.array([SHAPE_KJI[2] - 1 - BALL_KJI[2] if reflect else BALL_KJI[2], BALL_KJI[1], BALL_KJI[0]])
    )
    assert np.linalg.norm(_centroid_lps(on.candidates.instances == hit[0], ct.geometry) - centre) < 1.5
    # Never counted: the lesions and the labelmap are the network's.
    assert np.array_equal(on.lesions, off.lesions) and np.array_equal(on.labelmap, off.labelmap)


def test_segment_reports_the_scan_and_reads_it_back(tmp_path: Path) -> None:
    ct, *_ = _case()
    write_volume(tmp_path / "ct.nrrd", ct)
    result = run_case(
        Case(tmp_path / "ct.nrrd", tmp_path / "out"), Segmenter(_options(tmp_path)), skip_plausibility_check=True
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["thresholds"]["candidate_scan"] == 2 and report["thresholds"]["source"]["candidate_scan"] == "card"
    scan = [c for c in report["candidates"] if c["reason"] == "ct_scan"]
    assert 1 <= len(scan) <= 2 and all(0 < c["confidence"] < 1 for c in scan)
    assert report["tumor_burden"]["count"] == int(result.lesions.max())
    assert thresholds_from_report(report) == result.thresholds


@pytest.mark.parametrize("bad", [-1, 21, True, 2.5])
def test_a_bad_scan_limit_is_refused(bad: object) -> None:
    with pytest.raises(InputError, match=r"--candidate-scan must be a whole number of findings in \[0, 20\]"):
        SegmentOptions(candidate_scan=bad)  # type: ignore[arg-type]


def test_cli_refuses_a_bad_scan_limit_with_one_line(tmp_path: Path) -> None:
    ct, *_ = _case()
    write_volume(tmp_path / "ct.nrrd", ct)
    bad = run_cli("segment", str(tmp_path / "ct.nrrd"), "-o", str(tmp_path / "out"), "--candidate-scan", "25")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --candidate-scan must be a whole number of findings in [0, 20] (0 = off), got 25"
    ]
    assert not (tmp_path / "out").exists()


def test_the_evaluation_counts_missed_lesions_touched_by_the_best_findings() -> None:
    case = {
        "seed": 1,
        "truth": [
            {"id": 1, "long_axis_mm": 8.0, "found": False},
            {"id": 2, "long_axis_mm": 15.0, "found": False},
            {"id": 3, "long_axis_mm": 30.0, "found": True},
        ],
        "findings": [{"hits": []}, {"hits": [2]}, {"hits": [3]}, {"hits": [1]}],
    }
    assert [positive(case, f) for f in case["findings"]] == [False, True, False, True]
    top2 = outcome([case], [[0.9, 0.8, 0.7, 0.1]], 2)
    assert top2["caught"] == {"<10 mm": 0, "10-20 mm": 1} and top2["missed"] == {"<10 mm": 1, "10-20 mm": 1}
    assert (top2["kept"], top2["false"]) == (2, 1)
    every = outcome([case], [[0.9, 0.8, 0.7, 0.1]], 4)
    assert every["caught"] == {"<10 mm": 1, "10-20 mm": 1} and (every["kept"], every["false"]) == (4, 1)


def test_growing_where_no_liver_lies_within_reach_finds_nothing_and_warns_nothing() -> None:
    """A seed whose window holds liver only in its far corners (beyond the profile's reach): no liver value to
    compare with. It was an all-NaN median (a RuntimeWarning, then a region made from NaN edges)."""
    import warnings

    from SmoothSegNetLib.correction.grow import region_grow
    from SmoothSegNetLib.correction.settings import default_settings

    spacing = np.array([1.0, 1.0, 1.0])
    hu = np.random.default_rng(1).normal(100.0, 5.0, (81, 81, 81)).astype(np.float32)
    allowed = np.zeros(hu.shape, bool)
    allowed[:6, :6, :6] = True  # a corner block, 60+ mm from the centre: beyond the 40 mm reach
    allowed[40, 40, 40] = True  # the seed alone (its in-plane edge, left out of the statistics)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert region_grow(hu, allowed, (40, 40, 40), spacing, default_settings()) is None


def test_the_panel_has_words_for_every_candidate_reason() -> None:
    from SmoothSegNetLib.report.candidates import DropReason
    from SmoothSegNetLib.slicer_support.lesion_table import CANDIDATE_REASON_TEXT, candidate_reason_text

    assert set(CANDIDATE_REASON_TEXT) == {r.value for r in DropReason}
    assert candidate_reason_text("ct_scan").startswith("CT scan") and candidate_reason_text("new_code") == "new_code"


def test_the_pipeline_ranks_every_finding_so_one_on_a_floor_candidate_leaves_room(tmp_path: Path) -> None:
    # A bright ball (radius 5 mm, 0.5 ml) under the card's 1 ml floor is a review candidate of the floor, and the
    # scan finds it too. The pipeline's scan hands on every finding it scored, not the card's number, so that one
    # hidden by a floor's candidate leaves its place to the next (the card's number counts the findings listed).
    ct, labels, lesions, ball = _case()
    hu = ct.array.copy()
    bright = _distance_mm(SHAPE_KJI, (15.0, 60.0, 62.0)) <= 5.0
    hu[bright] = 210
    options = threshold_options(tmp_path, {"min_lesion_ml": 1.0, "candidate_scan": 1}, [2.0, 2.0, 2.0])
    result = Segmenter(options)(CTVolume(hu, ct.geometry))
    assert result.candidates is not None
    reasons = dict(result.candidates.reasons)
    floor = [n for n, r in reasons.items() if r == "below_min_lesion_ml"]  # the bright ball and the tube
    scan = [n for n, r in reasons.items() if r == "ct_scan"]
    assert any((result.candidates.instances == n)[bright].mean() > 0.8 for n in floor)
    assert len(scan) == 1 and (result.candidates.instances == scan[0])[ball].any()
    organ = labels > 0
    score = Segmenter.liver_scan(hu, ct.geometry, organ, lesions)
    components, count = ndimage.label(score > 0)
    assert count >= 2 and components[ball].any() and components[bright].any()
    assert len({round(float(v), 6) for v in score[score > 0]}) == count  # one score per finding


SMALL_KJI = (20.0, 70.0, 60.0)  # a dark ball of radius 3 mm: too small for the search's 4.5 mm edge test


def _with_small_ball(reflect: bool = False) -> tuple[CTVolume, np.ndarray, np.ndarray, np.ndarray]:
    ct, labels, lesions, _ball = _case()
    small = _distance_mm(SHAPE_KJI, SMALL_KJI) <= 3.0
    hu = ct.array.copy()
    hu[small] -= 40
    geometry = ct.geometry
    if reflect:
        hu, labels, lesions, small = (a[:, :, ::-1].copy() for a in (hu, labels, lesions, small))
        origin = (ORIGIN[0] + (SHAPE_KJI[2] - 1) * SPACING_IJK[0], ORIGIN[1], ORIGIN[2])
        geometry = Geometry.create(SHAPE_KJI, SPACING_IJK, origin, np.diag([-1.0, 1.0, 1.0]))
    return CTVolume(hu, geometry), labels, lesions, small


@pytest.mark.parametrize("reflect", [False, True])
def test_a_ball_too_small_for_the_search_is_a_small_finding_of_its_own_size(reflect: bool) -> None:
    ct, labels, lesions, small = _with_small_ball(reflect)
    off = replace(default_scan_settings(), model=None, small_radius_mm=0.0)
    assert not any(_full(f, SHAPE_KJI)[small].any() for f in scan_findings(ct.array, ct.geometry, labels, lesions, off))
    on = replace(off, small_radius_mm=5.0)
    [hit] = [f for f in scan_findings(ct.array, ct.geometry, labels, lesions, on) if _full(f, SHAPE_KJI)[small].any()]
    mask = _full(hit, SHAPE_KJI)
    assert hit.features["small"] == 1.0 and hit.features["contrast"] < -20
    # The ball (113 mm3) at half its depth after 1 mm smoothing: most of the finding is the ball, most of the
    # ball is found, and the finding is centred on it (a coarse block is 1.6 x 1.6 x 2 mm).
    assert np.count_nonzero(mask & small) >= 0.6 * mask.sum() and np.count_nonzero(mask & small) >= 0.6 * small.sum()
    centre = SMALL_KJI if not reflect else (SMALL_KJI[0], SMALL_KJI[1], SHAPE_KJI[2] - 1 - SMALL_KJI[2])
    true_centre = ct.geometry.index_to_lps(np.array(centre[::-1]))
    assert np.linalg.norm(_centroid_lps(mask, ct.geometry) - true_centre) < 1.0


def test_a_small_finding_on_a_larger_structure_is_cut_at_its_radius() -> None:
    spacing = np.array([2.0, 0.8, 0.8])
    smooth = np.zeros((20, 60, 60), np.float32)
    smooth[10] = -30.0  # a dark sheet one slice thick, darkest at (10, 30, 30)
    smooth[10, 30, 30] = -45.0
    allowed = np.ones(smooth.shape, bool)
    settings = replace(default_scan_settings(), small_radius_mm=4.0, small_min_ml=0.0)
    blob = small_blob(smooth, allowed, (10, 30, 30), False, spacing, settings)
    assert blob is not None and blob[10, 30, 30] and not blob[9].any() and not blob[11].any()
    i = np.nonzero(blob[10, 30])[0]
    assert (i.min(), i.max()) == (25, 35)  # 5 voxels of 0.8 mm = 4 mm each way, not the whole sheet
    assert not blob[10, 25, 25] and blob[10, 27, 27]  # a disc of 4 mm: its box's corner (5.7 mm) is out
    assert np.count_nonzero(blob) == np.count_nonzero(_distance_mm_kji((1, 11, 11), (0, 5, 5), spacing) <= 4.0)
    assert small_blob(smooth, allowed, (10, 30, 30), True, spacing, settings) is None  # a bright seed, dark CT
    assert small_blob(smooth, allowed, (10, 30, 30), False, spacing, replace(settings, small_min_ml=1.0)) is None


def test_air_in_the_liver_is_no_finding_however_lesion_like_its_shape() -> None:
    # A 3 mm pocket of air (-800 HU) where the small ball was: the blob detector sees it (the CT is clipped to
    # +-80 HU around the liver's median there), but a region 900 HU under its ring is no lesion.
    ct, labels, lesions, small = _with_small_ball()
    hu = ct.array.copy()
    hu[small] = -800
    settings = replace(default_scan_settings(), model=None, small_radius_mm=5.0)
    found = scan_findings(hu, ct.geometry, labels, lesions, settings)
    assert not any(_full(f, SHAPE_KJI)[small].any() for f in found)
    loose = scan_findings(hu, ct.geometry, labels, lesions, replace(settings, max_contrast_hu=2000.0))
    [air] = [f for f in loose if _full(f, SHAPE_KJI)[small].any()]
    assert air.features["abs_contrast"] > 500
    # The hidden 6 mm ball is found either way.
    assert any(_full(f, SHAPE_KJI)[_case()[3]].any() for f in found)


def test_the_fit_writes_the_settings_it_collected_with_and_a_model_that_ranks_lesions_first(tmp_path: Path) -> None:
    # Two synthetic cases: findings on a missed lesion have a stronger contrast than the rest.
    rng = np.random.default_rng(0)
    cases = []
    for seed in (10, 11):
        findings = []
        for n in range(40):
            on_lesion = n % 10 == 0
            row = {name: float(rng.normal()) for name in SCAN_FEATURES}
            row["abs_contrast"] = 40.0 + rng.normal(0, 3) if on_lesion else 10.0 + rng.normal(0, 3)
            findings.append({**row, "hits": [1] if on_lesion else []})
        cases.append({"seed": seed, "truth": [{"id": 1, "long_axis_mm": 12.0, "found": False}], "findings": findings})
    used = replace(default_scan_settings(), model=None, small_radius_mm=4.5, max_contrast_hu=120.0)
    path = tmp_path / "scan.json"
    fit_file(cases, ["abs_contrast"], 20.0, path, used)
    written = ScanSettings.from_dict(json.loads(path.read_text()))
    assert (written.small_radius_mm, written.max_contrast_hu, written.seeds) == (4.5, 120.0, used.seeds)
    assert written.model is not None and list(written.model.features) == ["abs_contrast"]
    assert written.model.score({"abs_contrast": 40.0}) > written.model.score({"abs_contrast": 10.0})
    assert "tuning phantoms 10-11" in json.loads(path.read_text())["tuning"]
    assert not list(tmp_path.glob("*.tmp"))  # written under a temporary name, then renamed


def test_labelled_findings_leave_out_those_only_on_large_missed_lesions() -> None:
    truth = [
        {"id": 1, "long_axis_mm": 12.0, "found": False},
        {"id": 2, "long_axis_mm": 40.0, "found": False},
        {"id": 3, "long_axis_mm": 15.0, "found": True},
    ]
    hits = [[1], [2], [1, 2], [3], []]
    case = {"seed": 1, "truth": truth, "findings": [{"hits": h, "n": n} for n, h in enumerate(hits)]}
    rows, labels = labelled([case], 25.0)
    # [2] only touches a missed lesion of 40 mm: left out; [3] touches a found one: negative.
    assert [r["n"] for r in rows] == [0, 2, 3, 4] and labels == [True, True, False, False]
    rows, labels = labelled([case])
    assert [r["n"] for r in rows] == [0, 1, 2, 3, 4] and labels == [True, True, True, False, False]
    assert labels == [positive(case, f) for f in case["findings"]]


def test_the_fit_on_training_phantoms_says_so_and_counts_the_rows_it_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cases = []
    for seed in (1100, 1101):
        findings = []
        for n in range(30):
            kind = n % 10  # 0: a small lesion (bright), 1: a large lesion (dark, left out), else nothing
            row = {name: float(rng.normal()) for name in SCAN_FEATURES}
            row["abs_contrast"] = {0: 40.0, 1: 5.0}.get(kind, 10.0) + float(rng.normal(0, 3))
            findings.append({**row, "hits": {0: [1], 1: [2]}.get(kind, [])})
        truth = [{"id": 1, "long_axis_mm": 12.0, "found": False}, {"id": 2, "long_axis_mm": 60.0, "found": False}]
        cases.append({"seed": seed, "truth": truth, "findings": findings})
    path = tmp_path / "scan.json"
    fit_file(cases, ["abs_contrast"], 20.0, path, max_long_mm=25.0, training=True)
    text = json.loads(path.read_text())["tuning"]
    assert "training phantoms 1100-1101 (2 cases)" in text and "54 findings, 6 on a lesion under 25 mm" in text
    written = ScanSettings.from_dict(json.loads(path.read_text()))
    assert written.model is not None
    # The count above fails if the large lesion's findings are kept (60 findings, 12 positive); the small
    # lesions' bright findings rank first.
    assert written.model.score({"abs_contrast": 40.0}) > written.model.score({"abs_contrast": 5.0})
    fit_file(cases, ["abs_contrast"], 20.0, path, training=True)  # every lesion a positive
    assert "60 findings, 12 on a lesion, by" in json.loads(path.read_text())["tuning"]


def test_a_training_phantom_is_scanned_with_its_true_liver_and_no_lesion_found(tmp_path: Path) -> None:
    from SmoothSegNetLib.evaluation.missed_lesions import evaluation_grid
    from SmoothSegNetLib.phantom import make_phantom

    seed = 1106
    record = collect_seed(seed, None, tmp_path, in_plane_factor=3.0)
    assert record is not None and (tmp_path / f"scan-{seed}.json").is_file()
    phantom = make_phantom(seed, *evaluation_grid(seed, 3.0))
    ids = sorted({int(v) - 99 for v in np.unique(phantom.tissues) if v >= 100})
    assert [t["id"] for t in record["truth"]] == ids and not any(t["found"] for t in record["truth"])
    # Large lesions, which the pipeline finds and the scan would keep clear of, are reached here.
    large = {t["id"] for t in record["truth"] if t["long_axis_mm"] >= 20.0}
    assert large and any(set(f["hits"]) & large for f in record["findings"])


def test_true_liver_collection_refuses_a_bad_grid_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "records"
    with pytest.raises(SystemExit) as stop:
        main(["--true-liver", "--in-plane-factor", "0.5", "--seeds", "1100:1101", "--out", str(out)])
    assert stop.value.code == 2 and "error:" in capsys.readouterr().err and not out.exists()
