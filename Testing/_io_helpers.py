"""Builders for the CT input tests: small synthetic CTs, DICOM series edits, geometry helpers."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from SmoothSegNetLib.io import write_ct_series
from SmoothSegNetLib.volume import CTVolume, Geometry

#: A small anisotropic grid with a non-zero origin, used unless a test needs another one.
SHAPE_KJI = (9, 10, 12)
SPACING_MM = (0.7, 0.8, 2.5)
ORIGIN_LPS_MM = (-100.5, 33.25, 7.0)


def oblique_direction() -> np.ndarray:
    """A rotation of 30 degrees about S then -20 degrees about L (right-handed, no axis aligned)."""
    a, b = np.deg2rad(30.0), np.deg2rad(-20.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def signed_permutations() -> Iterator[np.ndarray]:
    """All 48 direction matrices whose columns are signed LPS axes."""
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            d = np.zeros((3, 3))
            for column, (row, sign) in enumerate(zip(perm, signs)):
                d[row, column] = sign
            yield d


def hu_pattern(shape_kji: tuple[int, int, int] = SHAPE_KJI, seed: int = 0) -> np.ndarray:
    """int16 HU values: air outside, soft tissue and bone inside, every slice different."""
    rng = np.random.default_rng(seed)
    array = rng.integers(-1000, 1500, size=shape_kji).astype(np.int16)
    array[:, 0, :] = -1000  # a row of air, as in any CT
    array[:, :, 0] = 40
    return array


def make_ct(
    shape_kji: tuple[int, int, int] = SHAPE_KJI,
    spacing_mm: tuple[float, float, float] = SPACING_MM,
    origin_lps_mm: tuple[float, float, float] = ORIGIN_LPS_MM,
    direction: np.ndarray | None = None,
    seed: int = 0,
) -> CTVolume:
    """A small CT with known voxels and geometry."""
    geometry = Geometry.create(shape_kji, spacing_mm, origin_lps_mm, direction)
    return CTVolume(hu_pattern(shape_kji, seed), geometry)


def write_image(path: Path, array: np.ndarray, spacing: tuple[float, ...] = (1.0, 1.0, 1.0)) -> Path:
    """Write ``array`` (numpy order) with SimpleITK, identity direction."""
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 4 and array.shape[-1] in (3, 4))
    image.SetSpacing(spacing[: image.GetDimension()])
    sitk.WriteImage(image, str(path))
    return path


def write_series(ct: CTVolume, folder: Path, **kwargs: object) -> list[Path]:
    """``write_ct_series`` with test defaults."""
    return write_ct_series(ct, folder, **kwargs)  # type: ignore[arg-type]


def edit_series(paths: list[Path], edit: Callable[[Dataset, int], None]) -> None:
    """Apply ``edit(dataset, k)`` to each file of a written series (k = written slice index) and save it."""
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        edit(ds, k)
        ds.save_as(path, enforce_file_format=True)


def tree_digest(path: Path) -> str:
    """sha256 over the names and bytes of a file or of every file under a folder."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for item in files:
        digest.update(str(item.relative_to(path.parent)).encode())
        digest.update(item.read_bytes())
    return digest.hexdigest()


def corners_lps(geometry: Geometry) -> np.ndarray:
    """The 8 corner voxel centres in LPS, sorted so that two grids over the same box compare equal."""
    k, j, i = geometry.shape_kji
    ijk = np.array(list(itertools.product((0, i - 1), (0, j - 1), (0, k - 1))), dtype=float)
    points = geometry.index_to_lps(ijk)
    return points[np.lexsort(np.round(points, 4).T[::-1])]


def values_at(ct: CTVolume, lps: np.ndarray) -> np.ndarray:
    """Voxel values of ``ct`` at LPS points that lie on voxel centres."""
    ijk = np.rint(ct.geometry.lps_to_index(lps)).astype(int)
    return ct.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]]
