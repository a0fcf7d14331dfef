"""RECIST axes, 3D diameter, volumes and HU statistics on shapes of known size (oblique, anisotropic grids)."""

from __future__ import annotations

import numpy as np
import pytest
from _report_helpers import OBLIQUE, box_mask, centre_lps, ct_with, ellipsoid_mask, grid, rotation, voxel_diagonal_mm

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.report.axes import farthest_pair, longest_perpendicular_chord
from SmoothSegNetLib.report.recist import recist_axes
from SmoothSegNetLib.volume import CTVolume, Geometry


def _labelmap(tumor: np.ndarray) -> np.ndarray:
    labels = np.ones(tumor.shape, dtype=np.uint8)
    labels[tumor] = 2
    return labels


def _only_lesion(ct: CTVolume, labels: np.ndarray) -> dict:
    report = measure(ct, labels)
    assert report["tumor_burden"]["count"] == 1
    return report["lesions"][0]


def test_rectangle_by_hand() -> None:
    """A 12 x 6 voxel rectangle, spacing 0.5 x 2 mm: the 0.5 iso-contour cuts its corners at edge midpoints,
    so the longest chord joins (-0.5, 0) and (11.5, 5) voxels (or the mirror pair):
    long = max(hypot(12*0.5, 5*2), hypot(11*0.5, 6*2)) = hypot(5.5, 12) = 13.2004 mm."""
    mask = np.zeros((1, 12, 20), dtype=bool)
    mask[0, 2:8, 3:15] = True
    geometry = Geometry.create(mask.shape, (0.5, 2.0, 3.0))
    axes = recist_axes(mask, geometry)
    assert axes is not None
    assert axes.long_axis_mm == pytest.approx(np.hypot(5.5, 12.0), abs=1e-9)
    # The cut-corner contour is within half a voxel of the 6 x 12 mm rectangle, whose short axis is
    # D * min(W/H, H/W) = hypot(6, 12) * 0.5 = 6.708 mm.
    assert axes.short_axis_mm == pytest.approx(np.hypot(6.0, 12.0) * 0.5, abs=np.hypot(0.5, 2.0))


def test_polygon_rectangle_axes_exact() -> None:
    """On an exact W x H = 40 x 20 mm rectangle: long axis = diagonal, short = D * H / W through the centre."""
    w, h = 40.0, 20.0
    square = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=float)
    dense = np.concatenate([np.linspace(square[n], square[(n + 1) % 4], 11)[:-1] for n in range(4)])
    length, p, q = farthest_pair(dense)
    assert length == pytest.approx(np.hypot(w, h), abs=1e-9)
    short, sp, sq = longest_perpendicular_chord([dense], p, q)
    assert short == pytest.approx(np.hypot(w, h) * h / w, abs=1e-9)
    assert float(np.dot(sq - sp, q - p)) == pytest.approx(0.0, abs=1e-9)  # perpendicular
    assert (sp + sq) / 2 == pytest.approx(np.array([w / 2, h / 2]), abs=1e-9)  # through the centre


def test_sphere_on_oblique_anisotropic_grid() -> None:
    geometry = grid((40, 56, 64), (0.7, 0.85, 1.3), OBLIQUE)
    radius = 15.0
    tumor = ellipsoid_mask(geometry, centre_lps(geometry), (radius,) * 3, np.eye(3))
    lesion = _only_lesion(ct_with(_labelmap(tumor), geometry), _labelmap(tumor))
    tol = voxel_diagonal_mm(geometry)
    assert lesion["volume_ml"] == pytest.approx(4 / 3 * np.pi * radius**3 / 1000, rel=0.01)
    assert lesion["long_axis_mm"] == pytest.approx(2 * radius, abs=tol)
    assert lesion["short_axis_mm"] == pytest.approx(2 * radius, abs=tol)
    assert lesion["max_diameter_3d_mm"] == pytest.approx(2 * radius, abs=tol)
    assert lesion["centroid_lps_mm"] == pytest.approx(centre_lps(geometry), abs=0.1)
    # The grid is 14.6 degrees from axial: the axes are measured on a resampled axial plane, both ends on it.
    assert lesion["recist_plane"] == "axial" and lesion["long_axis_slice_k"] is None
    ends = np.asarray(lesion["long_axis_ends_lps_mm"] + lesion["short_axis_ends_lps_mm"])
    assert ends[:, 2] == pytest.approx([ends[0, 2]] * 4, abs=1e-6)


@pytest.mark.parametrize("in_plane_deg", [0.0, 30.0, 75.0])
def test_ellipsoid_axes_on_oblique_grid(in_plane_deg: float) -> None:
    """Semi-axes 20, 11, 7 mm; the 20 and 11 mm axes in the patient's axial plane, rotated in it by an angle,
    on an oblique grid (its slices 14.6 degrees from axial): measured on the axial plane, 40 x 22 mm."""
    geometry = grid((34, 64, 72), (0.75, 0.6, 1.1), OBLIQUE)
    axes_lps = rotation((0, 0, 1), in_plane_deg)  # columns: axial long, axial short, superior
    tumor = ellipsoid_mask(geometry, centre_lps(geometry), (20.0, 11.0, 7.0), axes_lps)
    lesion = _only_lesion(ct_with(_labelmap(tumor), geometry), _labelmap(tumor))
    tol = voxel_diagonal_mm(geometry)
    assert lesion["volume_ml"] == pytest.approx(4 / 3 * np.pi * 20 * 11 * 7 / 1000, rel=0.01)
    assert lesion["long_axis_mm"] == pytest.approx(40.0, abs=tol)
    assert lesion["short_axis_mm"] == pytest.approx(22.0, abs=tol)
    assert lesion["max_diameter_3d_mm"] == pytest.approx(40.0, abs=tol)
    # The long axis points along the ellipsoid's first axis. The voxelised tips are flat over a few voxels
    # (tip curvature radius 11^2/20 = 6 mm) and the farthest pair may join opposite ends of the two flats:
    # within atan(2 * 2 mm / 40 mm) = 5.7 degrees, so 8 degrees is asserted.
    a, b = (np.asarray(p) for p in lesion["long_axis_ends_lps_mm"])
    cosine = abs(np.dot(b - a, axes_lps[:, 0])) / np.linalg.norm(b - a)
    assert cosine == pytest.approx(1.0, abs=1 - np.cos(np.deg2rad(8)))


def test_grid_aligned_cube_exact_volume_and_diagonals() -> None:
    """A 20 mm cube of 25 x 25 x 16 voxels (spacing 0.8, 0.8, 1.25 mm) on a grid tilted 3 degrees from axial
    (within the tilt limit: measured on its own slices): volume exactly 8 ml."""
    geometry = Geometry.create((24, 32, 34), (0.8, 0.8, 1.25), (3.0, -2.0, 1.0), rotation((1, 1, 0), 3.0))
    tumor = np.zeros(geometry.shape_kji, dtype=bool)
    tumor[4:20, 5:30, 5:30] = True
    lesion = _only_lesion(ct_with(_labelmap(tumor), geometry), _labelmap(tumor))
    assert lesion["volume_ml"] == pytest.approx(8.0, abs=1e-9)
    assert lesion["recist_plane"] == "acquisition"
    # Cut-corner contour of a 25 x 25 voxel square: longest chord = hypot(25, 24) * 0.8.
    assert lesion["long_axis_mm"] == pytest.approx(np.hypot(25.0, 24.0) * 0.8, abs=1e-4)
    assert lesion["max_diameter_3d_mm"] == pytest.approx(20 * np.sqrt(3), abs=voxel_diagonal_mm(geometry))
    # Centroid: the mean voxel index (17, 17, 11.5) mapped through the geometry.
    assert lesion["centroid_lps_mm"] == pytest.approx(geometry.index_to_lps([17.0, 17.0, 11.5]), abs=1e-4)


def test_rotated_cube_on_oblique_grid() -> None:
    geometry = grid((40, 60, 60), (0.6, 0.6, 0.9), OBLIQUE)
    axes_lps = rotation((1, 2, 3), 40.0)
    tumor = box_mask(geometry, centre_lps(geometry), (9.0, 9.0, 9.0), axes_lps)
    lesion = _only_lesion(ct_with(_labelmap(tumor), geometry), _labelmap(tumor))
    assert lesion["volume_ml"] == pytest.approx(18.0**3 / 1000, rel=0.01)
    assert lesion["max_diameter_3d_mm"] == pytest.approx(18 * np.sqrt(3), abs=voxel_diagonal_mm(geometry))


def test_hu_statistics_exact() -> None:
    geometry = Geometry.create((3, 4, 4), (1.0, 1.0, 1.0))
    labels = np.ones(geometry.shape_kji, dtype=np.uint8)
    labels[1, 1:3, 1:3] = 2
    array = np.zeros(geometry.shape_kji, dtype=np.int16)
    array[1, 1:3, 1:3] = [[10, 20], [30, 60]]
    lesion = _only_lesion(CTVolume(array, geometry), labels)
    assert lesion["mean_hu"] == 30.0
    assert lesion["std_hu"] == pytest.approx(np.std([10, 20, 30, 60]), abs=1e-4)
    assert (lesion["min_hu"], lesion["max_hu"]) == (10.0, 60.0)
    assert lesion["voxel_count"] == 4


def test_lesion_on_liver_border_and_burden() -> None:
    geometry = Geometry.create((10, 20, 20), (1.0, 1.0, 2.0))
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[:, :, :10] = 1  # liver: left half, 10 * 20 * 10 voxels
    labels[4:6, 8:12, 8:12] = 2  # tumor across the liver edge: 2 * 4 * 4 = 32 voxels
    report = measure(ct_with(labels, geometry), labels)
    lesion = report["lesions"][0]
    assert lesion["touches_outside_liver"] is True
    assert lesion["volume_ml"] == pytest.approx(32 * 2 / 1000)
    liver_voxels = 10 * 20 * 10 + 2 * 4 * 2  # the tumor half outside the liver counts as liver+tumor too
    assert report["liver"]["volume_ml"] == pytest.approx(liver_voxels * 2 / 1000)
    # The parenchyma (label 1) is the liver minus the 2 * 4 * 2 tumor voxels inside it.
    assert report["liver"]["parenchyma_volume_ml"] == pytest.approx((10 * 20 * 10 - 2 * 4 * 2) * 2 / 1000)
    assert report["tumor_burden"]["total_volume_ml"] == pytest.approx(0.064)
    assert report["tumor_burden"]["tlvr"] == pytest.approx(round(32 / liver_voxels, 4))


def test_interior_lesion_does_not_touch_outside() -> None:
    labels = np.ones((5, 9, 9), dtype=np.uint8)
    labels[2, 3:6, 3:6] = 2
    geometry = Geometry.create(labels.shape)
    assert measure(ct_with(labels, geometry), labels)["lesions"][0]["touches_outside_liver"] is False


def test_empty_tumor_mask() -> None:
    labels = np.ones((4, 5, 6), dtype=np.uint8)
    geometry = Geometry.create(labels.shape, (1.0, 1.0, 2.5))
    report = measure(ct_with(labels, geometry), labels)
    assert report["lesions"] == []
    assert report["tumor_burden"] == {
        "count": 0,
        "total_volume_ml": 0.0,
        "tlvr": 0.0,
        "largest_long_axis_mm": None,
    }
    assert report["liver"]["volume_ml"] == pytest.approx(4 * 5 * 6 * 2.5 / 1000)
    assert report["milan_size_check"]["within_size_limits"] is None


def test_no_liver_gives_null_tlvr() -> None:
    labels = np.zeros((2, 3, 3), dtype=np.uint8)
    assert measure(ct_with(labels, Geometry.create(labels.shape)), labels)["tumor_burden"]["tlvr"] is None


def test_given_lesion_map_and_confidence_are_used() -> None:
    labels = np.ones((3, 10, 10), dtype=np.uint8)
    labels[1, 1:3, 1:3] = 2
    labels[1, 6:9, 6:9] = 2
    lesions = np.zeros(labels.shape, dtype=np.uint16)
    lesions[1, 6:9, 6:9] = 1
    lesions[1, 1:3, 1:3] = 2
    geometry = Geometry.create(labels.shape)
    report = measure(ct_with(labels, geometry), labels, lesions, confidence={1: 0.91234567, 2: 0.5})
    assert [e["voxel_count"] for e in report["lesions"]] == [9, 4]
    assert [e["confidence"] for e in report["lesions"]] == [0.9123, 0.5]


def test_demo_models_are_flagged_synthetic() -> None:
    labels = np.ones((2, 3, 3), dtype=np.uint8)
    models = [{"id": "smoothsegnet-demo-liver", "title": "Demo liver", "version": "1.0", "sha256": "ab" * 32}]
    report = measure(ct_with(labels, Geometry.create(labels.shape)), labels, models=models)
    assert report["models"][0]["synthetic_only"] is True
    assert any("smoothsegnet-demo-liver" in w and "synthetic" in w for w in report["warnings"])


def test_labelmap_off_grid_is_refused() -> None:
    ct = ct_with(np.zeros((2, 3, 4), np.uint8), Geometry.create((2, 3, 4)))
    with pytest.raises(InputError, match=r"labelmap has shape \(k, j, i\) \(2, 3, 5\).*\(2, 3, 4\)"):
        measure(ct, np.zeros((2, 3, 5), np.uint8))


def test_unexpected_labels_are_refused() -> None:
    ct = ct_with(np.zeros((2, 3, 4), np.uint8), Geometry.create((2, 3, 4)))
    labels = np.zeros((2, 3, 4), np.uint8)
    labels[0, 0, 0] = 7
    with pytest.raises(InputError, match=r"label values \[7\].*0 background, 1 liver, 2 tumor"):
        measure(ct, labels)


def test_lesion_map_outside_tumor_is_refused() -> None:
    labels = np.ones((2, 3, 4), np.uint8)
    lesions = np.zeros((2, 3, 4), np.uint16)
    lesions[0, 0, 0] = 1
    with pytest.raises(InputError, match="not tumor"):
        measure(ct_with(labels, Geometry.create((2, 3, 4))), labels, lesions)


def test_split_touching_through_measure_is_noted() -> None:
    from SmoothSegNetLib.report import ReportOptions

    geometry = grid((30, 40, 64), (0.8, 0.8, 1.0))
    centre = geometry.index_to_lps([20, 20, 15])
    tumor = ellipsoid_mask(geometry, centre, (10.0,) * 3, np.eye(3))
    tumor |= ellipsoid_mask(geometry, centre + np.array([16.0, 0, 0]), (7.0,) * 3, np.eye(3))
    labels = _labelmap(tumor)
    ct = ct_with(labels, geometry)
    assert measure(ct, labels)["tumor_burden"]["count"] == 1
    report = measure(ct, labels, options=ReportOptions(split_touching=True))
    assert report["tumor_burden"]["count"] == 2
    assert report["lesions"][0]["volume_ml"] > report["lesions"][1]["volume_ml"]
    assert any("split" in note for note in report["notes"])
    # The two parts together are still the whole tumor.
    assert sum(e["voxel_count"] for e in report["lesions"]) == int(tumor.sum())


def test_lesion_cut_by_the_image_edge_does_not_touch_outside() -> None:
    labels = np.ones((4, 8, 8), dtype=np.uint8)
    labels[0:2, 0:3, 0:3] = 2  # in the corner of the image, surrounded by liver inside the image
    lesion = measure(ct_with(labels, Geometry.create(labels.shape)), labels)["lesions"][0]
    assert lesion["touches_outside_liver"] is False
    assert lesion["long_axis_slice_k"] in (0, 1)


def test_measurements_do_not_depend_on_the_storage_order() -> None:
    """The same patient stored with i, j and k reversed (e.g. RAS-ordered, feet-first) measures the same."""
    geometry = grid((20, 40, 48), (0.8, 0.9, 1.5), OBLIQUE)
    tumor = ellipsoid_mask(geometry, centre_lps(geometry), (12.0, 8.0, 6.0), rotation((1, 1, 0), 30.0))
    labels = _labelmap(tumor)
    k, j, i = geometry.shape_kji
    flipped_geometry = Geometry.create(
        geometry.shape_kji,
        geometry.spacing_mm,
        geometry.index_to_lps([i - 1, j - 1, k - 1]),
        -geometry.direction_array,
    )
    flipped = np.ascontiguousarray(labels[::-1, ::-1, ::-1])
    a = _only_lesion(ct_with(labels, geometry), labels)
    b = _only_lesion(ct_with(flipped, flipped_geometry), flipped)
    for key in ("volume_ml", "long_axis_mm", "short_axis_mm", "max_diameter_3d_mm", "mean_hu"):
        assert b[key] == pytest.approx(a[key], abs=1e-3), key
    assert b["centroid_lps_mm"] == pytest.approx(a["centroid_lps_mm"], abs=1e-3)
    assert _ends_match(b["long_axis_ends_lps_mm"], a["long_axis_ends_lps_mm"])


def _ends_match(a: list, b: list) -> bool:
    pa, pb = np.asarray(a), np.asarray(b)
    return bool(np.allclose(pa, pb, atol=1e-3) or np.allclose(pa, pb[::-1], atol=1e-3))
