"""``add-lesion``'s last try: a rim-enhancing lesion whose centre reads as liver, fitted around the click.

Synthetic CTs as in ``test_correction_add_lesion_contrast.py``: liver at 100 HU on an anisotropic grid (0.8 x 0.8
x 3.0 mm), a lesion drawn as the voxels whose centres lie within its radius (so its true mask is exact), blurred
by a 1 mm Gaussian, Gaussian noise (15 HU here, fixed seeds). The lesions here have a core at the liver's own
value inside a rim 22 HU brighter: the shell profile of ``grow.py`` starts from the point's value, which is the
liver's, and refuses them (checked), as it refused the faint rim-enhancing phantom lesions 2025-2 and 3007-1.
The search runs on the crop itself with a tumor probability of zero (the network does not see these lesions;
the whole click with the real network is checked once, at the end).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
from _add_lesion_helpers import folder_digest, load_report, write_case_folder
from conftest import run_cli
from scipy import ndimage

from SmoothSegNetLib.correction.add_lesion import PointSegmenter
from SmoothSegNetLib.correction.rim_fit import fit_rim
from SmoothSegNetLib.correction.search import Crop, find_lesion
from SmoothSegNetLib.correction.settings import AddLesionSettings, default_settings
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.evaluation.add_lesion_eval import dice
from SmoothSegNetLib.report.inputs import read_labelmap
from SmoothSegNetLib.volume import CTVolume, Geometry

SHAPE_KJI = (40, 120, 120)
SPACING_KJI = np.array([3.0, 0.8, 0.8])
CENTRE_KJI = (20, 60, 60)
LIVER_HU, NOISE_HU, BLUR_MM = 100.0, 15.0, 1.0


def _distance_mm(centre_kji: tuple[int, int, int] = CENTRE_KJI) -> np.ndarray:
    k, j, i = np.ogrid[: SHAPE_KJI[0], : SHAPE_KJI[1], : SHAPE_KJI[2]]
    offsets = [(g - c) * d for g, c, d in zip((k, j, i), centre_kji, SPACING_KJI)]
    return np.asarray(np.sqrt(sum(o.astype(float) ** 2 for o in offsets)))


def _rim_lesion(radius_mm: float = 8.0, core_mm: float = 4.5, rim_hu: float = 22.0, half: bool = False) -> np.ndarray:
    """HU before blur and noise: the liver, and a rim ``rim_hu`` brighter between ``core_mm`` and ``radius_mm``
    (only on the side of larger ``j`` if ``half``); the core keeps the liver's value."""
    distance = _distance_mm()
    rim = (distance <= radius_mm) & (distance > core_mm)
    if half:
        rim &= np.arange(SHAPE_KJI[1])[None, :, None] >= CENTRE_KJI[1]
    return np.where(rim, LIVER_HU + rim_hu, LIVER_HU)


def _ct(hu: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The CT (blurred, noisy, fat outside) and the liver (everything but a border)."""
    sigma = [BLUR_MM / d for d in SPACING_KJI]
    noisy = ndimage.gaussian_filter(hu, sigma, mode="nearest") + np.random.default_rng(seed).normal(
        0.0, NOISE_HU, SHAPE_KJI
    )
    liver = np.zeros(SHAPE_KJI, bool)
    liver[2:-2, 4:-4, 4:-4] = True
    noisy[~liver] = -100.0
    return np.rint(noisy), liver


def _search(hu: np.ndarray, liver: np.ndarray, settings: AddLesionSettings, voxel=CENTRE_KJI):  # type: ignore[no-untyped-def]
    crop = Crop(hu, np.zeros(hu.shape, np.float32), liver, voxel, SPACING_KJI)
    return find_lesion(crop, settings)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rim_lesion_with_a_liver_valued_core_is_found_by_the_fit_alone(seed: int) -> None:
    """A 16 mm lesion: core at the liver's value (radius 4.5 mm), rim 22 HU brighter to 8 mm."""
    hu, liver = _ct(_rim_lesion(), seed)
    truth = _distance_mm() <= 8.0
    # Without the fit, growing refuses it (the point reads as liver) and the network gives nothing.
    assert _search(hu, liver, replace(default_settings(), rim_fit=False)) is None
    found = _search(hu, liver, default_settings())
    assert found is not None and found.method == "rim_fit"
    assert dice(found.mask, truth) >= 0.95
    fit, _box, _distance = fit_rim(hu, liver, CENTRE_KJI, SPACING_KJI)  # type: ignore[misc]
    assert fit.radius_mm == pytest.approx(8.0, abs=0.5)
    assert fit.rim_mm == pytest.approx(3.5, abs=1.0)  # the grid of widths tried: 1.5, 2.5, 3.5
    assert fit.rim_hu == pytest.approx(22.0, abs=5.0) and abs(fit.core_hu) <= 6.0
    assert fit.cover >= 0.85


@pytest.mark.parametrize("radius_mm", [6.0, 10.0, 12.0])
def test_the_fitted_radius_follows_the_lesion_on_thick_slices(radius_mm: float) -> None:
    """Rims of 3.5 mm round cores at the liver's value, 12-24 mm across (4-8 slices of 3 mm)."""
    hu, liver = _ct(_rim_lesion(radius_mm, radius_mm - 3.5, 25.0), seed=10)
    fit, _box, _distance = fit_rim(hu, liver, CENTRE_KJI, SPACING_KJI)  # type: ignore[misc]
    assert fit.radius_mm == pytest.approx(radius_mm, abs=0.5)
    found = _search(hu, liver, replace(default_settings(), region_growing=False))
    assert found is not None and found.method == "rim_fit"
    # Half a millimetre off the radius of a 6 mm lesion is a Dice of 0.87.
    assert dice(found.mask, _distance_mm() <= radius_mm) >= 0.85


@pytest.mark.parametrize("seed", range(6))
def test_a_half_ring_is_not_a_lesion(seed: int) -> None:
    """The same rim on one side only (a vessel or the liver's edge curving past): it fits as a rim of 8 standard
    errors and more, but it does not go round."""
    hu, liver = _ct(_rim_lesion(half=True), seed)
    fit, _box, _distance = fit_rim(hu, liver, CENTRE_KJI, SPACING_KJI)  # type: ignore[misc]
    assert fit.rim_mm > 0 and fit.rim_z >= default_settings().rim_fit_min_z
    assert fit.cover < default_settings().rim_fit_min_cover
    assert _search(hu, liver, default_settings()) is None


@pytest.mark.parametrize("offset_mm", [4.0, 6.0, 8.0])
def test_a_bright_vessel_beside_the_point_is_not_a_lesion(offset_mm: float) -> None:
    """A tube 60 HU brighter than the liver (radius 2.4 mm) running along i, its axis ``offset_mm`` from the point."""
    k, j, _i = np.ogrid[: SHAPE_KJI[0], : SHAPE_KJI[1], : SHAPE_KJI[2]]
    axis_j = CENTRE_KJI[1] + offset_mm / SPACING_KJI[1]
    tube = ((k - CENTRE_KJI[0]) * SPACING_KJI[0]) ** 2 + ((j - axis_j) * SPACING_KJI[1]) ** 2 <= 2.4**2
    hu, liver = _ct(np.where(np.broadcast_to(tube, SHAPE_KJI), LIVER_HU + 60.0, LIVER_HU), seed=7)
    assert _search(hu, liver, default_settings()) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_very_bright_vessel_touching_the_rim_does_not_hide_the_lesion(seed: int) -> None:
    """The rim lesion with a tube 250 HU brighter (a contrast-filled vessel, radius 3 mm) running along i, its axis
    11 mm from the centre: it touches the rim. The fit clips the window's values at 3 spreads from the liver's
    median, so the tube weighs like any bright voxel (unclipped, it pulled the fit to a 15 mm plain ball)."""
    k, j, _i = np.ogrid[: SHAPE_KJI[0], : SHAPE_KJI[1], : SHAPE_KJI[2]]
    axis_j = CENTRE_KJI[1] + 11.0 / SPACING_KJI[1]
    tube = ((k - CENTRE_KJI[0]) * SPACING_KJI[0]) ** 2 + ((j - axis_j) * SPACING_KJI[1]) ** 2 <= 3.0**2
    hu, liver = _ct(np.where(np.broadcast_to(tube, SHAPE_KJI), LIVER_HU + 250.0, _rim_lesion()), seed)
    found = _search(hu, liver, default_settings())
    assert found is not None and found.method == "rim_fit"
    assert dice(found.mask, _distance_mm() <= 8.0) >= 0.95


@pytest.mark.parametrize("seed", range(4))
def test_uniform_noisy_liver_is_not_a_lesion(seed: int) -> None:
    hu, liver = _ct(np.full(SHAPE_KJI, LIVER_HU), seed)
    for voxel in (CENTRE_KJI, (12, 40, 80), (28, 85, 40)):
        assert _search(hu, liver, default_settings(), voxel) is None


def test_the_fit_is_the_same_on_a_reflected_grid() -> None:
    """The case mirrored along k and i (the point with it): the lesion found is the mirror of the first one."""
    hu, liver = _ct(_rim_lesion(), seed=3)
    found = _search(hu, liver, default_settings())
    flip = (slice(None, None, -1), slice(None), slice(None, None, -1))
    mirrored_voxel = (SHAPE_KJI[0] - 1 - CENTRE_KJI[0], CENTRE_KJI[1], SHAPE_KJI[2] - 1 - CENTRE_KJI[2])
    mirrored = _search(hu[flip].copy(), liver[flip].copy(), default_settings(), mirrored_voxel)
    assert found is not None and mirrored is not None
    assert found.method == mirrored.method == "rim_fit"
    assert np.array_equal(mirrored.mask, found.mask[flip])


def _rim_on_grid(in_plane_mm: float, seed: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int], np.ndarray]:
    """A 16 mm rim lesion (+20 HU from 4.5 to 8 mm, the core at the liver's value) in a 60 mm cube on a grid of
    ``in_plane_mm`` x ``in_plane_mm`` x 2.5 mm, rendered as the phantoms are: blurred by the voxel's box and a
    1 mm point spread, white noise blurred the same way and scaled to 15 HU per voxel (correlated noise, the same
    per voxel on any grid)."""
    spacing = np.array([2.5, in_plane_mm, in_plane_mm])
    shape = tuple(int(round(60.0 / s)) for s in spacing)
    centre = (shape[0] // 2, shape[1] // 2, shape[2] // 2)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    distance = np.sqrt(sum(((g - c) * d) ** 2 for g, c, d in zip(grids, centre, spacing)))
    sigma = [np.sqrt(d**2 / 12.0 + 1.0) / d for d in spacing]
    hu = ndimage.gaussian_filter(np.where((distance <= 8.0) & (distance > 4.5), 120.0, 100.0), sigma)
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    liver = np.zeros(shape, bool)
    liver[1:-1, 1:-1, 1:-1] = True
    return hu + noise * (NOISE_HU / noise.std()), liver, centre, spacing


def test_the_rims_z_does_not_grow_with_finer_voxels() -> None:
    """The same lesion and the same noise per voxel on 0.75 mm and 1.5 mm in-plane voxels: the rim's z (its
    amplitude over its standard error, which ``rim_fit_min_z`` bounds) is the same within a third, median over
    six noise draws. Counting every voxel as an independent sample made it about twice as large on the fine
    grid (36.8 against 17.6), where normal liver passed the threshold chosen on coarse voxels."""
    medians = []
    for in_plane in (0.75, 1.5):
        z = []
        for seed in range(6):
            hu, liver, centre, spacing = _rim_on_grid(in_plane, seed)
            found = fit_rim(hu, liver, centre, spacing)
            assert found is not None
            if found[0].rim_mm > 0:
                z.append(found[0].rim_z)
        assert len(z) >= 4
        medians.append(float(np.median(z)))
    fine, coarse = medians
    assert coarse > 10.0
    assert 0.75 <= fine / coarse <= 1.33, medians


def test_the_whole_click_adds_the_rim_lesion_with_the_real_network() -> None:
    """Through :class:`PointSegmenter` (the bundled tumor network on one CPU thread, a window at the point), a
    fainter rim (16 HU): growing refuses, the fit adds the lesion. Without the fit the network's component at
    the point is taken, and it is a fragment (why the fit comes before it)."""
    hu, liver = _ct(_rim_lesion(rim_hu=16.0), seed=4)
    geometry = Geometry.create(SHAPE_KJI, tuple(SPACING_KJI[::-1]), (-48.0, -48.0, -60.0))
    ct = CTVolume(hu.astype(np.int16), geometry)
    labels, lesions = liver.astype(np.uint8), np.zeros(SHAPE_KJI, np.uint16)
    point = tuple(float(v) for v in geometry.index_to_lps(np.asarray(CENTRE_KJI, dtype=float)[::-1]))
    truth = _distance_mm() <= 8.0
    masks = {}
    for rim_fit in (True, False):
        settings = replace(default_settings(), rim_fit=rim_fit)
        added = PointSegmenter("smoothsegnet-demo-tumor", threads=1, settings=settings)(ct, labels, lesions, point)  # type: ignore[arg-type]
        masks[rim_fit] = np.zeros(SHAPE_KJI, bool)
        masks[rim_fit][added.box] = added.mask
        assert added.method == ("rim_fit" if rim_fit else "network")
        if rim_fit:
            assert added.confidence < 0.5  # the network's mean probability in the lesion
    assert dice(masks[True], truth) >= 0.85
    assert dice(masks[False], truth) < 0.5


def test_the_command_line_adds_the_rim_lesion_and_records_how(tmp_path: Path) -> None:
    """``smoothsegnet add-lesion`` on a folder written as ``segment`` writes it (no lesion yet): the ring lesion
    becomes lesion 1, the report validates against its schema and records the method ``rim_fit``; a second click
    on plain liver is refused and leaves the folder byte for byte as it was."""
    hu, liver = _ct(_rim_lesion(rim_hu=16.0), seed=4)
    geometry = Geometry.create(SHAPE_KJI, tuple(SPACING_KJI[::-1]), (-48.0, -48.0, -60.0))
    labels, lesions = liver.astype(np.uint8), np.zeros(SHAPE_KJI, np.uint16)
    phantom = SimpleNamespace(ct=CTVolume(hu.astype(np.int16), geometry))
    out = write_case_folder(tmp_path, phantom, labels, lesions)  # type: ignore[arg-type]
    centre = ",".join(f"{v:.3f}" for v in geometry.index_to_lps(np.asarray(CENTRE_KJI, dtype=float)[::-1]))
    result = run_cli("add-lesion", str(out), f"--at={centre}")
    assert result.returncode == 0, result.stderr
    assert "rim_fit" in result.stdout
    report = load_report(out)
    schema_path = Path(__file__).resolve().parents[1] / "SmoothSegNetLib/schemas/report.schema.json"
    jsonschema.validate(report, json.loads(schema_path.read_text(encoding="utf-8")))
    assert report["corrections"][-1]["method"] == "rim_fit" and report["corrections"][-1]["lesion_id"] == 1
    written, written_geometry = read_labelmap(out / "lesions.nrrd", "lesions.nrrd")
    assert written_geometry.same_grid(geometry, atol=1e-6)
    assert dice(written == 1, _distance_mm() <= 8.0) >= 0.85
    assert report["lesions"][0]["voxel_count"] == int(np.count_nonzero(written == 1))
    before = folder_digest(out)
    plain = ",".join(f"{v:.3f}" for v in geometry.index_to_lps(np.array([90.0, 30.0, 10.0])))
    refused = run_cli("add-lesion", str(out), f"--at={plain}")
    assert refused.returncode == 2 and "nothing lesion-like" in refused.stderr
    assert folder_digest(out) == before


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("rim_fit_min_cover", 1.5, "a number in [0, 1]"),
        ("rim_fit_min_z", -1.0, "a finite number >= 0"),
        ("rim_fit", "yes", "true or false"),
    ],
)
def test_bad_rim_fit_settings_are_refused(name: str, value: object, rule: str) -> None:
    with pytest.raises(InputError, match=rf"{name} must be {re.escape(rule)}"):
        AddLesionSettings.from_dict({name: value})
