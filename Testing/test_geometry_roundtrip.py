"""File -> volume -> file round trips keep voxels and geometry exactly (issue 2, item 6).

Every case writes with :mod:`SmoothSegNetLib.io.writers`, reads back with ``read_volume`` (the validated reader
the product uses), and compares the array bit for bit and the IJK-to-LPS matrix to 1e-6 mm. NIfTI stores its
geometry in 32-bit floats, so its cases use spacings and origins that float32 holds exactly; a separate test
pins the float32 limit for arbitrary values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _geometry_helpers import OBLIQUE, SHAPE_KJI, ct, permutation_id, signed_permutations

from SmoothSegNetLib.io import read_volume
from SmoothSegNetLib.io.writers import read_seg_nrrd, write_labelmap, write_seg_nrrd, write_volume
from SmoothSegNetLib.terminology import output_segments
from SmoothSegNetLib.volume import Geometry

FORMATS = (".nrrd", ".nii.gz", ".mha")
#: Anisotropic spacing and far-from-zero origin; values exact in float32 so NIfTI can be held to 1e-6 too.
SPACING_MM = (0.75, 1.25, 2.5)
ORIGIN_LPS_MM = (-123.25, 45.5, -987.75)
#: Arbitrary values (not float32-exact), for the formats that store doubles.
SPACING_ODD_MM = (0.7031, 1.3, 2.99)
ORIGIN_ODD_LPS_MM = (-163.2849, 201.0004, -1032.1234567)
TOLERANCE_MM = 1e-6


def assert_same_volume(path: Path, expected_array: np.ndarray, expected: Geometry) -> None:
    back = read_volume(path)
    assert back.array.dtype == expected_array.dtype
    assert np.array_equal(back.array, expected_array)
    assert back.geometry.shape_kji == expected.shape_kji
    np.testing.assert_allclose(back.geometry.ijk_to_lps(), expected.ijk_to_lps(), rtol=0, atol=TOLERANCE_MM)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("direction", signed_permutations(), ids=permutation_id)
def test_all_48_axis_permutations_round_trip_exactly(tmp_path: Path, suffix: str, direction: np.ndarray) -> None:
    volume = ct(Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, direction))
    path = write_volume(tmp_path / f"ct{suffix}", volume)
    assert_same_volume(path, volume.array, volume.geometry)


def test_the_48_permutations_are_distinct_and_include_reflections() -> None:
    matrices = signed_permutations()
    assert len({m.tobytes() for m in matrices}) == 48
    determinants = [round(np.linalg.det(m)) for m in matrices]
    assert determinants.count(1) == 24 and determinants.count(-1) == 24


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize(("name", "direction"), OBLIQUE, ids=[n for n, _ in OBLIQUE])
def test_oblique_directions_round_trip(tmp_path: Path, suffix: str, name: str, direction: np.ndarray) -> None:
    volume = ct(Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, direction), seed=3)
    path = write_volume(tmp_path / f"ct{suffix}", volume)
    assert_same_volume(path, volume.array, volume.geometry)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize(("name", "direction"), OBLIQUE[2:4], ids=[n for n, _ in OBLIQUE[2:4]])
def test_double_precision_formats_keep_arbitrary_values(
    tmp_path: Path, suffix: str, name: str, direction: np.ndarray
) -> None:
    volume = ct(Geometry.create(SHAPE_KJI, SPACING_ODD_MM, ORIGIN_ODD_LPS_MM, direction), seed=4)
    path = write_volume(tmp_path / f"ct{suffix}", volume)
    assert_same_volume(path, volume.array, volume.geometry)


def test_nifti_keeps_arbitrary_values_to_float32_precision(tmp_path: Path) -> None:
    volume = ct(Geometry.create(SHAPE_KJI, SPACING_ODD_MM, ORIGIN_ODD_LPS_MM, OBLIQUE[1][1]), seed=5)
    back = read_volume(write_volume(tmp_path / "ct.nii.gz", volume))
    assert np.array_equal(back.array, volume.array)
    error_mm = np.abs(back.geometry.ijk_to_lps() - volume.geometry.ijk_to_lps()).max()
    # float32 holds ~7 significant digits: 1032.12 mm is kept to ~6e-5 mm, far below any voxel.
    assert error_mm < 1032.2 * 2 * np.finfo(np.float32).eps * 4


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_labelmap_round_trip_on_oblique_reflected_grid(tmp_path: Path, suffix: str, dtype: type) -> None:
    geometry = Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, OBLIQUE[3][1])
    labels = (np.arange(np.prod(SHAPE_KJI)).reshape(SHAPE_KJI) % 7).astype(dtype)
    if dtype is np.uint16:
        labels[0, 0, 0] = 65535
    import SimpleITK as sitk

    image = sitk.ReadImage(str(write_labelmap(tmp_path / f"labels{suffix}", labels, geometry)))
    back = sitk.GetArrayFromImage(image)
    assert back.dtype == dtype
    assert np.array_equal(back, labels)
    np.testing.assert_allclose(Geometry.from_sitk(image).ijk_to_lps(), geometry.ijk_to_lps(), atol=TOLERANCE_MM)


@pytest.mark.parametrize("direction", signed_permutations()[::7] + [m for _, m in OBLIQUE], ids=lambda m: "dir")
def test_seg_nrrd_round_trip_keeps_geometry_exactly(tmp_path: Path, direction: np.ndarray) -> None:
    geometry = Geometry.create(SHAPE_KJI, SPACING_ODD_MM, ORIGIN_ODD_LPS_MM, direction)
    labels = np.zeros(SHAPE_KJI, np.uint8)
    labels[2:7, 1:4, 3:8] = 1
    labels[8, 5, 0] = 2
    path = write_seg_nrrd(tmp_path / "s.seg.nrrd", labels, geometry, output_segments())
    back, back_geometry, _ = read_seg_nrrd(path)
    assert np.array_equal(back, labels)
    np.testing.assert_allclose(back_geometry.ijk_to_lps(), geometry.ijk_to_lps(), rtol=0, atol=1e-9)


def test_repeated_round_trips_do_not_drift(tmp_path: Path) -> None:
    volume = ct(Geometry.create(SHAPE_KJI, SPACING_ODD_MM, ORIGIN_ODD_LPS_MM, OBLIQUE[4][1]), seed=6)
    first = read_volume(write_volume(tmp_path / "a.nrrd", volume))
    second = read_volume(write_volume(tmp_path / "b.nrrd", first))
    assert np.array_equal(second.array, volume.array)
    # NRRD stores spacing x direction; splitting it again may move the last bit, never more.
    np.testing.assert_allclose(second.geometry.ijk_to_lps(), volume.geometry.ijk_to_lps(), rtol=0, atol=1e-12)
