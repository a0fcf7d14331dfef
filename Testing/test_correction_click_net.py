"""The click network of ``add-lesion`` (SmoothSegNetLib/correction/click_net.py) and its training data.

No click network is bundled (the one trained for 25 minutes on this CPU did not learn to tell a lesion from the
liver: docs/add-lesion.md, seventh round), so a network trained for a second by the training command checks the
files and engines. Hand-computable parts are checked exactly (the input channels, the cube's grid, the
description file's checks); the geometry of the whole path (CT -> cube -> network -> probability on the input
grid) is checked with a known function standing in for the network (named so below) on the synthetic CTs of
``test_correction_add_lesion_rim_fit.py`` (liver 100 HU, 0.8 x 0.8 x 3.0 mm voxels, 1 mm blur, 15 HU noise).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_correction_add_lesion_rim_fit import CENTRE_KJI, LIVER_HU, SHAPE_KJI, SPACING_KJI, _ct, _distance_mm

from SmoothSegNetLib.correction import click_net
from SmoothSegNetLib.correction.add_lesion import PointSegmenter, _allowed
from SmoothSegNetLib.correction.search import CLICK_NETWORK, Crop, find_lesion
from SmoothSegNetLib.correction.settings import default_settings
from SmoothSegNetLib.errors import InputError, ModelError
from SmoothSegNetLib.models.onnx_engines import installed_engines
from SmoothSegNetLib.models.weights import sha256_file
from SmoothSegNetLib.training import click_net as training
from SmoothSegNetLib.volume import CTVolume, Geometry

GEOMETRY = Geometry.create(SHAPE_KJI, tuple(SPACING_KJI[::-1]), (-48.0, -48.0, -60.0))
TRUTH = _distance_mm() <= 7.0


def _point(geometry: Geometry, voxel_kji: tuple[int, int, int]) -> tuple[float, float, float]:
    x, y, z = geometry.index_to_lps(np.asarray(voxel_kji, dtype=float)[::-1])
    return (float(x), float(y), float(z))


def _hypodense(seed: int, delta_hu: float = -30.0) -> tuple[np.ndarray, np.ndarray]:
    return _ct(np.where(TRUTH, LIVER_HU + delta_hu, LIVER_HU), seed)


# -- the input channels and the cube ---------------------------------------------------------------------------
def test_the_channels_are_the_contrast_to_the_livers_median_the_liver_and_the_centre_prior() -> None:
    n = click_net.CROP_VOXELS
    hu = np.full((n, n, n), 100.0, np.float32)
    liver = np.zeros((n, n, n), bool)
    liver[:, :, : n // 2] = True
    hu[:, :, n // 2 :] = -900.0  # outside the liver: not in the median
    hu[0, 0, 0], hu[0, 0, 1], hu[0, 0, 2] = 125.0, 400.0, -300.0
    image = click_net.channels(hu, liver)
    assert image.shape == (3, n, n, n) and image.dtype == np.float32
    assert image[0, 5, 5, 5] == 0.0  # the liver's median is 100 HU
    assert image[0, 0, 0, 0] == pytest.approx(0.5)  # (125 - 100) / 50
    assert image[0, 0, 0, 1] == 4.0 and image[0, 0, 0, 2] == -4.0  # clipped at +-4
    assert image[0, 5, 5, n - 1] == -4.0
    assert np.array_equal(image[1], liver.astype(np.float32))
    # The prior: exp(-d^2 / (2 * 6^2)) with d the distance (mm) from the cube's centre (23.5, 23.5, 23.5).
    assert image[2, 23, 23, 23] == pytest.approx(np.exp(-0.75 / 72.0))
    assert image[2, 23, 23, 35] == pytest.approx(np.exp(-(0.25 + 0.25 + 11.5**2) / 72.0))


def test_a_cube_with_little_liver_is_measured_from_its_own_median() -> None:
    n = click_net.CROP_VOXELS
    hu = np.full((n, n, n), 40.0, np.float32)
    liver = np.zeros((n, n, n), bool)
    liver[0, 0, : click_net.MIN_LIVER_VOXELS - 1] = True
    hu[liver] = 100.0
    assert click_net.channels(hu, liver)[0, 10, 10, 10] == 0.0  # the cube's median (40 HU), not the liver's


def test_the_cube_is_centred_on_the_point_along_lps() -> None:
    point = (12.5, -30.0, 104.25)
    cube = click_net.cube_geometry(point)
    assert cube.shape_kji == (48, 48, 48) and cube.spacing_mm == (1.0, 1.0, 1.0)
    assert np.allclose(cube.index_to_lps(np.array([23.5, 23.5, 23.5])), point)
    assert np.allclose(np.asarray(cube.direction), np.eye(3))


# -- the geometry of the whole path, with a known function standing in for the network --------------------------
class _StandIn(click_net.ClickNetwork):
    """A stand-in for the network (not a network): logit = 20 x (-0.4 - HU channel), i.e. 'darker than the liver
    by more than 20 HU'; everything else is the real path."""

    def __init__(self) -> None:
        self.threshold = 0.5
        self.engine = "stand-in"
        self._run = lambda batch: 20.0 * (-0.4 - batch[:, :1])


@pytest.mark.parametrize("flip", [(0,), (2,), (0, 1, 2)])
def test_the_probability_follows_the_grid_reflected_along_any_axis(flip: tuple[int, ...]) -> None:
    """The same CT stored reflected (direction negated along the flipped axes, origin at the other end): the
    probability on the input grid is the reflected array (cube is on LPS axes whatever the storage)."""
    hu, liver = _hypodense(0)
    point = _point(GEOMETRY, CENTRE_KJI)
    q = _StandIn().probability(hu, liver, GEOMETRY, point)
    index = [slice(None)] * 3
    direction = np.eye(3)
    corner = [0.0, 0.0, 0.0]
    for axis in flip:
        index[axis] = slice(None, None, -1)
        direction[2 - axis, 2 - axis] = -1.0
        corner[2 - axis] = SHAPE_KJI[axis] - 1
    origin = GEOMETRY.index_to_lps(np.asarray(corner))
    reflected = Geometry.create(SHAPE_KJI, GEOMETRY.spacing_mm, origin, direction)
    sl = tuple(index)
    q_reflected = _StandIn().probability(hu[sl].copy(), liver[sl].copy(), reflected, point)
    assert np.allclose(q_reflected, q[sl], atol=1e-5)
    # And it is the lesion: high in its core, low in the liver 10-20 mm from its centre.
    ring = (_distance_mm() > 10.0) & (_distance_mm() < 20.0) & liver
    assert q[_distance_mm() <= 4.0].mean() > 0.8 and q[ring].mean() < 0.2


def test_the_probability_is_zero_outside_the_cube() -> None:
    hu, liver = _hypodense(1)
    q = _StandIn().probability(hu, liver, GEOMETRY, _point(GEOMETRY, CENTRE_KJI))
    assert q[CENTRE_KJI[0], CENTRE_KJI[1], :20].max() == 0.0  # more than 24 mm from the point along i


# -- a trained network's files and their checks ----------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A click network trained for a second on two seeds by the training command (none is bundled: the one
    trained for 25 minutes did not learn to tell a lesion from the liver, docs/add-lesion.md, seventh round)."""
    out = tmp_path_factory.mktemp("click-net")
    assert training.main(["--seeds", "6000:6002", "--minutes", "0.01", "--out", str(out), "--threads", "1"]) == 0
    return out / "click-net.json"


def _copy(trained: Path, tmp_path: Path) -> Path:
    files = click_net.ClickNetFiles.read(trained)
    for path in (trained, files.weights, files.graph):
        assert path is not None
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / trained.name


def test_the_training_command_writes_files_that_load_with_their_sha256(trained: Path) -> None:
    data = json.loads(trained.read_text(encoding="utf-8"))
    names = sorted(p.name for p in trained.parent.iterdir())
    assert names == ["click-net.json", "click-net.onnx", "click-net.safetensors"]
    assert data["trained_on"]["phantom_seeds"] == "6000:6002" and data["trained_on"]["iterations"] >= 1
    assert "DEMO" in data["title"] and "synthetic" in data["title"] and "synthetic" in data["trained_on"]["data"]
    files = click_net.ClickNetFiles.read(trained)
    assert files.weights_sha256 == sha256_file(files.weights) and files.graph is not None
    assert files.graph_sha256 == sha256_file(files.graph) and files.threshold == 0.5


@pytest.mark.skipif(len(installed_engines()) == 0, reason="no ONNX engine installed")
def test_the_graph_and_the_weights_give_the_same_probability(trained: Path) -> None:
    hu, liver = _hypodense(4)
    point = _point(GEOMETRY, CENTRE_KJI)
    graph = click_net.ClickNetwork(trained, threads=1, engine=installed_engines()[0])
    weights = click_net.ClickNetwork(trained, threads=1, engine="torch")
    assert graph.engine != "torch" and weights.engine == "torch"
    q_graph = graph.probability(hu, liver, GEOMETRY, point)
    q_weights = weights.probability(hu, liver, GEOMETRY, point)
    assert q_graph.shape == SHAPE_KJI and np.abs(q_graph - q_weights).max() < 1e-3


@pytest.mark.parametrize("engine", ["torch", "auto"])
def test_a_damaged_file_is_refused_before_it_is_loaded(trained: Path, tmp_path: Path, engine: str) -> None:
    path = _copy(trained, tmp_path)
    files = click_net.ClickNetFiles.read(path)
    damaged = files.weights if engine == "torch" or not installed_engines() else files.graph
    assert damaged is not None
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        click_net.ClickNetwork(path, engine=engine)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "other/1"}, "schema"),
        ({"threshold": 1.5}, "threshold"),
        ({"architecture": {"spatial_dims": 3}}, "architecture"),
        ({"weights": None}, "missing or bad"),
    ],
)
def test_a_bad_description_is_refused(trained: Path, tmp_path: Path, change: dict[str, object], message: str) -> None:
    path = _copy(trained, tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(change)
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelError, match=message):
        click_net.ClickNetFiles.read(path)


def test_no_click_network_is_bundled_and_asking_for_it_says_so() -> None:
    assert not click_net.CLICK_NET_FILE.exists()
    assert default_settings().click_network is False
    with pytest.raises(ModelError, match="no click network is installed"):
        PointSegmenter("smoothsegnet-demo-tumor", threads=1, settings=replace(default_settings(), click_network=True))


# -- in the search and the whole click -------------------------------------------------------------------------
def test_the_search_takes_the_click_networks_component_first_and_only_when_asked() -> None:
    hu, liver = _ct(np.full(SHAPE_KJI, LIVER_HU), 0)  # plain liver: the other ways find nothing here
    q = TRUTH.astype(np.float32) * 0.9  # a probability map standing in for the network's
    on = replace(default_settings(), click_network=True)
    crop = Crop(hu, np.zeros(SHAPE_KJI, np.float32), liver, CENTRE_KJI, SPACING_KJI, q, 0.5)
    found = find_lesion(crop, on)
    assert found is not None and found.method == CLICK_NETWORK and np.array_equal(found.mask, TRUTH)
    assert find_lesion(replace(crop, click_threshold=0.95), on) is None  # under its threshold: nothing
    assert find_lesion(crop, replace(on, click_network=False)) is None


def test_the_whole_click_passes_the_click_networks_probability_to_the_search() -> None:
    """Through :class:`PointSegmenter` with the stand-in above in place of the click network: the lesion added is
    the search's ``click_network`` component of the stand-in's probability on the input grid, its confidence that
    probability's mean; on plain liver nothing is added."""
    hu, liver = _hypodense(5, delta_hu=-40.0)
    ct = CTVolume(hu.astype(np.int16), GEOMETRY)
    labels, lesions = liver.astype(np.uint8), np.zeros(SHAPE_KJI, np.uint16)
    segmenter = PointSegmenter("smoothsegnet-demo-tumor", threads=1)
    segmenter.settings = replace(segmenter.settings, click_network=True)
    segmenter.click_network = _StandIn()
    point = _point(GEOMETRY, CENTRE_KJI)
    added = segmenter(ct, labels, lesions, point)
    mask = np.zeros(SHAPE_KJI, bool)
    mask[added.box] = added.mask
    q = _StandIn().probability(hu, liver, GEOMETRY, point)
    expected = find_lesion(
        Crop(hu, np.zeros(SHAPE_KJI, np.float32), _allowed(labels, lesions), CENTRE_KJI, SPACING_KJI, q, 0.5),
        segmenter.settings,
    )
    assert added.method == CLICK_NETWORK and "click_network_s" in added.timings_s
    assert expected is not None and np.array_equal(mask, expected.mask)
    assert added.confidence == pytest.approx(float(q[mask].mean()), abs=1e-4)
    plain_hu, _ = _ct(np.full(SHAPE_KJI, LIVER_HU), 6)
    with pytest.raises(InputError, match="nothing lesion-like"):
        segmenter(CTVolume(plain_hu.astype(np.int16), GEOMETRY), labels, lesions, point)


# -- the training data ------------------------------------------------------------------------------------------
def test_the_acquisition_box_covers_the_cube_on_a_ct_like_grid() -> None:
    """The box rendered around a click holds the whole cube, on a grid with square pixels and slices along k."""
    rng = np.random.default_rng(0)
    centre = np.array([10.0, -20.0, 300.0])
    cube = click_net.cube_geometry(tuple(centre))  # type: ignore[arg-type]
    corners = cube.index_to_lps(np.array([[a, b, c] for a in (0, 47) for b in (0, 47) for c in (0, 47)], float))
    for _ in range(20):
        grid = training.acquisition_grid(centre, rng)
        i_mm, j_mm, k_mm = grid.spacing_mm
        assert i_mm == j_mm and training.PIXEL_MM[0] <= i_mm <= training.PIXEL_MM[1] and k_mm in training.SLICE_MM
        index = grid.lps_to_index(corners)
        size = np.asarray(grid.size_ijk)
        assert (index >= 0).all() and (index <= size - 1).all()


@pytest.fixture(scope="module")
def samples() -> list[training.ClickSample]:
    return training.seed_samples(6000, np.random.default_rng(0), normals=2, small_lesions=3)


def test_each_lesion_click_lies_in_its_lesion_and_the_liver_clicks_are_empty(
    samples: list[training.ClickSample],
) -> None:
    lesions = [s for s in samples if s.lesion]
    plain = [s for s in samples if not s.lesion]
    assert len(lesions) >= 3 and len(plain) == 2
    for sample in lesions:
        centre = sample.truth[23:25, 23:25, 23:25]
        assert centre.any(), f"lesion {sample.lesion}: the cube's centre is not in its truth"
    for sample in plain:
        assert not sample.truth.any() and sample.kind == "liver"


def test_the_rendered_lesions_have_the_contrast_the_phantom_drew(samples: list[training.ClickSample]) -> None:
    """Hypodense lesions are darker than the liver around them in the input channel, hyperdense brighter."""
    from SmoothSegNetLib.phantom.generator import _draw_patient

    specs = _draw_patient(6000, None, False, 3).lesions
    checked = 0
    for sample in samples:
        if sample.kind not in ("hypodense", "hyperdense") or np.count_nonzero(sample.truth) < 50:
            continue
        image = sample.image.astype(np.float32)
        liver = (image[1] > 0.5) & ~sample.truth
        contrast = (image[0][sample.truth].mean() - image[0][liver].mean()) * click_net.HU_SCALE
        assert np.sign(contrast) == np.sign(specs[sample.lesion - 1].delta_hu), (sample.lesion, contrast)
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "2050:2070", "--minutes", "1"], "overlaps"),
        (["--seeds", "3100:3200", "--minutes", "1"], "overlaps"),
        (["--seeds", "6000:6000", "--minutes", "1"], "non-empty"),
        (["--seeds", "6000:6001", "--minutes", "0"], "--minutes"),
        (["--seeds", "6000:6001", "--minutes", "1", "--threshold", "1"], "--threshold"),
        (["--seeds", "x", "--minutes", "1"], "--seeds"),
        (["--seeds", "6000:6001", "--minutes", "1", "--dice-weight", "-1"], "--dice-weight"),
    ],
)
def test_bad_training_arguments_are_one_error_line_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert training.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_the_reserved_seeds_are_refused_for_training() -> None:
    with pytest.raises(InputError, match="3000-3119"):
        training._seed_range("3119:3121")
    assert training._seed_range("6000:6010") == range(6000, 6010)
