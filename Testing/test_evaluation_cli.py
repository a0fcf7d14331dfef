"""``smoothsegnet evaluate`` on labelmaps with hand-countable overlaps and lesions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from SmoothSegNetLib.evaluation import evaluate_case, recist_bin
from SmoothSegNetLib.evaluation.lesions import diameter_group, proportion_text, volume_group, wilson_interval
from SmoothSegNetLib.io.writers import write_labelmap
from SmoothSegNetLib.volume import Geometry
from Testing.conftest import run_cli

GEOMETRY = Geometry.create((20, 40, 40), spacing_mm=(5.0, 5.0, 5.0), origin_lps_mm=(10, -20, 30))


def _truth() -> np.ndarray:
    labels = np.zeros(GEOMETRY.shape_kji, dtype=np.uint8)
    labels[2:18, 2:38, 2:38] = 1  # liver
    labels[4:16, 5:30, 5:30] = 2  # big lesion: 12 x 25 x 25 voxels, 125 mm across in-plane
    labels[8:9, 34:35, 34:35] = 2  # small lesion: one voxel
    return labels


def _write_cases(root: Path) -> tuple[Path, Path]:
    truth_dir, pred_dir = root / "truth", root / "pred"
    truth = _truth()
    write_labelmap(truth_dir / "perfect.nrrd", truth, GEOMETRY)
    write_labelmap(pred_dir / "perfect.nrrd", truth, GEOMETRY)
    write_labelmap(truth_dir / "missed.nrrd", truth, GEOMETRY)
    pred = truth.copy()
    pred[8, 34, 34] = 1  # the small lesion is missed (called liver)
    pred[17, 36, 36] = 2  # and a false lesion appears
    (pred_dir / "missed").mkdir(parents=True)
    write_labelmap(pred_dir / "missed" / "segmentation.nrrd", pred, GEOMETRY)  # the layout of 'segment'
    return pred_dir, truth_dir


def test_size_groups_and_bins() -> None:
    assert [recist_bin(x) for x in (9.9, 10.0, 19.9, 20.0, 50.0, 50.1)] == [
        "<10 mm",
        "10-20 mm",
        "10-20 mm",
        "20-50 mm",
        "20-50 mm",
        ">50 mm",
    ]
    assert diameter_group(99.9) == "<10 cm" and diameter_group(100.0) == ">=10 cm"
    assert volume_group(499.9) == "<500 cm3" and volume_group(500.0) == ">=500 cm3"


def test_case_figures_by_hand() -> None:
    truth = _truth()
    pred = truth.copy()
    pred[8, 34, 34] = 1
    pred[17, 36, 36] = 2
    result = evaluate_case("c", pred, truth, GEOMETRY)
    big, small = 12 * 25 * 25, 1
    assert result.tumor.dice == pytest.approx(2 * big / (2 * big + small + 1))
    assert result.liver.dice == 1.0  # liver includes tumor: the liver mask did not change
    assert [r.detected for r in result.lesions] == [True, False]
    assert result.detection.recall == 0.5 and result.detection.precision == 0.5
    assert result.lesions[0].volume_ml == pytest.approx(big * 0.125)
    assert result.lesions[0].long_axis_mm > 100 and result.diameter_group == ">=10 cm"
    assert result.tumor_volume_ml == pytest.approx((big + small) * 0.125)
    assert result.volume_group == ">=500 cm3"  # 7501 voxels of 0.125 ml


def test_cli_writes_tables_and_plot(tmp_path: Path) -> None:
    pred_dir, truth_dir = _write_cases(tmp_path)
    out = tmp_path / "eval"
    done = run_cli("evaluate", "--pred", str(pred_dir), "--truth", str(truth_dir), "-o", str(out))
    assert done.returncode == 0, done.stderr
    with open(out / "cases.csv", newline="") as handle:
        cases = {row["case"]: row for row in csv.DictReader(handle)}
    assert cases["perfect"]["tumor_dice"] == "1.0000" and cases["perfect"]["liver_hd95_mm"] == "0.00"
    assert cases["missed"]["lesion_recall"] == "0.5000" and cases["missed"]["lesions_predicted"] == "2"
    with open(out / "lesions.csv", newline="") as handle:
        lesions = list(csv.DictReader(handle))
    assert [(r["case"], r["lesion"], r["detected"]) for r in lesions] == [
        ("missed", "1", "yes"),
        ("missed", "2", "no"),
        ("perfect", "1", "yes"),
        ("perfect", "2", "yes"),
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 2 and summary["liver_dice_mean"] == 1.0
    assert summary["lesion_recall"] == 0.75
    assert (out / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "detection recall" in done.stdout and "tumor Dice" in done.stdout
    # 3 of 4 reference lesions found, 3 of 4 predicted lesions true, each with its Wilson interval.
    assert done.stdout.count("0.750 (3/4; 95 % CI 0.301–0.954)") == 2, done.stdout


def test_wilson_interval_matches_the_textbook_values() -> None:
    # 0/10: [0, z^2 / (n + z^2)] = [0, 3.8415 / 13.8415]; 5/10: the symmetric [0.2366, 0.7634].
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    assert all(np.isnan(v) for v in wilson_interval(0, 0))
    assert proportion_text(7, 19) == "0.368 (7/19; 95 % CI 0.191–0.590)" and proportion_text(0, 0) == "–"


def test_missing_prediction_is_an_input_error(tmp_path: Path) -> None:
    pred_dir, truth_dir = _write_cases(tmp_path)
    write_labelmap(truth_dir / "extra.nrrd", _truth(), GEOMETRY)
    done = run_cli("evaluate", "--pred", str(pred_dir), "--truth", str(truth_dir), "-o", str(tmp_path / "o"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: --pred") and "no prediction for 1 reference case(s) (extra" in done.stderr
    assert not (tmp_path / "o").exists()


def test_prediction_on_another_grid_is_refused(tmp_path: Path) -> None:
    pred_dir, truth_dir = _write_cases(tmp_path)
    shifted = Geometry.create(GEOMETRY.shape_kji, GEOMETRY.spacing_mm, origin_lps_mm=(0, 0, 0))
    write_labelmap(pred_dir / "perfect.nrrd", _truth(), shifted)
    done = run_cli("evaluate", "--pred", str(pred_dir), "--truth", str(truth_dir))
    assert done.returncode == 2
    assert "case perfect: prediction" in done.stderr and "is not on the reference grid" in done.stderr
