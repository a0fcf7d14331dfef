"""Overlap and surface metrics on shapes whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from SmoothSegNetLib.evaluation.metrics import dice, iou, mask_metrics, surface
from SmoothSegNetLib.volume import Geometry


def _box(shape: tuple[int, int, int], k: slice, j: slice, i: slice) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[k, j, i] = True
    return mask


def test_two_cubes_with_known_overlap() -> None:
    shape = (20, 20, 20)
    a = _box(shape, slice(2, 12), slice(2, 12), slice(2, 12))  # 10^3 = 1000 voxels
    b = _box(shape, slice(2, 12), slice(2, 12), slice(4, 14))  # shifted 2 along i: overlap 10*10*8 = 800
    assert dice(a, b) == pytest.approx(2 * 800 / 2000)
    assert iou(a, b) == pytest.approx(800 / 1200)


def test_empty_masks_follow_the_stated_convention() -> None:
    empty = np.zeros((4, 4, 4), dtype=bool)
    full = np.ones((4, 4, 4), dtype=bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(full, empty) == 0.0 and iou(empty, full) == 0.0
    m = mask_metrics(full, empty, Geometry.create((4, 4, 4)))
    assert m.dice == 0.0 and math.isnan(m.hd95_mm) and math.isnan(m.assd_mm)


def test_surface_of_a_cube_is_its_shell() -> None:
    cube = _box((7, 7, 7), slice(1, 6), slice(1, 6), slice(1, 6))
    assert int(surface(cube).sum()) == 5**3 - 3**3


def test_parallel_slabs_give_the_shift_in_mm_along_an_anisotropic_axis() -> None:
    # Two one-voxel-thick slabs 3 slices apart: every surface voxel is exactly 3 * 2.5 mm from the other slab.
    shape = (10, 6, 6)
    a = _box(shape, slice(2, 3), slice(0, 6), slice(0, 6))
    b = _box(shape, slice(5, 6), slice(0, 6), slice(0, 6))
    geometry = Geometry.create(shape, spacing_mm=(0.7, 0.8, 2.5))
    m = mask_metrics(a, b, geometry)
    assert m.hd95_mm == pytest.approx(7.5)
    assert m.hd_mm == pytest.approx(7.5)
    assert m.assd_mm == pytest.approx(7.5)
    assert m.dice == 0.0
    assert m.volume_truth_ml == pytest.approx(36 * 0.7 * 0.8 * 2.5 / 1000)


def test_shifted_box_hausdorff_is_the_shift() -> None:
    # Box shifted by 4 voxels along j (1.5 mm): the far faces are 6 mm apart and nothing is farther.
    shape = (16, 24, 16)
    a = _box(shape, slice(3, 13), slice(3, 13), slice(3, 13))
    b = _box(shape, slice(3, 13), slice(7, 17), slice(3, 13))
    m = mask_metrics(a, b, Geometry.create(shape, spacing_mm=(1.0, 1.5, 1.0)))
    assert m.hd_mm == pytest.approx(6.0)


def test_shifted_sphere_hd_and_identity() -> None:
    shape = (40, 40, 40)
    k, j, i = np.mgrid[:40, :40, :40]
    sphere = (i - 20) ** 2 + (j - 20) ** 2 + (k - 20) ** 2 <= 10**2
    shifted = (i - 23) ** 2 + (j - 20) ** 2 + (k - 20) ** 2 <= 10**2
    geometry = Geometry.create(shape, spacing_mm=(2.0, 2.0, 2.0))
    same = mask_metrics(sphere, sphere, geometry)
    assert same.dice == 1.0 and same.hd95_mm == 0.0 and same.assd_mm == 0.0
    moved = mask_metrics(sphere, shifted, geometry)
    # the pole in the shift direction is exactly 3 voxels (6 mm) beyond the other sphere's pole
    assert moved.hd_mm == pytest.approx(6.0)
    assert 0.0 < moved.assd_mm < moved.hd95_mm <= moved.hd_mm


def test_masks_on_different_grids_are_refused() -> None:
    with pytest.raises(ValueError, match="same grid"):
        mask_metrics(np.zeros((3, 3, 3), bool), np.zeros((3, 3, 4), bool), Geometry.create((3, 3, 3)))
