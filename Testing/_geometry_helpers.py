"""Test data for the geometry tests: the 48 axis-aligned directions, oblique rotations, HU-like arrays, spheres."""

from __future__ import annotations

import itertools

import numpy as np

from SmoothSegNetLib.volume import CTVolume, Geometry

#: Smallest grid read_volume accepts (8 voxels along every axis), kept uneven so that a swapped axis shows.
SHAPE_KJI = (10, 9, 8)


def signed_permutations() -> list[np.ndarray]:
    """All 48 direction matrices whose columns are +-unit vectors of L, P, S (6 permutations x 8 sign sets)."""
    matrices = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            for axis, (world, sign) in enumerate(zip(perm, signs)):
                m[world, axis] = sign
            matrices.append(m)
    return matrices


def permutation_id(m: np.ndarray) -> str:
    """A readable test id: where each of i, j, k points (e.g. ``+L-S+P``)."""
    parts = []
    for axis in range(3):
        world = int(np.argmax(np.abs(m[:, axis])))
        parts.append(("+" if m[world, axis] > 0 else "-") + "LPS"[world])
    return "".join(parts)


def rotation(axis: tuple[float, float, float], angle_deg: float, reflect: bool = False) -> np.ndarray:
    """Rodrigues rotation matrix about ``axis``; ``reflect`` negates the k column (a left-handed grid)."""
    u = np.asarray(axis, dtype=float)
    u = u / np.linalg.norm(u)
    a = np.deg2rad(angle_deg)
    cross = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    m = np.cos(a) * np.eye(3) + np.sin(a) * cross + (1 - np.cos(a)) * np.outer(u, u)
    if reflect:
        m[:, 2] *= -1
    return m


#: Oblique directions: (name, matrix). Include a pure tilt, compound rotations and reflected (det -1) ones.
OBLIQUE = [
    ("tilt-about-i-17deg", rotation((1, 0, 0), 17)),
    ("about-111-40deg", rotation((1, 1, 1), 40)),
    ("about-2-1-3-73deg", rotation((2, -1, 3), 73)),
    ("about-0-1-1-128deg-reflected", rotation((0, 1, 1), 128, reflect=True)),
    ("about-1-2-0-211deg-reflected", rotation((1, 2, 0), 211, reflect=True)),
]


def hu_array(shape_kji: tuple[int, int, int] = SHAPE_KJI, seed: int = 0) -> np.ndarray:
    """int16 values in -1000..1000 with no symmetry, so any flip or transpose changes the array."""
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1001, size=shape_kji).astype(np.int16)


def ct(geometry: Geometry, seed: int = 0) -> CTVolume:
    return CTVolume(hu_array(geometry.shape_kji, seed), geometry)


def voxel_centres_lps(geometry: Geometry) -> np.ndarray:
    """``[k, j, i, 3]`` LPS positions of all voxel centres."""
    k, j, i = np.meshgrid(*[np.arange(n) for n in geometry.shape_kji], indexing="ij")
    return geometry.index_to_lps(np.stack([i, j, k], axis=-1))


def sphere_mask(geometry: Geometry, centre_lps_mm: np.ndarray, radius_mm: float) -> np.ndarray:
    """uint8 mask of the voxels whose centre is within ``radius_mm`` of ``centre_lps_mm``."""
    distance = np.linalg.norm(voxel_centres_lps(geometry) - np.asarray(centre_lps_mm), axis=-1)
    return (distance <= radius_mm).astype(np.uint8)


def centroid_lps(mask_kji: np.ndarray, geometry: Geometry) -> np.ndarray:
    """LPS centroid (mm) of the voxels set in ``mask_kji``."""
    k, j, i = np.nonzero(mask_kji)
    return geometry.index_to_lps(np.stack([i, j, k], axis=-1).astype(float)).mean(axis=0)
