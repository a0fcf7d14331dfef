"""RECIST axes are measured in the patient's axial plane, whatever order the CT's voxels are stored in.

The same lesion stored axial, sagittal, coronal, reflected (RAS, feet-first) gives the very same voxels on the
measurement grid, hence the same numbers; an oblique grid is resampled onto an axial one and agrees within one
in-plane voxel. Before this rule, an ellipsoid 60 x 20 mm measured 60.1 mm stored axially and 20.6 mm stored
as sagittal slices.
"""

from __future__ import annotations

import numpy as np
import pytest
from _report_helpers import centre_lps, ct_with, ellipsoid_mask, rotation

from SmoothSegNetLib.report import measure
from SmoothSegNetLib.report.recist import TILT_LIMIT_DEG, axial_tilt_deg, measurement_grid, recist_axes
from SmoothSegNetLib.resample import reorient_to
from SmoothSegNetLib.volume import Geometry

#: Storage orders of the same voxels ("to" codes of i, j, k): axial, reflected (RAS / feet-first), sagittal
#: (rows posterior, columns down, slices to the left or right), coronal.
STORAGES = ("LPS", "RAS", "LPI", "RAI", "PIL", "ASR", "LIP", "RSA")

#: An axial CT grid, 0.8 mm pixels and 2 mm slices (LPS-aligned).
AXIAL = Geometry.create((40, 96, 96), (0.8, 0.8, 2.0), (-30.0, 12.0, 100.0))

#: Sagittal storage directions: columns i (rows run posterior), j (columns run down), k (slices to the left).
SAGITTAL = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

#: Ellipsoid semi-axes along L, P, S: axial long 60 mm, short 24 mm; a sagittal plane would give 36 x 24 mm,
#: a coronal one 60 x 36 mm, so measuring in any stored plane but the axial one is caught.
SEMI_LPS_MM = (30.0, 12.0, 18.0)


def _labels(tumor: np.ndarray) -> np.ndarray:
    labels = np.ones(tumor.shape, dtype=np.uint8)
    labels[tumor] = 2
    return labels


def _lesion(labels: np.ndarray, geometry: Geometry) -> dict:
    report = measure(ct_with(labels, geometry), labels)
    assert report["tumor_burden"]["count"] == 1
    return report["lesions"][0]


def _same_points(a: list, b: list) -> bool:
    """Two end-point pairs equal as sets (the order of the ends may differ)."""
    pa, pb = np.asarray(a), np.asarray(b)
    return bool(np.allclose(pa, pb, atol=1e-3) or np.allclose(pa, pb[::-1], atol=1e-3))


@pytest.fixture(scope="module")
def axial_ellipsoid() -> tuple[np.ndarray, dict]:
    labels = _labels(ellipsoid_mask(AXIAL, centre_lps(AXIAL), SEMI_LPS_MM, np.eye(3)))
    return labels, _lesion(labels, AXIAL)


def test_axial_ellipsoid_measures_its_axial_axes(axial_ellipsoid: tuple[np.ndarray, dict]) -> None:
    _labels_axial, lesion = axial_ellipsoid
    assert lesion["long_axis_mm"] == pytest.approx(60.0, abs=0.8)
    assert lesion["short_axis_mm"] == pytest.approx(24.0, abs=0.8)
    assert lesion["recist_plane"] == "acquisition"
    assert lesion["fragmented"] is False and lesion["fragments"] == []
    # Both ends on one axial plane, the long axis along L.
    ends = np.asarray(lesion["long_axis_ends_lps_mm"])
    assert ends[0][2] == pytest.approx(ends[1][2], abs=1e-6)
    assert abs(ends[1][0] - ends[0][0]) == pytest.approx(60.0, abs=0.8)


@pytest.mark.parametrize("storage", STORAGES)
def test_every_storage_order_measures_the_same(storage: str, axial_ellipsoid: tuple[np.ndarray, dict]) -> None:
    labels_axial, expected = axial_ellipsoid
    labels, geometry = reorient_to(labels_axial, AXIAL, storage)
    lesion = _lesion(labels, geometry)
    assert lesion["recist_plane"] == "acquisition"  # the acquired axial slices, only re-ordered
    for key in ("volume_ml", "long_axis_mm", "short_axis_mm", "max_diameter_3d_mm"):
        assert lesion[key] == pytest.approx(expected[key], abs=1e-3), key
    assert lesion["centroid_lps_mm"] == pytest.approx(expected["centroid_lps_mm"], abs=1e-3)
    assert _same_points(lesion["long_axis_ends_lps_mm"], expected["long_axis_ends_lps_mm"])
    assert _same_points(lesion["short_axis_ends_lps_mm"], expected["short_axis_ends_lps_mm"])
    # The stored slice index is given only when the stored slices are the axial planes.
    if storage[2] in "SI":
        assert lesion["long_axis_slice_k"] is not None
        ends_ijk = geometry.lps_to_index(lesion["long_axis_ends_lps_mm"])
        assert ends_ijk[:, 2] == pytest.approx([lesion["long_axis_slice_k"]] * 2, abs=1e-6)
    else:
        assert lesion["long_axis_slice_k"] is None


@pytest.mark.parametrize(
    ("name", "direction", "spacing"),
    [
        ("oblique 25 deg", rotation((0.3, -0.5, 0.8), 25.0), (0.8, 0.8, 1.0)),
        ("sagittal tilted 20 deg", rotation((1, 0, 0), 20.0) @ SAGITTAL, (0.8, 0.8, 1.2)),
    ],
)
def test_oblique_grid_is_resampled_axially(name: str, direction: np.ndarray, spacing: tuple) -> None:
    """The same ellipsoid voxelised on an oblique grid: axes within one in-plane voxel (0.8 mm) of the truth."""
    geometry = Geometry.create((110, 90, 90), spacing, (0.0, 0.0, 0.0), direction)
    centre = centre_lps(geometry)
    labels = _labels(ellipsoid_mask(geometry, centre, SEMI_LPS_MM, np.eye(3)))
    report = measure(ct_with(labels, geometry), labels)
    assert any("resampled" in note for note in report["notes"])
    lesion = report["lesions"][0]
    assert axial_tilt_deg(geometry) > TILT_LIMIT_DEG, name
    assert lesion["recist_plane"] == "axial"
    assert lesion["long_axis_slice_k"] is None
    assert lesion["long_axis_mm"] == pytest.approx(60.0, abs=0.8)
    assert lesion["short_axis_mm"] == pytest.approx(24.0, abs=0.8)
    # The end points are LPS points of one axial plane, on the ellipsoid's surface along L (long) and P (short).
    long_ends, short_ends = (np.asarray(lesion[k]) for k in ("long_axis_ends_lps_mm", "short_axis_ends_lps_mm"))
    assert long_ends[:, 2] == pytest.approx([long_ends[0, 2]] * 2, abs=1e-6)
    assert short_ends[:, 2] == pytest.approx([long_ends[0, 2]] * 2, abs=1e-6)
    assert abs(long_ends[0, 2] - centre[2]) <= 1.0
    assert np.sort(long_ends[:, 0] - centre[0]) == pytest.approx([-30.0, 30.0], abs=1.0)
    assert np.sort(short_ends[:, 1] - centre[1]) == pytest.approx([-12.0, 12.0], abs=1.0)
    # The 3D diameter and the centroid do not depend on the grid either (the grid's voxel diagonal, 0.1 mm).
    assert lesion["max_diameter_3d_mm"] == pytest.approx(60.0, abs=float(np.linalg.norm(spacing)))
    assert lesion["centroid_lps_mm"] == pytest.approx(centre, abs=0.1)


def test_small_gantry_tilt_keeps_the_acquired_slices() -> None:
    """3 degrees from axial (within the 5 degree limit): measured on the stored slices, none resampled."""
    geometry = Geometry.create((40, 96, 96), (0.8, 0.8, 2.0), (0.0, 0.0, 0.0), rotation((1, 0, 0), 3.0))
    tumor = ellipsoid_mask(geometry, centre_lps(geometry), SEMI_LPS_MM, np.eye(3))
    lesion = _lesion(_labels(tumor), geometry)
    assert axial_tilt_deg(geometry) == pytest.approx(3.0, abs=1e-9)
    assert lesion["recist_plane"] == "acquisition"
    ends_ijk = geometry.lps_to_index(lesion["long_axis_ends_lps_mm"])
    assert ends_ijk[:, 2] == pytest.approx([lesion["long_axis_slice_k"]] * 2, abs=1e-3)
    assert lesion["long_axis_mm"] == pytest.approx(60.0, abs=0.8)


def test_ellipsoid_60_by_20_axial_and_sagittal() -> None:
    """The issue's case: semi-axes 30 (L), 10 (P), 10 (S) mm. Before: 60.1 mm axial, 20.6 mm sagittal."""
    tumor = ellipsoid_mask(AXIAL, centre_lps(AXIAL), (30.0, 10.0, 10.0), np.eye(3))
    axial = _lesion(_labels(tumor), AXIAL)
    labels, sagittal_geometry = reorient_to(_labels(tumor), AXIAL, "PIL")
    sagittal = _lesion(labels, sagittal_geometry)
    assert axial["long_axis_mm"] == pytest.approx(60.0, abs=0.8)
    assert sagittal["long_axis_mm"] == pytest.approx(axial["long_axis_mm"], abs=1e-6)
    assert sagittal["short_axis_mm"] == pytest.approx(axial["short_axis_mm"], abs=1e-6)


@pytest.mark.parametrize("storage", ["LPS", "PIL", "LIP", "RAI"])
def test_box_exact_in_every_storage(storage: str) -> None:
    """A box of 12 (L) x 5 (P) x 3 (S) voxels, 0.7 mm pixels, 3 mm slices. The 0.5 iso-contour of a 12 x 5
    rectangle cuts its corners at the edge midpoints; the longest chord joins opposite cut corners:
    max(hypot(12, 4), hypot(11, 5)) * 0.7 = hypot(12, 4) * 0.7 = 8.8544 mm; stored any way, the same."""
    geometry = Geometry.create((7, 11, 20), (0.7, 0.7, 3.0), (5.0, -3.0, 40.0))
    tumor = np.zeros(geometry.shape_kji, dtype=bool)
    tumor[2:5, 3:8, 4:16] = True
    labels, stored = reorient_to(_labels(tumor), geometry, storage)
    lesion = _lesion(labels, stored)
    assert lesion["long_axis_mm"] == pytest.approx(0.7 * np.hypot(12.0, 4.0), abs=1e-4)
    assert lesion["volume_ml"] == pytest.approx(12 * 5 * 3 * 0.7 * 0.7 * 3.0 / 1000, abs=1e-4)
    # 3D: the 0.5 iso-surface's farthest vertices are edge midpoints of opposite corners of the box.
    expected_3d = max(
        np.linalg.norm(np.array([12 * 0.7, 4 * 0.7, 2 * 3.0])),
        np.linalg.norm(np.array([11 * 0.7, 5 * 0.7, 2 * 3.0])),
        np.linalg.norm(np.array([11 * 0.7, 4 * 0.7, 3 * 3.0])),
    )
    assert lesion["max_diameter_3d_mm"] == pytest.approx(expected_3d, abs=1e-4)
    centre_ijk = np.array([4 + 5.5, 3 + 2.0, 2 + 1.0])
    assert lesion["centroid_lps_mm"] == pytest.approx(geometry.index_to_lps(centre_ijk), abs=1e-4)


def test_sagittal_acquisition_is_upsampled_in_plane_exactly() -> None:
    """Sagittal slices 2 mm apart, 1 mm pixels (P, S): the axial plane is 2 x 1 mm, not square, so the lesion
    is resampled to 1 x 1 mm. A box of 6 (L) x 4 (P) x 3 (S) voxels, L centres 0, 2, ..., 10 mm: linear
    interpolation puts the 0.5 level half-way to the next (empty) centre, so the axial box is 12 x 4 voxels
    of 1 mm: long = hypot(12, 3) = 12.3693 mm, whether stored sagittal or axial."""
    sagittal = Geometry.create((10, 8, 9), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    tumor = np.zeros(sagittal.shape_kji, dtype=bool)
    tumor[2:8, 2:5, 2:6] = True  # k (L): 6, j (S): 3, i (P): 4
    grid, plane = measurement_grid(sagittal)
    assert plane == "axial" and grid.spacing_mm == (1.0, 1.0, 1.0)
    axes = recist_axes(tumor, sagittal)
    assert axes is not None
    assert axes.long_axis_mm == pytest.approx(np.hypot(12.0, 3.0), abs=1e-6)
    labels, axial_storage = reorient_to(_labels(tumor), sagittal, "LPS")
    again = recist_axes(labels == 2, axial_storage)
    assert again is not None and again.long_axis_mm == pytest.approx(axes.long_axis_mm, abs=1e-9)


def test_overview_shows_the_axial_plane_of_a_sagittal_ct() -> None:
    """A CT stored as sagittal slices: the overview panel is the axial plane the axes were measured on, the
    very picture (image, outlines, axis lines) of the same CT stored axially, not a sagittal slice."""
    from SmoothSegNetLib.report.overview import render_overview

    centre = centre_lps(AXIAL)
    labels = np.zeros(AXIAL.shape_kji, dtype=np.uint8)
    labels[ellipsoid_mask(AXIAL, centre, (36.0, 30.0, 30.0), np.eye(3))] = 1
    labels[ellipsoid_mask(AXIAL, centre, SEMI_LPS_MM, np.eye(3))] = 2
    panels = {}
    for storage in ("LPS", "PIL"):
        stored, geometry = reorient_to(labels, AXIAL, storage)
        ct = ct_with(stored, geometry)
        lesions = (stored == 2).astype(np.uint16)
        panels[storage] = render_overview(ct, stored, lesions, measure(ct, stored, lesions)).axes[0]
    axial, sagittal = panels["LPS"], panels["PIL"]
    assert axial.get_title().endswith("slice k=19") and "axial S=" in sagittal.get_title()
    assert np.array_equal(axial.get_images()[0].get_array(), sagittal.get_images()[0].get_array())
    assert [(line.get_color(), line.get_linestyle()) for line in sagittal.get_lines()] == [
        (line.get_color(), line.get_linestyle()) for line in axial.get_lines()
    ]
    for a, s in zip(axial.get_lines(), sagittal.get_lines()):
        assert np.allclose(np.sort(a.get_xydata(), axis=0), np.sort(s.get_xydata(), axis=0), atol=1e-6)
    assert (sagittal.xaxis_inverted(), sagittal.yaxis_inverted()) == (False, True)  # radiological view


def test_one_voxel_lesion_on_an_oblique_grid_falls_back_to_its_acquired_slice() -> None:
    """Resampled onto the axial grid, one voxel's linear interpolation stays at or below 0.5 everywhere; the
    lesion is then measured on its acquired slice: the outline of one 0.8 mm pixel is the diamond through its
    edge midpoints, so both axes are exactly 0.8 mm."""
    geometry = Geometry.create((5, 5, 5), (0.8, 0.8, 1.0), (0.0, 0.0, 0.0), rotation((0.3, -0.5, 0.8), 25.0))
    mask = np.zeros(geometry.shape_kji, dtype=bool)
    mask[2, 2, 2] = True
    assert measurement_grid(geometry)[1] == "axial"
    axes = recist_axes(mask, geometry)
    assert axes is not None and axes.plane == "acquisition" and axes.storage_slice_k == 2
    assert (axes.long_axis_mm, axes.short_axis_mm) == (pytest.approx(0.8, abs=1e-9), pytest.approx(0.8, abs=1e-9))


def test_overview_without_lesions_shows_the_same_axial_plane_however_stored() -> None:
    from SmoothSegNetLib.report.overview import render_overview

    labels = np.zeros(AXIAL.shape_kji, dtype=np.uint8)
    labels[ellipsoid_mask(AXIAL, centre_lps(AXIAL), (36.0, 30.0, 30.0), np.eye(3))] = 1
    images, titles = [], []
    for storage in ("LPS", "PIL", "RSA"):
        stored, geometry = reorient_to(labels, AXIAL, storage)
        ct = ct_with(stored, geometry)
        panel = render_overview(ct, stored, np.zeros_like(stored, dtype=np.uint16), measure(ct, stored)).axes[0]
        images.append(np.asarray(panel.get_images()[0].get_array()))
        titles.append(panel.get_title())
    assert titles[0].startswith("No lesion found (axial S=") and len(set(titles)) == 1
    assert images[0].shape == (96, 96)  # an axial plane of the 96 x 96 x 40 grid, not a sagittal 96 x 40 one
    assert np.array_equal(images[0], images[1]) and np.array_equal(images[0], images[2])
