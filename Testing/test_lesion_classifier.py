"""Issue 16: the lesion classifier's features (millimetres and HU, the same on any grid) and its logistic fit.

Every expected value is worked out by hand from the synthetic volumes below.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import run_cli

from SmoothSegNetLib.errors import InputError, ModelError
from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.inference.cases import Case, run_case
from SmoothSegNetLib.inference.lesion_classifier import LogisticModel, fit_logistic
from SmoothSegNetLib.inference.lesion_features import FEATURES, component_features
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.io.writers import write_volume
from SmoothSegNetLib.report.candidates import thresholds_from_report
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model

ROOT = Path(__file__).resolve().parents[1]

SPACING = (0.8, 0.8, 2.5)  # anisotropic: i, j in-plane, k thick slices


def _scene(direction: np.ndarray | None = None) -> tuple[Geometry, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 60 x 60 x 24 grid: liver (100 HU) filling the middle, a 40 HU ellipsoid (semi-axes 12, 6, 6 mm along i,
    j, k) at its centre (component 1), q 0.9 inside it and 0.1 elsewhere."""
    geometry = Geometry.create((24, 60, 60), SPACING, (0.0, 0.0, 0.0), direction)
    k, j, i = np.indices(geometry.shape_kji)
    x, y, z = (i - 29.5) * 0.8, (j - 29.5) * 0.8, (k - 11.5) * 2.5
    lesion = (x / 12.0) ** 2 + (y / 6.0) ** 2 + (z / 6.0) ** 2 <= 1.0
    liver = np.zeros(geometry.shape_kji, bool)
    liver[2:22, 5:55, 5:55] = True
    hu = np.where(liver, 100.0, -100.0).astype(np.float32)
    hu[lesion] = 40.0
    q = np.where(lesion, 0.9, 0.1).astype(np.float32)
    return geometry, lesion.astype(np.int32), q, hu, liver


def test_features_of_a_known_ellipsoid() -> None:
    geometry, components, q, hu, liver = _scene()
    f = component_features(components, q, hu, liver, geometry)[1]
    assert set(f) == set(FEATURES)
    volume_ml = components.sum() * 0.8 * 0.8 * 2.5 / 1000.0
    assert f["log_ml"] == pytest.approx(math.log10(volume_ml))
    assert volume_ml == pytest.approx(4 / 3 * math.pi * 12 * 6 * 6 / 1000.0, rel=0.05)  # the drawn ellipsoid
    assert (f["q_mean"], f["q_max"]) == pytest.approx((0.9, 0.9))
    # A flat liver: contrast exactly -60 HU, no noise (the ring's spread is floored at 1 HU).
    assert (f["hu"], f["ring_hu"], f["contrast"], f["noise"], f["cnr"], f["spread"]) == (40, 100, -60, 1, 60, 0)
    assert f["flat"] == pytest.approx(0.5, abs=0.03)  # 6 / 12
    assert f["thin"] == pytest.approx(0.5, abs=0.03)  # across slices: four slices of 2.5 mm (0.48)
    assert f["fill"] == pytest.approx(1.0, abs=0.05)
    # Centre (29.5, 29.5, 11.5) rounds to voxel (30, 30, 12): nearest liver edge is across slices, k 12 -> 22
    # (10 slices of 2.5 mm), against 25 voxels of 0.8 mm (20 mm) in-plane.
    assert f["depth"] == pytest.approx(20.0, abs=0.01)
    # The 1-3 mm shell around it is liver (100 HU), never closer to 40 than to 100.
    assert f["continues"] == 0.0


def test_features_do_not_depend_on_how_the_grid_is_stored() -> None:
    geometry, components, q, hu, liver = _scene()
    flip = np.diag([-1.0, 1.0, -1.0])  # i and k reversed: the same voxels stored mirrored
    g2 = Geometry.create(
        geometry.shape_kji, SPACING, geometry.index_to_lps([59, 0, 23]), geometry.direction_array @ flip
    )
    mirror = (slice(None, None, -1), slice(None), slice(None, None, -1))
    a = component_features(components, q, hu, liver, geometry)[1]
    b = component_features(components[mirror], q[mirror], hu[mirror], liver[mirror], g2)[1]
    for name in FEATURES:
        if name != "depth":  # the rounded centre voxel moves by one when mirrored about a half index
            assert b[name] == pytest.approx(a[name], abs=1e-6), name
    assert b["depth"] == pytest.approx(a["depth"], abs=0.81)


def test_one_voxel_has_the_shape_of_its_voxel() -> None:
    """A single 1 x 1 x 3 mm voxel: variances 1/12, 1/12, 9/12 mm^2, so axes in the ratio 1 : 1 : 3 and an
    ellipsoid of 4/3 pi (5/12)^1.5 * 3 mm^3 for its 3 mm^3."""
    geometry = Geometry.create((5, 5, 5), (1.0, 1.0, 3.0))
    component = np.zeros(geometry.shape_kji, np.int32)
    component[2, 2, 2] = 1
    hu = np.full(geometry.shape_kji, 100.0, np.float32)
    f = component_features(component, np.zeros_like(hu), hu, np.ones_like(component, bool), geometry)[1]
    assert (f["flat"], f["thin"]) == pytest.approx((1 / 3, 1 / 3))
    assert f["fill"] == pytest.approx(3.0 / (4 / 3 * math.pi * (5 / 12) ** 1.5 * 3.0))


def test_a_tube_is_thin_and_continues() -> None:
    """A 4 mm wide vessel (150 HU) crossing the liver; the component is a 10 mm stretch of it."""
    geometry = Geometry.create((20, 40, 60), (1.0, 1.0, 1.0))
    k, j, i = np.indices(geometry.shape_kji)
    vessel = ((j - 20) ** 2 + (k - 10) ** 2 <= 4) & (i >= 5) & (i < 55)
    liver = np.ones(geometry.shape_kji, bool)
    hu = np.where(vessel, 150.0, 100.0).astype(np.float32)
    component = (vessel & (i >= 25) & (i < 35)).astype(np.int32)
    f = component_features(component, np.zeros_like(hu), hu, liver, geometry)[1]
    assert f["contrast"] == 50.0
    assert f["thin"] < 0.5 and f["flat"] < 0.5  # 10 mm long, about 4 mm wide
    # Its 1-3 mm shell: liver around it (100 HU) and the vessel beyond both ends (150 HU): only the vessel is
    # closer to the component's HU. The share is the vessel voxels of the shell over all of its voxels.
    distance_shell = _shell(component.astype(bool))
    expected = float(np.mean(hu[distance_shell] == 150.0))
    assert 0.05 < expected < 0.5
    assert f["continues"] == pytest.approx(expected)


def _shell(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    d = ndimage.distance_transform_edt(~mask)
    return (d > 1.0 - 1e-6) & (d <= 3.0)


def test_fit_logistic_finds_the_exact_maximum_likelihood() -> None:
    """x = -1: 1 true of 4; x = +1: 3 true of 4. Unpenalised, the fit is logit(3/4) = log 3 at x = +1 and
    log(1/3) at x = -1 (x is already centred, scale 1)."""
    rows = [{"cnr": -1.0}] * 4 + [{"cnr": 1.0}] * 4
    labels = [True, False, False, False, True, True, True, False]
    model = fit_logistic(rows, labels, ["cnr"], l2=0.0)
    assert model.centre == (0.0,) and model.scale == (1.0,)
    assert model.intercept == pytest.approx(0.0, abs=1e-9)
    assert model.weights[0] == pytest.approx(math.log(3.0), abs=1e-9)
    assert model.score({"cnr": 1.0}) == pytest.approx(0.75)
    assert model.score({"cnr": -1.0}) == pytest.approx(0.25)
    # The penalty pulls the weight towards 0.
    assert 0 < fit_logistic(rows, labels, ["cnr"], l2=4.0).weights[0] < math.log(3.0)


def test_logistic_model_round_trip_and_bad_values() -> None:
    model = LogisticModel(("cnr", "log_ml"), (1.0, -0.5), (2.0, 0.25), (0.5, -1.0), 0.3)
    again = LogisticModel.from_json(model.to_json())
    assert again == model and again.max_ml is None
    capped = LogisticModel(("cnr",), (1.0,), (2.0,), (0.5,), 0.3, max_ml=10.0)
    assert LogisticModel.from_json(capped.to_json()) == capped
    with pytest.raises(ValueError, match="max_ml"):
        LogisticModel(("cnr",), (1.0,), (2.0,), (0.5,), 0.3, max_ml=0.0)
    z = 0.3 + 0.5 * (3.0 - 1.0) / 2.0 - 1.0 * (0.0 + 0.5) / 0.25
    assert model.score({"cnr": 3.0, "log_ml": 0.0}) == pytest.approx(1 / (1 + math.exp(-z)))
    with pytest.raises(ValueError, match="unknown lesion classifier feature"):
        LogisticModel(("colour",), (0.0,), (1.0,), (1.0,), 0.0)
    with pytest.raises(ValueError, match="scales > 0"):
        LogisticModel(("cnr",), (0.0,), (0.0,), (1.0,), 0.0)
    with pytest.raises(ValueError, match="same number"):
        LogisticModel(("cnr",), (0.0, 1.0), (1.0,), (1.0,), 0.0)
    with pytest.raises(ValueError, match="needs features"):
        LogisticModel.from_json({"features": ["cnr"]})
    with pytest.raises(ValueError, match="both classes"):
        fit_logistic([{"cnr": 1.0}], [True], ["cnr"])


def test_card_schema_names_exactly_the_features_the_pipeline_computes() -> None:
    schema = json.loads((ROOT / "SmoothSegNetLib/schemas/model_card.schema.json").read_text())
    block = schema["properties"]["postprocessing"]["properties"]["lesion_classifier"]
    assert tuple(block["properties"]["features"]["items"]["enum"]) == FEATURES


# -- the score floor in the pipeline ------------------------------------------------------------------------
# Threshold networks (tumor q = e^z / (e^z + 1), z = 50 * (HU - 150) / 450 on a 1 mm grid): the liver is 100 HU, a
# ball (radius 4 mm) and a straight tube (2 x 2 x 16 mm) are 220 HU, so the network calls both tumor. The card's
# classifier looks at the shape only: score = 1 / (1 + exp(-20 (thin - 0.5))), about 1 for the ball (thin 1.0)
# and 0 for the tube (thin 0.125).
THIN_ONLY = {"features": ["thin"], "centre": [0.5], "scale": [1.0], "weights": [20.0], "intercept": 0.0}


def _ball_and_tube(reflect: bool = False) -> tuple[CTVolume, np.ndarray, np.ndarray]:
    a = np.full((24, 32, 40), -500, np.int16)
    a[2:22, 3:29, 3:37] = 100
    k, j, i = np.indices(a.shape)
    ball = (k - 8) ** 2 + (j - 10) ** 2 + (i - 12) ** 2 <= 16
    tube = (k >= 14) & (k < 16) & (j >= 20) & (j < 22) & (i >= 10) & (i < 26)
    a[ball | tube] = 220
    geometry = Geometry.create(a.shape, (1.0, 1.0, 1.0), (10.0, -20.0, 30.0))
    if reflect:  # the same patient stored with i running right to left
        a, ball, tube = (x[:, :, ::-1].copy() for x in (a, ball, tube))
        geometry = Geometry.create(a.shape, (1.0, 1.0, 1.0), (49.0, -20.0, 30.0), np.diag([-1.0, 1.0, 1.0]))
    return CTVolume(a, geometry), ball, tube


def _classifier_options(tmp_path: Path, classifier: dict | None = THIN_ONLY, **changes: object) -> SegmentOptions:
    liver = write_threshold_model(tmp_path / "liver", "liver", threshold_hu=50)
    post: dict = {"min_lesion_ml": 0.01}
    if classifier is not None:
        post.update(min_lesion_score=0.5, lesion_classifier=classifier)
    tumor = write_threshold_model(tmp_path / "tumor", "tumor", threshold_hu=150, extra={"postprocessing": post})
    return SegmentOptions(liver_model=str(liver), tumor_model=str(tumor), device="cpu", **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("reflect", [False, True])
def test_pipeline_lists_the_tube_as_a_candidate_and_keeps_the_ball(tmp_path: Path, reflect: bool) -> None:
    ct, ball, tube = _ball_and_tube(reflect)
    off = Segmenter(_classifier_options(tmp_path, classifier=None))(ct)
    assert len(off.confidence) == 2 and off.thresholds.min_lesion_score_source == "not_applied"
    on = Segmenter(_classifier_options(tmp_path))(ct)
    assert on.thresholds.min_lesion_score == 0.5 and on.thresholds.min_lesion_score_source == "card"
    assert np.array_equal(on.lesions == 1, ball) and int(on.lesions.max()) == 1
    assert on.candidates is not None and dict(on.candidates.reasons) == {1: "below_min_lesion_score"}
    assert np.array_equal(on.candidates.instances == 1, tube)
    assert (on.labelmap[tube] == 1).all() and (on.labelmap[ball] == 2).all()
    # 0 keeps every lesion (from the command line, over the card's 0.5).
    keep = Segmenter(_classifier_options(tmp_path, min_lesion_score=0.0))(ct)
    assert len(keep.confidence) == 2 and keep.thresholds.min_lesion_score_source == "cli"
    # A component of the classifier's max_ml or more is never scored away: the tube is 64 voxels (0.064 ml).
    big = Segmenter(_classifier_options(tmp_path / "big", classifier={**THIN_ONLY, "max_ml": 0.064}))(ct)
    assert len(big.confidence) == 2 and big.candidates is not None and big.candidates.count == 0
    small = Segmenter(_classifier_options(tmp_path / "small", classifier={**THIN_ONLY, "max_ml": 0.065}))(ct)
    assert len(small.confidence) == 1 and small.candidates is not None and small.candidates.count == 1


def test_report_states_the_score_floor_and_reads_it_back(tmp_path: Path) -> None:
    ct, _, tube = _ball_and_tube()
    write_volume(tmp_path / "ct.nrrd", ct)
    run_case(
        Case(tmp_path / "ct.nrrd", tmp_path / "out"),
        Segmenter(_classifier_options(tmp_path)),
        skip_plausibility_check=True,
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    jsonschema.validate(report, json.loads((ROOT / "SmoothSegNetLib/schemas/report.schema.json").read_text()))
    assert report["thresholds"]["min_lesion_score"] == 0.5
    assert report["thresholds"]["source"]["min_lesion_score"] == "card"
    assert report["tumor_burden"]["count"] == 1
    [entry] = report["candidates"]
    assert entry["reason"] == "below_min_lesion_score" and entry["volume_ml"] == pytest.approx(tube.sum() / 1000.0)
    read = thresholds_from_report(report)
    assert read is not None and read.min_lesion_score == 0.5 and read.min_lesion_score_source == "card"


def test_a_score_floor_without_a_classifier_or_a_bad_classifier_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="needs a tumor card with a lesion classifier"):
        Segmenter(_classifier_options(tmp_path, classifier=None, min_lesion_score=0.5))
    # 0 asks for nothing: no classifier needed.
    assert Segmenter(_classifier_options(tmp_path, classifier=None, min_lesion_score=0.0)).lesion_classifier is None
    bad = {**THIN_ONLY, "weights": [1.0, 2.0]}
    with pytest.raises(ModelError, match="lesion_classifier"):
        Segmenter(_classifier_options(tmp_path / "bad", classifier=bad))
    for value in (-0.1, 1.0, float("nan")):
        with pytest.raises(InputError, match="--min-lesion-score"):
            SegmentOptions(min_lesion_score=value)


def test_cli_refuses_a_score_floor_the_card_cannot_apply_with_one_error_line(tmp_path: Path) -> None:
    ct, _, _ = _ball_and_tube()
    write_volume(tmp_path / "ct.nrrd", ct)
    options = _classifier_options(tmp_path, classifier=None)
    for value, says in (("0.5", "needs a tumor card with a lesion classifier"), ("1.5", "--min-lesion-score")):
        out = tmp_path / f"out-{value}"
        result = run_cli(
            "segment", str(tmp_path / "ct.nrrd"), "-o", str(out), "--device", "cpu",
            "--liver-model", options.liver_model, "--tumor-model", options.tumor_model, "--min-lesion-score", value,
        )  # fmt: skip
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], result.stderr
        assert not out.exists()


def test_depth_is_the_distance_transform_of_the_liver_at_the_centre() -> None:
    """The growing-box search gives exactly what a Euclidean distance transform of the whole liver gives, on an
    irregular liver with anisotropic voxels (centres deep inside, near the edge and outside it)."""
    from scipy import ndimage

    from SmoothSegNetLib.inference.lesion_features import _depth

    rng = np.random.default_rng(7)
    liver = ndimage.gaussian_filter(rng.random((40, 90, 80)), 6) > 0.5
    spacing_kji = np.array([3.0, 0.7, 0.9])
    edt = ndimage.distance_transform_edt(liver, sampling=spacing_kji)
    centres = [tuple(int(v) for v in rng.integers(0, (40, 90, 80))) for _ in range(200)]
    for centre in centres:
        assert _depth(liver, centre, spacing_kji) == pytest.approx(float(edt[centre]), abs=1e-9), centre
    assert any(edt[c] > 8.0 for c in centres) and any(0 < edt[c] <= 8.0 for c in centres)
    assert any(edt[c] == 0 for c in centres)
