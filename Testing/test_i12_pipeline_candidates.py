"""Issue 12 item 8: the lesion floors are stated in every report and what they dropped is listed as candidates.

Hand-computable lesions on a 1 mm grid with threshold networks (q = e^z / (e^z + 1), z = 50 * (HU - 150) / 450):
one lesion just above and one just below the volume floor (0.1 ml), one just above and one just below the
confidence floor (0.8).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import run_cli

from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.inference.cases import Case, run_case
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.io.writers import write_labelmap, write_volume
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "SmoothSegNetLib/schemas/report.schema.json").read_text())
ORIGIN = (10.0, -20.0, 30.0)


def _q(hu: float) -> float:
    z = 50 * (hu - 150) / 450
    return float(np.exp(z) / (np.exp(z) + 1))


# name -> (k, j, i slices, HU); voxels of 1 mm^3
BLOCKS = {
    "A": ((slice(4, 7), slice(6, 10), slice(6, 15)), 200),  # 3*4*9 = 108 voxels = 0.108 ml, q 0.996: lesion
    "B": ((slice(4, 7), slice(14, 18), slice(6, 14)), 200),  # 3*4*8 = 96 voxels = 0.096 ml: under 0.1 ml
    "C": ((slice(10, 15), slice(6, 11), slice(20, 25)), 170),  # 125 voxels, q = 0.902: lesion
    "D": ((slice(10, 15), slice(16, 21), slice(20, 25)), 160),  # 125 voxels, q = 0.752: under 0.8
}


def _ct() -> CTVolume:
    a = np.full((20, 30, 40), -500, np.int16)
    a[2:18, 3:27, 3:37] = 100
    for box, hu in BLOCKS.values():
        a[box] = hu
    return CTVolume(a, Geometry.create(a.shape, (1.0, 1.0, 1.0), ORIGIN))


def _centroid_lps(name: str) -> list[float]:
    k, j, i = BLOCKS[name][0]
    return [
        ORIGIN[0] + (i.start + i.stop - 1) / 2,
        ORIGIN[1] + (j.start + j.stop - 1) / 2,
        ORIGIN[2] + (k.start + k.stop - 1) / 2,
    ]


def _models(tmp_path: Path, card_confidence: float) -> SegmentOptions:
    liver = write_threshold_model(tmp_path / "liver", "liver", threshold_hu=50)
    post = {"postprocessing": {"min_lesion_ml": 0.5, "min_lesion_confidence": card_confidence}}
    tumor = write_threshold_model(tmp_path / "tumor", "tumor", threshold_hu=150, extra=post)
    return SegmentOptions(liver_model=str(liver), tumor_model=str(tumor), device="cpu", min_lesion_ml=0.1)


def test_segment_report_states_the_floors_and_lists_what_they_dropped(tmp_path: Path) -> None:
    write_volume(tmp_path / "ct.nrrd", _ct())
    segmenter = Segmenter(_models(tmp_path, card_confidence=0.8))  # volume floor from the option, confidence card
    result = run_case(Case(tmp_path / "ct.nrrd", tmp_path / "out"), segmenter, skip_plausibility_check=True)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["thresholds"] == {
        "min_lesion_ml": 0.1,
        "min_lesion_confidence": 0.8,
        "min_lesion_hu": None,
        "min_lesion_score": None,
        "candidate_probability": None,
        "candidate_fine_spacing_mm": None,
        "candidate_limit": None,
        "candidate_scan": None,
        "source": {
            "min_lesion_ml": "cli",
            "min_lesion_confidence": "card",
            "min_lesion_hu": "not_applied",
            "min_lesion_score": "not_applied",
            "candidate_probability": "not_applied",
            "candidate_fine_spacing_mm": "not_applied",
            "candidate_scan": "not_applied",
        },
    }
    # Lesions: C (125 voxels) then A (108); the burden counts only them.
    assert [e["voxel_count"] for e in report["lesions"]] == [125, 108]
    assert [e["centroid_lps_mm"] for e in report["lesions"]] == [_centroid_lps("C"), _centroid_lps("A")]
    assert report["tumor_burden"]["count"] == 2
    assert report["tumor_burden"]["total_volume_ml"] == pytest.approx(0.233)
    # Candidates: D (125 voxels, unsure) then B (96 voxels, small); given back to the liver in the labelmap.
    cand = report["candidates"]
    assert [c["id"] for c in cand] == [1, 2]
    assert [c["reason"] for c in cand] == ["below_min_lesion_confidence", "below_min_lesion_ml"]
    assert [c["volume_ml"] for c in cand] == [pytest.approx(0.125), pytest.approx(0.096)]
    assert [c["centroid_lps_mm"] for c in cand] == [_centroid_lps("D"), _centroid_lps("B")]
    assert cand[0]["confidence"] == pytest.approx(_q(160), abs=1e-4) and cand[1]["confidence"] == pytest.approx(
        _q(200), abs=1e-4
    )
    assert report["lesions"][0]["confidence"] == pytest.approx(_q(170), abs=1e-4)
    # D is C's shape, so the same long axis; B is A one voxel shorter along i.
    assert cand[0]["long_axis_mm"] == report["lesions"][0]["long_axis_mm"]
    assert cand[1]["long_axis_mm"] < report["lesions"][1]["long_axis_mm"]
    for name in ("B", "D"):
        assert (result.labelmap[BLOCKS[name][0]] == 1).all()
    assert result.candidates is not None and int((result.candidates.instances == 1).sum()) == 125
    # report.csv: the two lesions, then the two candidates with their reasons.
    with (tmp_path / "out" / "report.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["status"], r["reason"], r["volume_ml"]) for r in rows] == [
        ("lesion", "", "0.125"),
        ("lesion", "", "0.108"),
        ("candidate", "below_min_lesion_confidence", "0.125"),
        ("candidate", "below_min_lesion_ml", "0.096"),
    ]
    assert rows[2]["mean_hu"] == "" and rows[2]["centroid_l_mm"] == str(_centroid_lps("D")[0])


def test_floors_from_the_card_and_the_option_just_above_keeps_everything(tmp_path: Path) -> None:
    write_volume(tmp_path / "ct.nrrd", _ct())
    options = _models(tmp_path, card_confidence=0.75)  # 0.752 is just above: D becomes a lesion
    result = Segmenter(options)(_ct())
    assert result.thresholds.as_report()["source"] == {
        "min_lesion_ml": "cli",
        "min_lesion_confidence": "card",
        "min_lesion_hu": "not_applied",
        "min_lesion_score": "not_applied",
        "candidate_probability": "not_applied",
        "candidate_fine_spacing_mm": "not_applied",
        "candidate_scan": "not_applied",
    }
    assert sorted(int((result.lesions == n).sum()) for n in range(1, 4)) == [108, 125, 125]
    assert result.candidates is not None and list(result.candidates.reasons.values()) == ["below_min_lesion_ml"]
    # Without the option the card's 0.5 ml floor drops all four (each under 0.5 ml).
    card_only = Segmenter(SegmentOptions(liver_model=options.liver_model, tumor_model=options.tumor_model))(_ct())
    assert card_only.thresholds.min_lesion_ml == 0.5 and card_only.thresholds.min_lesion_ml_source == "card"
    assert card_only.lesions.max() == 0 and card_only.candidates is not None and card_only.candidates.count == 4


def test_report_command_lists_small_tumor_components_as_candidates(tmp_path: Path) -> None:
    ct = _ct()
    labels = np.zeros(ct.array.shape, np.uint8)
    labels[2:18, 3:27, 3:37] = 1
    for box, _ in BLOCKS.values():
        labels[box] = 2
    write_volume(tmp_path / "ct.nrrd", ct)
    write_labelmap(tmp_path / "labels.nrrd", labels, ct.geometry)
    args = ("report", str(tmp_path / "labels.nrrd"), "--image", str(tmp_path / "ct.nrrd"))
    result = run_cli(*args, "-o", str(tmp_path / "floor"), "--min-lesion-ml", "0.1")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "floor" / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["thresholds"] == {
        "min_lesion_ml": 0.1,
        "min_lesion_confidence": None,
        "min_lesion_hu": None,
        "min_lesion_score": None,
        "candidate_probability": None,
        "candidate_fine_spacing_mm": None,
        "candidate_limit": None,
        "candidate_scan": None,
        "source": {
            "min_lesion_ml": "cli",
            "min_lesion_confidence": "not_applied",
            "min_lesion_hu": "not_applied",
            "min_lesion_score": "not_applied",
            "candidate_probability": "not_applied",
            "candidate_fine_spacing_mm": "not_applied",
            "candidate_scan": "not_applied",
        },
    }
    assert [e["voxel_count"] for e in report["lesions"]] == [125, 125, 108]
    assert report["tumor_burden"]["total_volume_ml"] == pytest.approx(0.358)
    assert [(c["volume_ml"], c["reason"], c["confidence"]) for c in report["candidates"]] == [
        (pytest.approx(0.096), "below_min_lesion_ml", None)
    ]
    assert report["candidates"][0]["centroid_lps_mm"] == _centroid_lps("B")
    # Without the option: the default 0 ml, stated as such, no candidates.
    result = run_cli(*args, "-o", str(tmp_path / "plain"))
    assert result.returncode == 0, result.stderr
    plain = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert plain["thresholds"]["min_lesion_ml"] == 0.0 and plain["thresholds"]["source"]["min_lesion_ml"] == "default"
    assert plain["candidates"] == [] and plain["tumor_burden"]["count"] == 4


def test_candidate_map_numbers_by_decreasing_volume_and_keeps_each_reason() -> None:
    from SmoothSegNetLib.report.candidates import candidate_map

    components = np.zeros((5, 10, 10), np.int64)
    components[0, 0, 0:3] = 1  # 3 voxels
    components[2, 2, 0:5] = 2  # 5 voxels, first in raster order of the two 5-voxel ones
    components[4, 4, 0:2] = 3  # 2 voxels, kept (not dropped)
    components[4, 8, 0:5] = 4  # 5 voxels
    dropped = {1: "below_min_lesion_ml", 2: "below_min_lesion_confidence", 4: "below_min_lesion_ml"}
    candidates = candidate_map(components, dropped)
    assert [candidates.instances[2, 2, 0], candidates.instances[4, 8, 0], candidates.instances[0, 0, 0]] == [1, 2, 3]
    assert candidates.instances[4, 4, 0] == 0
    assert dict(candidates.reasons) == {
        1: "below_min_lesion_confidence",
        2: "below_min_lesion_ml",
        3: "below_min_lesion_ml",
    }
