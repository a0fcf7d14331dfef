"""Diameters measured on the physical contour of a lesion (in-plane long/short axis, 3D Feret).

Which plane and slice a RECIST measurement uses is decided in :mod:`SmoothSegNetLib.report.recist`.

In-plane work happens in millimetre coordinates of the slice plane, ``(x, y) = (i * spacing_i, j * spacing_j)``.
The i and j axes are perpendicular unit vectors in LPS (the geometry is orthonormal), so distances there
are the physical distances in the patient, for oblique and anisotropic grids alike; end points are mapped
to LPS through the geometry for display and DICOM.

The contour is the 0.5 iso-line of the binary slice mask (marching squares), so it passes half-way
between inside and outside voxel centres. For a rectangle of ``a x b`` voxels it is the rectangle with
each corner cut at the edge midpoints; the longest chord joins two opposite cut corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from skimage import measure

from SmoothSegNetLib.volume import Geometry


@dataclass(frozen=True)
class SliceAxes:
    """RECIST axes of one lesion on one slice, end points in in-plane mm ``(x, y)``."""

    k: int
    long_axis_mm: float
    long_ends_xy_mm: tuple[tuple[float, float], tuple[float, float]]
    short_axis_mm: float
    short_ends_xy_mm: tuple[tuple[float, float], tuple[float, float]]


def slice_contours_xy_mm(mask_ji: np.ndarray, spacing_xy_mm: tuple[float, float]) -> list[np.ndarray]:
    """Closed 0.5 iso-contours of a 2D mask ``[j, i]`` as ``(n, 2)`` arrays of in-plane mm ``(x, y)``."""
    padded = np.pad(mask_ji.astype(np.float32), 1)
    contours = measure.find_contours(padded, 0.5)
    sx, sy = spacing_xy_mm
    # find_contours returns (row, col) = (j, i) in padded indices.
    return [np.column_stack(((c[:, 1] - 1.0) * sx, (c[:, 0] - 1.0) * sy)) for c in contours]


def hull_points(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of ``(n, d)`` points (all points if the hull is degenerate)."""
    unique = np.unique(np.round(points, 9), axis=0)
    if len(unique) <= points.shape[1] + 1:
        return unique
    try:
        return unique[ConvexHull(unique).vertices]
    except QhullError:
        return unique


def farthest_pair(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The two points of ``(n, d)`` points farthest apart (exact: all pairs of hull vertices, in chunks)."""
    hull = hull_points(points)
    best, best_a, best_b = -1.0, 0, 0
    chunk = 512
    for start in range(0, len(hull), chunk):
        block = hull[start : start + chunk]
        diff = block[:, None, :] - hull[None, :, :]
        dist2 = np.einsum("abd,abd->ab", diff, diff)
        a, b = np.unravel_index(int(np.argmax(dist2)), dist2.shape)
        if dist2[a, b] > best:
            best, best_a, best_b = float(dist2[a, b]), start + int(a), int(b)
    p, q = hull[best_a], hull[best_b]
    # Deterministic orientation of the pair: lexicographically smaller point first.
    if tuple(q) < tuple(p):
        p, q = q, p
    return float(np.sqrt(max(best, 0.0))), p, q


def longest_perpendicular_chord(
    contours: list[np.ndarray], long_p: np.ndarray, long_q: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Longest chord perpendicular to the long axis ``p -> q``, across the lesion's contour(s).

    Every line perpendicular to the long axis is cut with all contour edges; the chord on that line spans
    the outermost crossings. Its length is piecewise convex in the line's position with breaks only where
    the line passes a contour vertex, so the maximum over lines through the vertices is exact. Among equal
    longest chords the one nearest the middle of the long axis is returned.
    """
    axis = long_q - long_p
    length = float(np.hypot(*axis))
    if length == 0.0:
        return 0.0, long_p, long_p
    v = axis / length  # along the long axis
    u = np.array([-v[1], v[0]])  # perpendicular, in-plane
    starts = np.concatenate([c for c in contours])
    ends = np.concatenate([np.roll(c, -1, axis=0) for c in contours])
    s_a, s_b = starts @ v, ends @ v
    t_a, t_b = starts @ u, ends @ u
    best = (0.0, long_p, long_p)
    best_offset = np.inf
    t_mid = float((long_p + long_q) @ v) / 2.0
    # The middle of the long axis is a candidate too: on a plateau of equal chords (a rectangle) the
    # reported chord is then the one through the middle, as a reader would draw it.
    for t in np.unique(np.round(np.append(s_a, t_mid), 9)):
        crossing = (np.minimum(s_a, s_b) <= t) & (np.maximum(s_a, s_b) >= t)
        if not crossing.any():
            continue
        da, db = s_a[crossing], s_b[crossing]
        ta, tb = t_a[crossing], t_b[crossing]
        denom = db - da
        flat = np.abs(denom) < 1e-12
        frac = np.where(flat, 0.0, (t - da) / np.where(flat, 1.0, denom))
        heights = np.concatenate([ta + frac * (tb - ta), tb[flat]])
        lo, hi = float(heights.min()), float(heights.max())
        offset = abs(t - t_mid)
        if hi - lo > best[0] + 1e-9 or (hi - lo > best[0] - 1e-9 and offset < best_offset):
            best = (hi - lo, t * v + lo * u, t * v + hi * u)
            best_offset = offset
    return best


def axes_on_slice(mask_ji: np.ndarray, k: int, spacing_xy_mm: tuple[float, float]) -> SliceAxes | None:
    """Long axis (longest in-plane diameter) and short axis (longest chord perpendicular to it)."""
    contours = slice_contours_xy_mm(mask_ji, spacing_xy_mm)
    if not contours:
        return None
    long_mm, p, q = farthest_pair(np.concatenate(contours))
    short_mm, sp, sq = longest_perpendicular_chord(contours, p, q)
    return SliceAxes(
        k=k,
        long_axis_mm=long_mm,
        long_ends_xy_mm=((float(p[0]), float(p[1])), (float(q[0]), float(q[1]))),
        short_axis_mm=short_mm,
        short_ends_xy_mm=((float(sp[0]), float(sp[1])), (float(sq[0]), float(sq[1]))),
    )


def xy_mm_to_lps(points_xy_mm: np.ndarray, k: int, geometry: Geometry) -> np.ndarray:
    """Map in-plane mm ``(x, y)`` on slice ``k`` to LPS mm."""
    pts = np.atleast_2d(np.asarray(points_xy_mm, dtype=float))
    ijk = np.column_stack(
        (pts[:, 0] / geometry.spacing_mm[0], pts[:, 1] / geometry.spacing_mm[1], np.full(len(pts), float(k)))
    )
    return geometry.index_to_lps(ijk)


def max_diameter_3d_mm(mask_kji: np.ndarray, geometry: Geometry) -> float:
    """Maximum 3D (Feret) diameter: the largest distance between two points of the 0.5 iso-surface."""
    if not mask_kji.any():
        return 0.0
    k_idx, j_idx, i_idx = np.nonzero(mask_kji)
    lo = np.array([k_idx.min(), j_idx.min(), i_idx.min()])
    hi = np.array([k_idx.max(), j_idx.max(), i_idx.max()]) + 1
    crop = mask_kji[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    padded = np.pad(crop.astype(np.float32), 1)
    spacing_kji = tuple(reversed(geometry.spacing_mm))
    verts, _faces, _normals, _values = measure.marching_cubes(padded, 0.5, spacing=spacing_kji)
    # verts are (k, j, i) scaled by spacing in an orthonormal frame: distances are physical.
    distance, _p, _q = farthest_pair(verts)
    return distance
