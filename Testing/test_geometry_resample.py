"""Orientation codes, canonical grids, exact reorientation, crops and resampling (issue 2, item 6).

SimpleITK's own ``DICOMOrient`` filter is the independent reference for reorientation; a linear field
(exactly reproduced by linear interpolation) is the reference for where the resampler samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from _geometry_helpers import OBLIQUE, SHAPE_KJI, hu_array, permutation_id, signed_permutations, voxel_centres_lps

from SmoothSegNetLib.resample import (
    Interpolation,
    canonical_geometry,
    crop_geometry,
    orientation_code,
    orientation_direction,
    paste_crop,
    reorient_to,
    reoriented_geometry,
    resample,
)
from SmoothSegNetLib.volume import Geometry

SPACING_MM = (0.7, 1.3, 2.9)
ORIGIN_LPS_MM = (-120.3, 41.7, -950.2)


def to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    geometry.apply_to(image)
    return image


# -- orientation codes ------------------------------------------------------------------------------------


def test_orientation_codes_give_the_hand_written_matrices() -> None:
    assert np.array_equal(orientation_direction("LPS"), np.eye(3))
    assert np.array_equal(orientation_direction("RAS"), np.diag([-1.0, -1.0, 1.0]))
    # PLI: i points posterior (+y), j left (+x), k inferior (-z); columns are the axes.
    assert np.array_equal(orientation_direction("PLI"), np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]], dtype=float))
    assert np.array_equal(orientation_direction("pli"), orientation_direction("PLI"))


@pytest.mark.parametrize("bad", ["LLS", "LPR", "XYZ", "LP", "LPSA", "", 3])
def test_bad_orientation_code_is_refused_with_the_rule(bad: object) -> None:
    with pytest.raises(ValueError, match=r"one from each of L/R, P/A, S/I.*got"):
        orientation_direction(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("direction", signed_permutations(), ids=permutation_id)
def test_orientation_code_agrees_with_simpleitk(direction: np.ndarray) -> None:
    image = to_sitk(np.zeros(SHAPE_KJI, np.int16), Geometry.create(SHAPE_KJI, direction=direction))
    expected = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
    geometry = Geometry.create(SHAPE_KJI, direction=direction)
    assert orientation_code(geometry) == expected
    assert np.array_equal(orientation_direction(expected), direction)


# -- exact reorientation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["LPS", "RAS", "PLI"])
@pytest.mark.parametrize("direction", signed_permutations(), ids=permutation_id)
def test_reorient_matches_simpleitk_dicomorient(direction: np.ndarray, target: str) -> None:
    geometry = Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, direction)
    array = hu_array(SHAPE_KJI)
    moved, moved_geometry = reorient_to(array, geometry, target)
    reference = sitk.DICOMOrient(to_sitk(array, geometry), target)
    assert np.array_equal(moved, sitk.GetArrayFromImage(reference))
    assert moved_geometry.same_grid(Geometry.from_sitk(reference), atol=1e-9)
    assert np.array_equal(moved_geometry.direction_array, orientation_direction(target))
    back, back_geometry = reorient_to(moved, moved_geometry, orientation_code(geometry))
    assert np.array_equal(back, array)
    assert back_geometry.same_grid(geometry, atol=1e-9)


def test_reorient_keeps_every_voxel_at_its_lps_position() -> None:
    geometry = Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, signed_permutations()[29])
    array = hu_array(SHAPE_KJI)
    moved, moved_geometry = reorient_to(array, geometry, "PLI")
    # Each voxel's value must be found at the same LPS point in the moved grid.
    index_in_moved = moved_geometry.lps_to_index(voxel_centres_lps(geometry))
    i, j, k = np.rint(index_in_moved).astype(int).transpose(3, 0, 1, 2)
    assert np.allclose(index_in_moved, np.rint(index_in_moved), atol=1e-9)
    assert np.array_equal(moved[k, j, i], array)


def test_reorient_of_oblique_grid_keeps_it_oblique_and_exact() -> None:
    geometry = Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, OBLIQUE[1][1])
    array = hu_array(SHAPE_KJI)
    moved, moved_geometry = reorient_to(array, geometry, "RAS")
    assert orientation_code(moved_geometry) == "RAS"
    assert sorted(moved.ravel().tolist()) == sorted(array.ravel().tolist())
    assert np.allclose(np.sort(voxel_centres_lps(moved_geometry).reshape(-1, 3), axis=0),
                       np.sort(voxel_centres_lps(geometry).reshape(-1, 3), axis=0), atol=1e-9)  # fmt: skip


def test_reorient_keeps_leading_channel_axis() -> None:
    geometry = Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, signed_permutations()[11])
    stack = np.stack([hu_array(SHAPE_KJI, seed) for seed in range(3)])
    moved, _ = reorient_to(stack, geometry, "PLI")
    for channel in range(3):
        assert np.array_equal(moved[channel], reorient_to(stack[channel], geometry, "PLI")[0])


# -- canonical grids --------------------------------------------------------------------------------------


def test_canonical_grid_at_coarser_spacing_is_hand_computable() -> None:
    # Identity grid of 10 x 8 x 8 voxels of 1 mm at the origin: corners span -0.5 .. 9.5 (i) and -0.5 .. 7.5.
    geometry = Geometry.create((8, 8, 10))
    two = canonical_geometry(geometry, 2.0, "LPS")
    assert two.shape_kji == (4, 4, 5)
    assert two.origin_lps_mm == pytest.approx((0.5, 0.5, 0.5))
    # 3 mm does not divide 10 mm: 4 voxels (12 mm), centred, so the first centre is at -0.5 - 1 + 1.5 = 0.
    three = canonical_geometry(geometry, 3.0, "LPS")
    assert three.size_ijk == (4, 3, 3)
    assert three.origin_lps_mm == pytest.approx((0.0, 0.5, 0.5))  # 8 mm -> 3 voxels: -0.5 - 0.5 + 1.5


def test_canonical_grid_in_ras_starts_at_the_right_anterior_corner() -> None:
    geometry = Geometry.create((8, 8, 10), (1.0, 2.0, 3.0), (10.0, 20.0, 30.0))
    ras = canonical_geometry(geometry, None, "RAS")
    assert ras.spacing_mm == (1.0, 2.0, 3.0)
    assert ras.origin_lps_mm == pytest.approx((19.0, 34.0, 30.0))  # last i, last j column/row of the input
    assert np.array_equal(ras.direction_array, np.diag([-1.0, -1.0, 1.0]))


@pytest.mark.parametrize("direction", signed_permutations()[::5], ids=permutation_id)
def test_canonical_grid_of_axis_aligned_input_is_the_input_reoriented(direction: np.ndarray) -> None:
    geometry = Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, direction)
    canonical = canonical_geometry(geometry, None, "PLI")
    assert canonical.same_grid(reoriented_geometry(geometry, "PLI"), atol=1e-9)
    array = hu_array(SHAPE_KJI)
    on_canonical = resample(array, geometry, canonical, Interpolation.LINEAR)
    assert np.array_equal(on_canonical, reorient_to(array, geometry, "PLI")[0])
    assert np.array_equal(resample(on_canonical, canonical, geometry, Interpolation.LINEAR), array)


@pytest.mark.parametrize(("name", "direction"), OBLIQUE, ids=[n for n, _ in OBLIQUE])
def test_canonical_grid_covers_every_input_voxel(name: str, direction: np.ndarray) -> None:
    geometry = Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, direction)
    canonical = canonical_geometry(geometry, 1.5, "PLI")
    index = canonical.lps_to_index(voxel_centres_lps(geometry)).reshape(-1, 3)
    assert np.all(index >= -0.5) and np.all(index <= np.array(canonical.size_ijk) - 0.5)
    # ... and not much more than that: each side at most one voxel beyond the input's corners.
    corners = np.array([[a, b, c] for a in (-0.5, 7.5) for b in (-0.5, 8.5) for c in (-0.5, 9.5)])
    span = np.ptp(canonical.lps_to_index(geometry.index_to_lps(corners)), axis=0)
    assert np.all(np.array(canonical.size_ijk) - span < 1.0 + 1e-9)


def test_canonical_spacing_must_be_positive() -> None:
    with pytest.raises(ValueError, match="spacing_mm must be one or three finite values > 0"):
        canonical_geometry(Geometry.create(SHAPE_KJI), (1.0, 0.0, 1.0))


# -- crops ------------------------------------------------------------------------------------------------


def test_crop_geometry_moves_the_origin_to_the_first_kept_voxel() -> None:
    geometry = Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, OBLIQUE[2][1])
    slices = (slice(2, 7), slice(1, None), slice(-3, None))
    crop = crop_geometry(geometry, slices)
    assert crop.shape_kji == (5, 8, 3)
    np.testing.assert_allclose(crop.origin_lps_mm, geometry.index_to_lps([5, 1, 2]), atol=1e-12)
    array = hu_array(SHAPE_KJI)
    assert np.array_equal(resample(array, geometry, crop, Interpolation.LINEAR), array[slices])
    pasted = paste_crop(array[slices], slices, geometry, default_value=-1024)
    assert np.array_equal(pasted[slices], array[slices])
    outside = np.ones(SHAPE_KJI, bool)
    outside[slices] = False
    assert np.all(pasted[outside] == -1024)


@pytest.mark.parametrize(
    "slices", [(slice(0, 3), slice(0, 3)), (slice(0, 3, 2), slice(None), slice(None)), (slice(5, 5),) * 3]
)
def test_bad_crop_is_refused(slices: tuple[slice, ...]) -> None:
    with pytest.raises(ValueError, match="kji_slices"):
        crop_geometry(Geometry.create(SHAPE_KJI), slices)  # type: ignore[arg-type]


# -- interpolation ----------------------------------------------------------------------------------------


def linear_field(points_lps: np.ndarray) -> np.ndarray:
    return 2.0 * points_lps[..., 0] - 3.0 * points_lps[..., 1] + 0.5 * points_lps[..., 2] + 7.0


def test_linear_resampling_samples_at_the_right_lps_points() -> None:
    src = Geometry.create((12, 12, 12), (1.1, 0.9, 2.0), (5.0, -3.0, 40.0), OBLIQUE[4][1])
    values = linear_field(voxel_centres_lps(src))
    # A destination grid well inside the source, in another orientation and spacing.
    centre = src.index_to_lps([5.5, 5.5, 5.5])
    dst = Geometry.create((4, 5, 6), (0.8, 1.0, 1.2), centre - 2.0, orientation_direction("PLI"))
    result = resample(values, src, dst, Interpolation.LINEAR)
    np.testing.assert_allclose(result, linear_field(voxel_centres_lps(dst)), atol=1e-9)


def test_integer_linear_resampling_rounds_and_outside_gets_default() -> None:
    src = Geometry.create((8, 8, 8))
    array = np.broadcast_to((np.arange(8) * 10).astype(np.int16), (8, 8, 8)).copy()  # 0, 10, ... 70 along i
    dst = Geometry.create((8, 8, 8), origin_lps_mm=(0.4, 0.0, 0.0))  # 0.4 voxel to the left
    result = resample(array, src, dst, "linear", default_value=-1000)
    assert result.dtype == np.int16
    assert result[0, 0].tolist() == [4, 14, 24, 34, 44, 54, 64, 70]  # last: within the last voxel's outer half
    far = Geometry.create((8, 8, 8), origin_lps_mm=(100.0, 0.0, 0.0))
    assert np.all(resample(array, src, far, "nearest", default_value=-1000) == -1000)


def test_boolean_masks_stay_boolean() -> None:
    src = Geometry.create((8, 8, 8))
    mask = np.zeros((8, 8, 8), bool)
    mask[2:6, 2:6, 2:6] = True
    dst = Geometry.create((8, 8, 8), origin_lps_mm=(0.25, 0.0, 0.0))
    for method in Interpolation:
        result = resample(mask, src, dst, method)
        assert result.dtype == np.bool_
        assert result.sum() == mask.sum()  # a quarter-voxel shift keeps each 4-voxel run at 4 voxels


def test_channels_are_resampled_alike() -> None:
    src = Geometry.create((8, 8, 8), (1.0, 1.0, 2.0))
    dst = canonical_geometry(Geometry.create((8, 8, 8), (1.0, 1.0, 2.0), direction=OBLIQUE[0][1]), 1.3, "RAS")
    stack = np.stack([hu_array((8, 8, 8), seed).astype(np.float32) for seed in range(2)])
    result = resample(stack, src, dst, "linear")
    assert result.shape == (2, *dst.shape_kji)
    assert np.array_equal(result[1], resample(stack[1], src, dst, "linear"))


def test_resample_refuses_array_not_on_src() -> None:
    with pytest.raises(ValueError, match=r"array_kji has shape \(8, 8, 9\) but src has shape_kji \(8, 8, 8\)"):
        resample(np.zeros((8, 8, 9)), Geometry.create((8, 8, 8)), Geometry.create((8, 8, 8)))
    with pytest.raises(ValueError, match="interpolation must be one of nearest, linear, bspline, got 'cubic'"):
        resample(np.zeros((8, 8, 8)), Geometry.create((8, 8, 8)), Geometry.create((8, 8, 8)), "cubic")
