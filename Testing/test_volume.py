"""The CT volume type: geometry invariants and exact conversions (SimpleITK, Slicer IJK-to-RAS)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from SmoothSegNetLib.volume import CTVolume, Geometry


def _oblique_direction() -> np.ndarray:
    a, b = np.deg2rad(30.0), np.deg2rad(-20.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def test_index_to_lps_hand_computed() -> None:
    g = Geometry.create((4, 3, 2), spacing_mm=(0.5, 2.0, 3.0), origin_lps_mm=(10, 20, 30), direction=np.eye(3))
    # voxel (i=1, j=2, k=3) -> origin + (0.5, 4, 9)
    assert np.allclose(g.index_to_lps([1, 2, 3]), [10.5, 24.0, 39.0])
    assert g.size_ijk == (2, 3, 4)
    assert g.voxel_volume_mm3 == pytest.approx(3.0)


def test_ijk_to_ras_flips_l_and_p_only() -> None:
    g = Geometry.create((4, 3, 2), spacing_mm=(0.5, 2.0, 3.0), origin_lps_mm=(10, 20, 30))
    ras = g.ijk_to_ras()
    assert np.allclose(ras[:3, 3], [-10, -20, 30])
    assert np.allclose(ras[:3, :3], np.diag([-0.5, -2.0, 3.0]))


def test_ijk_to_ras_round_trip_oblique() -> None:
    g = Geometry.create((5, 6, 7), (0.7, 0.8, 2.5), (-100.5, 33.25, 7.0), _oblique_direction())
    back = Geometry.from_ijk_to_ras(g.ijk_to_ras(), g.shape_kji)
    assert back.same_grid(g, atol=1e-9)
    pts = np.array([[0, 0, 0], [6, 5, 4], [1.5, 2.5, 3.5]])
    assert np.allclose(back.lps_to_index(g.index_to_lps(pts)), pts)


def test_sitk_round_trip_is_exact() -> None:
    array = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    g = Geometry.create(array.shape, (0.7, 0.8, 2.5), (-100.5, 33.25, 7.0), _oblique_direction())
    ct = CTVolume(array, g)
    image = ct.to_sitk()
    assert image.GetSize() == (7, 6, 5)
    # SimpleITK's own index->physical mapping agrees with ours
    assert np.allclose(image.TransformIndexToPhysicalPoint((6, 5, 4)), g.index_to_lps([6, 5, 4]))
    back = CTVolume.from_sitk(image)
    assert np.array_equal(back.array, array)
    assert back.geometry.same_grid(g, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spacing_mm": (1.0, 0.0, 1.0)}, "spacing_mm"),
        ({"spacing_mm": (1.0, float("nan"), 1.0)}, "spacing_mm"),
        ({"origin_lps_mm": (0.0, float("inf"), 0.0)}, "origin_lps_mm"),
        ({"direction": [[1, 0, 0], [0.5, 1, 0], [0, 0, 1]]}, "orthonormal"),
    ],
)
def test_geometry_rejects_invalid_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Geometry.create((2, 2, 2), **kwargs)  # type: ignore[arg-type]


def test_volume_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="does not match"):
        CTVolume(np.zeros((2, 3, 4)), Geometry.create((4, 3, 2)))


def test_sitk_geometry_rejects_2d() -> None:
    with pytest.raises(ValueError, match="3D"):
        Geometry.from_sitk(sitk.Image(4, 4, sitk.sitkInt16))
