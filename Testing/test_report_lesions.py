"""Lesion instances: 26-connectivity, numbering by decreasing volume, size filter, splitting touching lesions."""

from __future__ import annotations

import numpy as np
import pytest
from _report_helpers import OBLIQUE, ellipsoid_mask, grid, rotation

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.report import label_lesions
from SmoothSegNetLib.volume import Geometry


def test_corner_touching_voxels_are_one_lesion_26_connected() -> None:
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[0, 0, 0] = mask[1, 1, 1] = mask[2, 2, 2] = True  # only corners touch
    lesions = label_lesions(mask, Geometry.create(mask.shape))
    assert lesions.dtype == np.uint16
    assert lesions.max() == 1
    assert np.array_equal(lesions > 0, mask)


def test_numbered_by_decreasing_volume_ties_in_raster_order() -> None:
    mask = np.zeros((1, 10, 20), dtype=bool)
    mask[0, 0, 0:2] = True  # 2 voxels, first in raster order
    mask[0, 5, 0:5] = True  # 5 voxels
    mask[0, 0, 10:12] = True  # 2 voxels, later in raster order than the first pair
    mask[0, 8, 10:13] = True  # 3 voxels
    lesions = label_lesions(mask, Geometry.create(mask.shape))
    assert lesions[0, 5, 0] == 1
    assert lesions[0, 8, 10] == 2
    assert lesions[0, 0, 0] == 3
    assert lesions[0, 0, 10] == 4


def test_min_volume_drops_small_components_and_renumbers() -> None:
    mask = np.zeros((1, 10, 20), dtype=bool)
    mask[0, 0, 0:3] = True  # 3 voxels of 2 mm^3 = 0.006 ml
    mask[0, 5, 0:10] = True  # 10 voxels = 0.020 ml
    geometry = Geometry.create(mask.shape, (1.0, 1.0, 2.0))
    lesions = label_lesions(mask, geometry, min_volume_ml=0.01)
    assert lesions.max() == 1
    assert np.count_nonzero(lesions) == 10
    assert label_lesions(mask, geometry, min_volume_ml=0.006).max() == 2  # >= keeps the boundary case


def test_empty_mask_gives_no_lesion() -> None:
    lesions = label_lesions(np.zeros((2, 3, 4), np.uint8), Geometry.create((2, 3, 4)))
    assert lesions.shape == (2, 3, 4)
    assert lesions.max() == 0


def test_mask_off_grid_is_refused() -> None:
    with pytest.raises(InputError, match=r"tumor_mask_kji has shape \(2, 3, 4\).*shape_kji \(2, 3, 5\)"):
        label_lesions(np.zeros((2, 3, 4)), Geometry.create((2, 3, 5)))


@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_bad_min_volume_is_refused(bad: float) -> None:
    with pytest.raises(InputError, match="min_volume_ml must be a finite number >= 0"):
        label_lesions(np.zeros((2, 3, 4)), Geometry.create((2, 3, 4)), min_volume_ml=bad)


def test_two_touching_spheres_merge_unless_split() -> None:
    geometry = grid((36, 40, 64), (0.8, 0.8, 1.0))
    centre_a = geometry.index_to_lps([20, 20, 18])
    axes = np.eye(3)
    # Spheres of radius 10 and 7 mm whose centres are 16 mm apart: they overlap by a 1 mm neck.
    centre_b = centre_a + np.array([16.0, 0.0, 0.0])
    a = ellipsoid_mask(geometry, centre_a, (10.0, 10.0, 10.0), axes)
    b = ellipsoid_mask(geometry, centre_b, (7.0, 7.0, 7.0), axes)
    mask = a | b
    merged = label_lesions(mask, geometry)
    assert merged.max() == 1
    split = label_lesions(mask, geometry, split=True)
    assert split.max() == 2
    voxel_ml = geometry.voxel_volume_mm3 / 1000
    big_ml = 4 / 3 * np.pi * 10**3 / 1000
    small_ml = 4 / 3 * np.pi * 7**3 / 1000
    # The neck is shared; each part keeps its own sphere to within 5 % (the cap given to the neighbour).
    assert np.count_nonzero(split == 1) * voxel_ml == pytest.approx(big_ml, rel=0.05)
    assert np.count_nonzero(split == 2) * voxel_ml == pytest.approx(small_ml, rel=0.05)
    # The centres land in the right lesions.
    ci, cj, ck = np.round(geometry.lps_to_index(centre_b)).astype(int)
    assert split[ck, cj, ci] == 2


@pytest.mark.parametrize("semi_axes_mm", [(14.0, 9.0, 8.0), (25.0, 6.0, 6.0), (30.0, 10.0, 8.0), (20.0, 20.0, 5.0)])
def test_split_keeps_one_elongated_or_flat_lesion_whole(semi_axes_mm: tuple[float, float, float]) -> None:
    """A ridge in the distance map is not a neck (a local-maximum seeding would cut these into 3)."""
    geometry = grid((40, 80, 100), (0.8, 0.8, 1.0), OBLIQUE)
    mask = ellipsoid_mask(geometry, geometry.index_to_lps([50, 40, 20]), semi_axes_mm, rotation((1, 0, 1), 20.0))
    assert label_lesions(mask, geometry, split=True).max() == 1


def test_bad_neck_depth_is_refused() -> None:
    with pytest.raises(InputError, match="split_neck_depth_mm must be a finite number > 0"):
        label_lesions(np.ones((2, 3, 4)), Geometry.create((2, 3, 4)), split=True, split_neck_depth_mm=0.0)
