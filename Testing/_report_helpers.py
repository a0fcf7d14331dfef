"""Synthetic shapes of known size on oblique, anisotropic grids, for the report and DICOM export tests."""

from __future__ import annotations

import numpy as np

from SmoothSegNetLib.volume import CTVolume, Geometry


def rotation(axis: tuple[float, float, float], angle_deg: float) -> np.ndarray:
    """3x3 rotation matrix about ``axis`` (Rodrigues)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    t = np.deg2rad(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


#: An oblique frame: the image axes are rotated 25 degrees about an off-axis direction.
OBLIQUE = rotation((0.3, -0.5, 0.8), 25.0)


def grid(
    shape_kji: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    direction: np.ndarray | None = None,
    origin_lps_mm: tuple[float, float, float] = (-12.5, 40.0, 7.25),
) -> Geometry:
    return Geometry.create(shape_kji, spacing_mm, origin_lps_mm, direction)


def centre_lps(geometry: Geometry) -> np.ndarray:
    """LPS position of the middle of the grid (between voxel centres when a size is even)."""
    k, j, i = geometry.shape_kji
    return geometry.index_to_lps([(i - 1) / 2 + 0.13, (j - 1) / 2 - 0.21, (k - 1) / 2 + 0.07])


def voxel_centres_lps(geometry: Geometry) -> np.ndarray:
    """LPS positions of every voxel centre, shape ``(k, j, i, 3)``."""
    k, j, i = np.meshgrid(*[np.arange(n, dtype=float) for n in geometry.shape_kji], indexing="ij")
    return geometry.index_to_lps(np.stack((i, j, k), axis=-1))


def ellipsoid_mask(
    geometry: Geometry, centre: np.ndarray, semi_axes_mm: tuple[float, float, float], axes_lps: np.ndarray
) -> np.ndarray:
    """Voxels whose centres lie inside an ellipsoid; ``axes_lps`` columns are its (unit) axis directions."""
    local = (voxel_centres_lps(geometry) - centre) @ axes_lps
    return ((local / np.asarray(semi_axes_mm)) ** 2).sum(axis=-1) <= 1.0


def box_mask(
    geometry: Geometry, centre: np.ndarray, half_sizes_mm: tuple[float, float, float], axes_lps: np.ndarray
) -> np.ndarray:
    """Voxels whose centres lie inside a box with the given half sizes along the columns of ``axes_lps``."""
    local = (voxel_centres_lps(geometry) - centre) @ axes_lps
    return np.all(np.abs(local) <= np.asarray(half_sizes_mm), axis=-1)


def voxel_diagonal_mm(geometry: Geometry) -> float:
    return float(np.linalg.norm(geometry.spacing_mm))


def ct_with(labelmap: np.ndarray, geometry: Geometry, liver_hu: int = 60, tumor_hu: int = 30) -> CTVolume:
    """A CT whose HU are ``liver_hu`` in the liver, ``tumor_hu`` in tumor and -100 elsewhere."""
    array = np.full(labelmap.shape, -100, dtype=np.int16)
    array[labelmap == 1] = liver_hu
    array[labelmap == 2] = tumor_hu
    return CTVolume(array, geometry, source="synthetic")
