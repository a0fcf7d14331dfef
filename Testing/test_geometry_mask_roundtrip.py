"""A mask computed on an internal canonical grid lands exactly on the input grid (issue 2, item 6).

The input is oblique, reflected (left-handed), anisotropic and far from the origin; a sphere is placed at a
known LPS point off the voxel lattice and off the grid's centre (so a flip of any axis moves it by at least
6.5 mm, 26 times the tolerance). The "model" works on the canonical grid (orientation PLI, 1.5 mm isotropic,
as the inference does); its output is mapped back and the sphere's LPS centroid and volume are compared with
the truth. Measured: centroid within 0.05-0.11 mm of the true point, volume within 3 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from _geometry_helpers import OBLIQUE, centroid_lps, permutation_id, signed_permutations, sphere_mask

from SmoothSegNetLib.io import read_volume
from SmoothSegNetLib.io.writers import write_labelmap, write_volume
from SmoothSegNetLib.resample import Interpolation, canonical_geometry, reorient_to, resample
from SmoothSegNetLib.volume import CTVolume, Geometry

SHAPE_KJI = (20, 40, 36)
SPACING_MM = (0.8, 1.1, 2.5)
ORIGIN_LPS_MM = (-153.7, 88.2, -1204.9)
RADIUS_MM = 9.0
SPHERE_VOLUME_MM3 = 4.0 / 3.0 * np.pi * RADIUS_MM**3  # 3053.6 mm3
CANONICAL_SPACING_MM = 1.5
#: "A fraction of a voxel": a quarter of the input's smallest spacing.
CENTROID_TOLERANCE_MM = 0.25 * min(SPACING_MM)


def oblique_input(direction: np.ndarray) -> tuple[Geometry, np.ndarray]:
    geometry = Geometry.create(SHAPE_KJI, SPACING_MM, ORIGIN_LPS_MM, direction)
    # Off-lattice and off-centre: 23.3 of 36 columns, 15.6 of 40 rows, 8.2 of 20 slices.
    centre = geometry.index_to_lps([23.3, 15.6, 8.2])
    return geometry, centre


def volume_mm3(mask: np.ndarray, geometry: Geometry) -> float:
    return float(mask.astype(bool).sum() * geometry.voxel_volume_mm3)


@pytest.mark.parametrize(("name", "direction"), OBLIQUE, ids=[n for n, _ in OBLIQUE])
def test_mask_made_on_canonical_grid_lands_on_the_input_grid(name: str, direction: np.ndarray) -> None:
    geometry, centre = oblique_input(direction)
    canonical = canonical_geometry(geometry, CANONICAL_SPACING_MM, "PLI")
    on_canonical = sphere_mask(canonical, centre, RADIUS_MM)  # what a network would output there
    back = resample(on_canonical, canonical, geometry, Interpolation.NEAREST)
    assert back.shape == SHAPE_KJI and back.dtype == np.uint8
    assert np.linalg.norm(centroid_lps(back, geometry) - centre) < CENTROID_TOLERANCE_MM
    assert volume_mm3(back, geometry) == pytest.approx(SPHERE_VOLUME_MM3, rel=0.04)
    # Would a wrong mapping be caught? Flipping any axis of the result moves the sphere by 6.5 mm or more.
    for axis in range(3):
        assert np.linalg.norm(centroid_lps(np.flip(back, axis), geometry) - centre) > 6.0


def test_segmentation_of_a_ct_through_the_canonical_grid_and_files(tmp_path: Path) -> None:
    geometry, centre = oblique_input(OBLIQUE[3][1])  # reflected
    truth = sphere_mask(geometry, centre, RADIUS_MM)
    hu = np.where(truth > 0, 120, -80).astype(np.int16)
    hu[0, 0, 0] = -1000  # air somewhere, as in any CT
    ct = read_volume(write_volume(tmp_path / "ct.nrrd", CTVolume(hu, geometry)))
    canonical = canonical_geometry(ct.geometry, CANONICAL_SPACING_MM, "PLI")
    ct_canonical = resample(ct.array, ct.geometry, canonical, Interpolation.LINEAR, default_value=-1024)
    predicted = (ct_canonical > 20).astype(np.uint8)  # the "model": threshold halfway between 120 and -80
    back = resample(predicted, canonical, ct.geometry, Interpolation.NEAREST)
    path = write_labelmap(tmp_path / "segmentation.nii.gz", back, ct.geometry)
    image = sitk.ReadImage(str(path))
    written, written_geometry = sitk.GetArrayFromImage(image), Geometry.from_sitk(image)
    assert np.linalg.norm(centroid_lps(written, written_geometry) - centre) < CENTROID_TOLERANCE_MM
    assert volume_mm3(written, written_geometry) == pytest.approx(volume_mm3(truth, geometry), rel=0.04)
    overlap = 2 * np.logical_and(written, truth).sum() / (written.astype(bool).sum() + truth.sum())
    assert overlap > 0.9


def test_probabilities_mapped_back_linearly_then_thresholded() -> None:
    geometry, centre = oblique_input(OBLIQUE[1][1])
    canonical = canonical_geometry(geometry, CANONICAL_SPACING_MM, "PLI")
    probability = sphere_mask(canonical, centre, RADIUS_MM).astype(np.float32)
    back = resample(probability, canonical, geometry, Interpolation.LINEAR) >= 0.5
    assert np.linalg.norm(centroid_lps(back, geometry) - centre) < CENTROID_TOLERANCE_MM
    assert volume_mm3(back, geometry) == pytest.approx(SPHERE_VOLUME_MM3, rel=0.05)


@pytest.mark.parametrize("direction", signed_permutations()[1::6], ids=permutation_id)
def test_pure_permutation_canonical_grid_is_exact(direction: np.ndarray) -> None:
    geometry, centre = oblique_input(direction)
    truth = sphere_mask(geometry, centre, RADIUS_MM)
    hu = np.where(truth > 0, 120, -80).astype(np.int16)
    canonical = canonical_geometry(geometry, None, "PLI")  # same spacing: a permutation of the input grid
    ct_canonical = resample(hu, geometry, canonical, Interpolation.LINEAR)
    assert np.array_equal(ct_canonical, reorient_to(hu, geometry, "PLI")[0])  # no interpolation happened
    back = resample((ct_canonical > 20).astype(np.uint8), canonical, geometry, Interpolation.NEAREST)
    assert np.array_equal(back, truth)
    assert np.linalg.norm(centroid_lps(back, geometry) - centroid_lps(truth, geometry)) < 1e-9
