"""The SciPy resampling path (machines without SimpleITK, e.g. a GPU machine that trains): same voxels as ITK.

Hand-computed answers first (the same ones the SimpleITK path passes), then agreement with SimpleITK's
``ResampleImageFilter`` voxel for voxel on anisotropic, flipped, permuted and oblique grids, then a training
case prepared both ways, and a whole (tiny) training run in a process where SimpleITK cannot be imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _geometry_helpers import OBLIQUE, hu_array, signed_permutations
from _training_helpers import write_tiny_config
from test_geometry_resample import (
    test_channels_are_resampled_alike,
    test_integer_linear_resampling_rounds_and_outside_gets_default,
    test_linear_resampling_samples_at_the_right_lps_points,
)

from SmoothSegNetLib import resample as resample_module
from SmoothSegNetLib.resample import RESAMPLER_ENV, Interpolation, canonical_geometry, resample
from SmoothSegNetLib.volume import Geometry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scipy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the SciPy path, and fail if SimpleITK's is taken anyway."""
    monkeypatch.setenv(RESAMPLER_ENV, "scipy")

    def no_sitk(*args: object) -> np.ndarray:
        raise AssertionError("the SimpleITK path was taken")

    monkeypatch.setattr(resample_module, "_resample_sitk", no_sitk)


@pytest.mark.parametrize(
    "hand_computed",
    [
        test_linear_resampling_samples_at_the_right_lps_points,
        test_integer_linear_resampling_rounds_and_outside_gets_default,
        test_channels_are_resampled_alike,
    ],
)
def test_scipy_path_gives_the_hand_computed_answers(scipy_path: None, hand_computed: object) -> None:
    hand_computed()  # type: ignore[operator]


def test_scipy_path_follows_itk_at_the_edge_of_the_grid(scipy_path: None) -> None:
    # Four voxels along i with values 0, 10, 20, 30; a grid of 0.25 mm steps from -0.75 to 3.75 mm.
    src = Geometry.create((1, 1, 4))
    array = (np.arange(4, dtype=np.float32) * 10).reshape(1, 1, 4)
    dst = Geometry.create((1, 1, 19), (0.25, 1.0, 1.0), (-0.75, 0.0, 0.0))
    linear = resample(array, src, dst, "linear", default_value=-1.0)[0, 0]
    # Outside [-0.5, 3.5): the default; in the outer half voxels: the edge value; inside: linear.
    expected = [-1, 0, 0, 0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20, 22.5, 25, 27.5, 30, 30, -1, -1]
    np.testing.assert_allclose(linear, expected, atol=1e-6)
    nearest = resample(array.astype(np.int16), src, dst, "nearest", default_value=-1)[0, 0]
    # Half-way points round up (ITK's RoundHalfIntegerUp): 0.5 -> voxel 1, 1.5 -> 2, 2.5 -> 3.
    assert nearest.tolist() == [-1, 0, 0, 0, 0, 10, 10, 10, 10, 20, 20, 20, 20, 30, 30, 30, 30, -1, -1]


def test_scipy_path_keeps_masks_boolean_and_refuses_bspline(scipy_path: None) -> None:
    src = Geometry.create((8, 8, 8))
    mask = np.zeros((8, 8, 8), bool)
    mask[2:6, 2:6, 2:6] = True
    dst = Geometry.create((8, 8, 8), origin_lps_mm=(0.25, 0.0, 0.0))
    for method in ("nearest", "linear"):
        result = resample(mask, src, dst, method)
        assert result.dtype == np.bool_
        assert result.sum() == mask.sum()
    with pytest.raises(RuntimeError, match="bspline resampling needs SimpleITK"):
        resample(mask, src, dst, "bspline")


def test_a_bad_resampler_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RESAMPLER_ENV, "itk")
    with pytest.raises(ValueError, match="SMOOTHSEGNET_RESAMPLER must be 'scipy' or 'simpleitk'"):
        resample(np.zeros((8, 8, 8)), Geometry.create((8, 8, 8)), Geometry.create((8, 8, 8), (2.0, 2.0, 2.0)))


def test_without_simpleitk_the_scipy_path_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RESAMPLER_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # "import SimpleITK" now raises ImportError
    src = Geometry.create((10, 9, 8), (0.7, 1.3, 2.9), direction=OBLIQUE[1][1])
    dst = canonical_geometry(src, 2.0, "PLI")
    array = hu_array((10, 9, 8)).astype(np.float32)
    expected = resample_module._resample_scipy(array, src, dst, Interpolation.LINEAR, -1000)
    assert np.array_equal(resample(array, src, dst, "linear", -1000), expected)
    with pytest.raises(RuntimeError, match="bspline resampling needs SimpleITK"):
        resample(array, src, dst, "bspline")


def _grid_pairs() -> list[tuple[str, Geometry, Geometry]]:
    spacing, origin = (0.7, 0.9, 2.5), (-10.0, 5.0, 3.0)
    pairs = []
    for n, direction in enumerate(signed_permutations()[::7]):
        src = Geometry.create((23, 19, 17), spacing, origin, direction)
        pairs.append((f"permuted-{n}->LPS 2mm", src, canonical_geometry(src, 2.0, "LPS")))
        pairs.append((f"permuted-{n}->PLI", src, canonical_geometry(src, (2.0, 1.5, 3.0), "PLI")))
    for name, direction in OBLIQUE:
        src = Geometry.create((23, 19, 17), spacing, origin, direction)
        pairs.append((f"{name}->LPS 1.3mm", src, canonical_geometry(src, 1.3, "LPS")))
        plain = Geometry.create((23, 19, 17), spacing, origin)
        tilted = Geometry.create((16, 18, 20), (1.1, 1.2, 1.9), (-12.0, 3.0, 0.0), direction)
        pairs.append((f"LPS->{name}", plain, tilted))
    unit = Geometry.create((20, 20, 20))
    pairs.append(("half-voxel 2x down", unit, Geometry.create((10, 10, 10), (2.0, 2.0, 2.0), (0.5, 0.5, 0.5))))
    pairs.append(("shifted 0.5 / 0.25", unit, Geometry.create((20, 20, 20), origin_lps_mm=(0.5, -0.5, 0.25))))
    return pairs


@pytest.mark.parametrize(("name", "src", "dst"), _grid_pairs(), ids=[p[0] for p in _grid_pairs()])
def test_scipy_path_equals_simpleitk(name: str, src: Geometry, dst: Geometry) -> None:
    ct = hu_array(src.shape_kji).astype(np.float32)
    labels = (hu_array(src.shape_kji, seed=1) % 3).astype(np.uint8)
    for array, method, default in ((ct, "linear", -1000), (labels, "linear", 0)):
        itk = resample_module._resample_sitk(array, src, dst, Interpolation(method), default)
        ours = resample_module._resample_scipy(array, src, dst, Interpolation(method), default)
        assert ours.dtype == itk.dtype
        np.testing.assert_allclose(ours.astype(float), itk.astype(float), atol=1e-3, err_msg=f"{name} {method}")
    # Nearest: the same voxel, except where a destination centre lies exactly half-way between two source
    # centres (both are nearest; ITK's float steps may land either side). There ours is one of the two.
    index = np.arange(int(np.prod(src.shape_kji)), dtype=np.int32).reshape(src.shape_kji)
    itk = resample_module._resample_sitk(index, src, dst, Interpolation.NEAREST, -1)
    ours = resample_module._resample_scipy(index, src, dst, Interpolation.NEAREST, -1)
    assert ours.dtype == itk.dtype
    assert np.array_equal(itk == -1, ours == -1)  # the same voxels lie outside the source
    differ = np.argwhere(itk != ours)
    to_src = np.linalg.inv(src.ijk_to_lps()) @ dst.ijk_to_lps()
    for k, j, i in differ:
        continuous = to_src[:3, :3] @ [i, j, k] + to_src[:3, 3]
        tie = np.abs(continuous - np.floor(continuous) - 0.5) < 1e-6
        assert tie.any(), f"{name}: voxel {(i, j, k)} differs at a source index {continuous} that is no tie"
        got = np.array(np.unravel_index(ours[k, j, i], src.shape_kji)[::-1])  # (i, j, k) of the voxel taken
        want = np.array(np.unravel_index(itk[k, j, i], src.shape_kji)[::-1])
        assert np.all(np.abs(got - continuous) <= 0.5 + 1e-6) and np.all(np.abs(want - continuous) <= 0.5 + 1e-6)
        assert np.array_equal(got == want, ~tie)


def test_a_training_case_is_prepared_the_same_without_simpleitk(monkeypatch: pytest.MonkeyPatch) -> None:
    from SmoothSegNetLib.models import card_from_dict, demo_card_template
    from SmoothSegNetLib.phantom import make_phantom
    from SmoothSegNetLib.training.prepare import prepare_case

    card = card_from_dict(demo_card_template("tumor"), source="test")
    # Oblique, 1.7 x 1.7 x 3.1 mm: the 2 mm tumor grid interpolates every voxel.
    phantom = make_phantom(1003, (96, 96, 40), (1.7, 1.7, 3.1), True)
    assert not np.allclose(phantom.ct.geometry.direction_array, np.eye(3))
    cases = {}
    for backend in ("simpleitk", "scipy"):
        monkeypatch.setenv(RESAMPLER_ENV, backend)
        cases[backend] = prepare_case(phantom.ct, phantom.labels, card, "phantom-1003", mask_dilation_mm=4.0)
    itk, ours = cases["simpleitk"], cases["scipy"]
    assert ours.image.shape == itk.image.shape and ours.label.shape == itk.label.shape
    np.testing.assert_allclose(ours.image, itk.image, atol=1e-5)
    assert np.count_nonzero(ours.label == 2) > 100  # the case holds tumor, so a label shift would show
    assert np.count_nonzero(ours.label != itk.label) <= 1e-3 * itk.label.size
    assert ours.tlvr_true == itk.tlvr_true


def test_training_runs_where_simpleitk_cannot_be_imported(tmp_path: Path) -> None:
    config = write_tiny_config(tmp_path, "tumor")  # 30 % oblique phantoms, resampled onto an 8 mm grid
    weights = {}
    for blocked in (True, False):
        out = tmp_path / ("without" if blocked else "with")
        script = (
            "import sys\n"
            + ("sys.modules['SimpleITK'] = None\n" if blocked else "")
            + "from SmoothSegNetLib.cli import main\n"
            + f"code = main(['train', '--config', {str(config)!r}, '-o', {str(out)!r}, '--progress', 'none'])\n"
            + ("assert sys.modules['SimpleITK'] is None\n" if blocked else "assert 'SimpleITK' in sys.modules\n")
            + "sys.exit(code)\n"
        )
        env = {k: v for k, v in os.environ.items() if k != RESAMPLER_ENV}
        env["PYTHONPATH"] = str(ROOT)
        done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "SimpleITK" not in done.stderr
        card = json.loads((out / "tiny-tumor.json").read_text())
        assert card["training"]["run"]["iterations"] == 6
        weights[blocked] = (out / card["weights"]["file"]).read_bytes()
    # The same voxels in, the same weights out: training without SimpleITK is the same training.
    assert weights[True] == weights[False]
