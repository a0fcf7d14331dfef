"""Boosted trees as the liver scan's score model (SmoothSegNetLib/inference/boosted_trees.py).

A hand-made model is scored by hand (the split's ``<=`` included); the fit is checked against scikit-learn's own
predictions and on a pattern a logistic model cannot learn (positives in a band of one feature); bad models are
refused with a clear error, as settings files and from the command line of the evaluation.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from SmoothSegNetLib.correction.scan import SCAN_FEATURES, SCAN_FILE, ScanSettings, default_scan_settings
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.evaluation.lesion_classifier import auc
from SmoothSegNetLib.evaluation.scan_candidates import _write_settings, calibrate_file, cross_scores, fit_file, main
from SmoothSegNetLib.inference.boosted_trees import BoostedTrees, Tree, fit_boosted_trees, fit_calibration
from SmoothSegNetLib.inference.lesion_classifier import fit_logistic


def _hand_model() -> BoostedTrees:
    # Tree 1: hu <= 50 -> +1.0, else (contrast <= -20 -> 0.5, else -2.0). Tree 2: a single leaf, +0.25.
    first = Tree(
        feature=(0, -1, 1, -1, -1),
        threshold=(50.0, 0, -20.0, 0, 0),
        left=(1, 0, 3, 0, 0),
        right=(2, 0, 4, 0, 0),
        value=(0, 1.0, 0, 0.5, -2.0),
    )
    second = Tree(feature=(-1,), threshold=(0.0,), left=(0,), right=(0,), value=(0.25,))
    return BoostedTrees(features=("hu", "contrast"), baseline=-0.5, trees=(first, second), vocabulary=SCAN_FEATURES)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_a_hand_made_model_scores_each_path_by_hand() -> None:
    model = _hand_model()
    assert model.score({"hu": 30.0, "contrast": 99.0}) == pytest.approx(_sigmoid(-0.5 + 1.0 + 0.25), abs=1e-15)
    assert model.score({"hu": 50.0, "contrast": 99.0}) == pytest.approx(_sigmoid(0.75), abs=1e-15)  # <= goes left
    assert model.score({"hu": 50.5, "contrast": -20.0}) == pytest.approx(_sigmoid(-0.5 + 0.5 + 0.25), abs=1e-15)
    assert model.score({"hu": 80.0, "contrast": 10.0}) == pytest.approx(_sigmoid(-0.5 - 2.0 + 0.25), abs=1e-15)
    # Round trip through the file's JSON: the same model, the same scores.
    again = BoostedTrees.from_json(json.loads(json.dumps(model.to_json())), SCAN_FEATURES)
    assert again == model and again.score({"hu": 80.0, "contrast": 10.0}) == model.score({"hu": 80.0, "contrast": 10.0})


def _tree(*columns: list[float]) -> dict[str, list[float]]:
    return dict(zip(("feature", "threshold", "left", "right", "value"), columns))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "forest"}, "kind 'boosted_trees'"),
        ({"features": ["hu", "volume_in_cubits"]}, "unknown feature"),
        ({"baseline": float("nan")}, "baseline must be finite"),
        ({"trees": []}, "at least one feature and one tree"),
        ({"trees": [{"feature": [0], "threshold": [0.0], "left": [0], "right": [0]}]}, "needs features, baseline"),
        ({"trees": [_tree([2, -1, -1], [0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 2])]}, "splits on feature 2"),
        # Node 1 leads back to the root: a walk would never end.
        ({"trees": [_tree([0, 0, -1], [0, 0, 0], [1, 0, 0], [2, 2, 0], [0, 0, 1])]}, "children must be later nodes"),
        ({"trees": [_tree([0, -1], [0], [1, 0], [1, 0], [0, 1])]}, "same number"),
        # A child past the last node: the walk would index outside the tree.
        ({"trees": [_tree([0, -1], [0, 0], [1, 0], [2, 0], [0, 1])]}, "children must be later nodes"),
        # Indices are whole numbers as written: 1.9 is not node 1, and Infinity no node at all.
        ({"trees": [_tree([0, -1, -1], [0, 0, 0], [1.9, 0, 0], [2, 0, 0], [0, 1, 2])]}, "whole numbers, got 1.9"),
        ({"trees": [_tree([0, -1, -1], [0, 0, 0], [1, 0, 0], [math.inf, 0, 0], [0, 1, 2])]}, "whole numbers, got inf"),
        ({"trees": [_tree([0.7, -1, -1], [0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 2])]}, "whole numbers, got 0.7"),
        ({"trees": [_tree([0, -1, -1], [0, 0, 0], ["1", 0, 0], [2, 0, 0], [0, 1, 2])]}, "whole numbers, got '1'"),
    ],
)
def test_a_bad_model_is_refused_with_what_is_wrong(change: dict[str, object], message: str) -> None:
    data = {**_hand_model().to_json(), **change}
    with pytest.raises(ValueError, match=message):
        BoostedTrees.from_json(data, SCAN_FEATURES)
    settings = {**json.loads(SCAN_FILE.read_text())}
    with pytest.raises(InputError, match="scan setting model: .*" + message.split("'")[0]):
        ScanSettings.from_dict({**settings, "model": data})


def test_a_settings_file_with_trees_loads_them_and_scores_with_them() -> None:
    data = json.loads(SCAN_FILE.read_text())
    settings = ScanSettings.from_dict({**data, "model": _hand_model().to_json()})
    assert settings.model == _hand_model()
    assert settings.model is not None and settings.model.score({"hu": 30.0, "contrast": 0.0}) == pytest.approx(
        _sigmoid(0.75)
    )


def test_non_finite_features_are_not_scored() -> None:
    with pytest.raises(ValueError, match="finite"):
        _hand_model().score({"hu": float("nan"), "contrast": 0.0})


def _band_rows(n: int, seed: int) -> tuple[list[dict[str, float]], list[bool]]:
    # Positives are findings whose contrast lies in a band (|contrast - 30| < 10): neither the higher nor the lower
    # the better, which one weight per feature cannot express.
    rng = np.random.default_rng(seed)
    contrast = rng.uniform(-60, 120, n)
    depth = rng.uniform(0, 30, n)
    labels = [bool(abs(c - 30) < 10) for c in contrast]
    return [{"contrast": float(c), "depth": float(d)} for c, d in zip(contrast, depth)], labels


def test_the_fit_copies_scikit_learns_trees_exactly_and_learns_a_band() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rows, labels = _band_rows(2000, 0)
    model = fit_boosted_trees(rows, labels, ["contrast", "depth"], vocabulary=SCAN_FEATURES)
    test_rows, test_labels = _band_rows(500, 1)
    ours = np.array([model.score(r) for r in test_rows])
    x = np.array([[r["contrast"], r["depth"]] for r in rows])
    settings = {"learning_rate": 0.05, "max_iter": 100, "max_leaf_nodes": 15, "min_samples_leaf": 40}
    reference = HistGradientBoostingClassifier(
        **settings, l2_regularization=1.0, early_stopping=False, random_state=0
    ).fit(x, labels)
    theirs = reference.predict_proba(np.array([[r["contrast"], r["depth"]] for r in test_rows]))[:, 1]
    assert np.abs(ours - theirs).max() < 1e-12
    assert len(model.trees) == 100
    # The band is learned: the trees rank new findings almost perfectly, a logistic model no better than chance.
    logistic = fit_logistic(rows, labels, ["contrast", "depth"], 1.0, vocabulary=SCAN_FEATURES)
    assert auc(list(ours), test_labels) > 0.98
    assert auc([logistic.score(r) for r in test_rows], test_labels) < 0.75
    # The same rows give the same trees (no early stopping, no random split).
    assert fit_boosted_trees(rows, labels, ["contrast", "depth"], vocabulary=SCAN_FEATURES) == model


def test_fitting_needs_both_classes() -> None:
    rows, _ = _band_rows(50, 2)
    with pytest.raises(ValueError, match="both classes"):
        fit_boosted_trees(rows, [False] * 50, ["contrast"])
    with pytest.raises(ValueError, match="both classes"):
        fit_boosted_trees([], [], ["contrast"])
    # scikit-learn would learn a side for missing values that the copied trees cannot hold.
    labels = [n % 2 == 0 for n in range(50)]
    with pytest.raises(ValueError, match="finite features"):
        fit_boosted_trees([*rows[:49], {"contrast": float("nan")}], labels, ["contrast"])


def _band_cases() -> list[dict[str, Any]]:
    cases = []
    for seed in range(10, 16):
        rows, labels = _band_rows(300, seed)
        findings = [
            {**{name: 0.0 for name in SCAN_FEATURES}, **r, "hits": [n + 1] if y else []}
            for n, (r, y) in enumerate(zip(rows, labels))
        ]
        truth = [{"id": n + 1, "long_axis_mm": 12.0, "found": False} for n, y in enumerate(labels) if y]
        cases.append({"seed": seed, "truth": truth, "findings": findings})
    return cases


def test_the_evaluation_fits_trees_two_fold_and_writes_them_with_how_they_were_fitted(tmp_path: Path) -> None:
    cases = _band_cases()
    labels = [bool(f["hits"]) for c in cases for f in c["findings"]]
    trees = [s for case in cross_scores(cases, ["contrast", "depth"], 20.0, trees=True) for s in case]
    linear = [s for case in cross_scores(cases, ["contrast", "depth"], 20.0) for s in case]
    assert auc(trees, labels) > 0.98 and auc(linear, labels) < 0.75
    path = tmp_path / "scan.json"
    fit_file(cases, ["contrast", "depth"], 20.0, path, training=True, trees=True)
    data = json.loads(path.read_text())
    assert data["model"]["kind"] == "boosted_trees" and "--fit --trees" in data["tuning"]
    assert "boosted trees (100 iterations, learning rate 0.05, at most 15 leaves" in data["tuning"]
    written = ScanSettings.from_dict(data)
    assert isinstance(written.model, BoostedTrees)
    assert (
        written.model.score({"contrast": 30.0, "depth": 5.0})
        > 0.9
        > 0.1
        > written.model.score({"contrast": 100.0, "depth": 5.0})
    )
    # Everything else is the bundled settings, unchanged.
    bundled = default_scan_settings()
    assert (written.seeds, written.scales_mm, written.small_radius_mm) == (
        bundled.seeds,
        bundled.scales_mm,
        bundled.small_radius_mm,
    )


def test_a_calibrated_model_scores_by_hand_and_keeps_its_ranking() -> None:
    model = replace(_hand_model(), slope=0.5, offset=-1.0)
    # hu 80, contrast 10: z = -0.5 - 2.0 + 0.25 = -2.25.
    assert model.score({"hu": 80.0, "contrast": 10.0}) == pytest.approx(_sigmoid(0.5 * -2.25 - 1.0), abs=1e-15)
    points = [{"hu": hu, "contrast": c} for hu in (30.0, 80.0) for c in (-30.0, 10.0)]
    order = sorted(range(4), key=lambda n: _hand_model().score(points[n]))
    assert sorted(range(4), key=lambda n: model.score(points[n])) == order
    again = BoostedTrees.from_json(json.loads(json.dumps(model.to_json())), SCAN_FEATURES)
    assert (again.slope, again.offset) == (0.5, -1.0)
    with pytest.raises(ValueError, match="slope > 0"):
        BoostedTrees.from_json({**model.to_json(), "calibration": {"slope": 0.0, "offset": 0.0}}, SCAN_FEATURES)


def test_the_calibration_recovers_a_known_slope_and_offset_and_refuses_a_backward_ranking() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(0.0, 2.0, 20000)
    labels = list(rng.random(20000) < 1.0 / (1.0 + np.exp(-(0.6 * z - 1.5))))
    slope, offset = fit_calibration(list(z), labels)
    assert slope == pytest.approx(0.6, abs=0.05) and offset == pytest.approx(-1.5, abs=0.08)
    with pytest.raises(ValueError, match="do not rank"):
        fit_calibration(list(-z), labels)
    with pytest.raises(ValueError, match="both classes"):
        fit_calibration([0.0, 1.0], [True, True])


def test_the_evaluation_calibrates_trees_on_pipeline_findings_without_changing_their_order(tmp_path: Path) -> None:
    cases = _band_cases()
    fitted = tmp_path / "fitted.json"
    fit_file(cases[:3], ["contrast", "depth"], 20.0, fitted, training=True, trees=True)
    out = tmp_path / "calibrated.json"
    calibrate_file(cases[3:], fitted, out)
    before = ScanSettings.from_dict(json.loads(fitted.read_text())).model
    after = ScanSettings.from_dict(json.loads(out.read_text())).model
    assert isinstance(before, BoostedTrees) and isinstance(after, BoostedTrees)
    assert after.trees == before.trees and (after.slope, after.offset) != (1.0, 0.0)
    findings = [f for c in cases[3:] for f in c["findings"]]
    z = [before.log_odds(f) for f in findings]
    assert (after.slope, after.offset) == fit_calibration(z, [bool(f["hits"]) for f in findings])
    assert (
        np.argsort([after.score(f) for f in findings], kind="stable").tolist()
        == np.argsort([before.score(f) for f in findings], kind="stable").tolist()
    )
    assert "Calibrated on tuning phantoms 13-15 (3 cases" in json.loads(out.read_text())["tuning"]
    # A logistic model is not calibrated this way, and nothing is written.
    logistic = tmp_path / "logistic.json"
    fit_file(cases[:3], ["contrast"], 20.0, logistic)
    with pytest.raises(InputError, match="only a boosted-trees model"):
        calibrate_file(cases[3:], logistic, tmp_path / "never.json")
    assert not (tmp_path / "never.json").exists() and not list(tmp_path.glob("*.tmp"))


def test_calibrate_without_a_model_is_refused_before_anything_is_read_or_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--seeds", "2004:2006", "--out", str(tmp_path / "records"), "--calibrate", str(tmp_path / "c.json")])
    assert exit_info.value.code == 2 and "--calibrate needs --model" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_calibrate_with_a_logistic_model_is_refused_before_any_record_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logistic = tmp_path / "logistic.json"
    fit_file(_band_cases()[:2], ["contrast"], 20.0, logistic)
    before = logistic.read_bytes()
    records = tmp_path / "records"
    argv = ["--seeds", "2004:2006", "--out", str(records), "--model", str(logistic), "--calibrate"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, str(tmp_path / "c.json")])
    assert exit_info.value.code == 2 and "holds no boosted trees" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logistic.json"] and logistic.read_bytes() == before


def test_calibrate_on_findings_that_cannot_calibrate_is_an_error_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fitted = tmp_path / "fitted.json"
    fit_file(_band_cases()[:3], ["contrast", "depth"], 20.0, fitted, training=True, trees=True)
    before = fitted.read_bytes()
    # No case in the cache: no finding to calibrate on.
    argv = ["--seeds", "1:3", "--cache", str(tmp_path / "no-cache"), "--out", str(tmp_path / "records")]
    assert main([*argv, "--model", str(fitted), "--calibrate", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot calibrate") and "0 case(s), 0 finding(s)" in err and "Traceback" not in err
    # Findings, but none on a missed lesion.
    negatives = [{**c, "findings": [{**f, "hits": []} for f in c["findings"]]} for c in _band_cases()[3:]]
    with pytest.raises(InputError, match=r"cannot calibrate .* 900 finding"):
        calibrate_file(negatives, fitted, tmp_path / "c.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fitted.json"] and fitted.read_bytes() == before


def test_settings_that_do_not_load_are_not_written_and_leave_no_temporary_file(tmp_path: Path) -> None:
    data = {**json.loads(SCAN_FILE.read_text()), "model": {**_hand_model().to_json(), "baseline": "high"}}
    with pytest.raises((InputError, ValueError)):
        _write_settings(data, tmp_path / "scan.json")
    assert not list(tmp_path.iterdir())
