"""RECIST 1.1 long and short axes in the patient's axial plane, whatever the storage orientation.

The rule (see ``docs/measurement.md``):

* **Plane.** When one axis of the grid is within :data:`TILT_LIMIT_DEG` of superior–inferior and the two
  others have equal spacing, the lesion is measured on the acquired axial slices (the voxels are only
  re-ordered, never interpolated): a CT stored reflected, feet-first, or as sagittal or coronal slices of an
  axial acquisition gives the very same voxels and the very same numbers. Otherwise (an oblique grid, a tilt
  beyond the limit, a sagittal or coronal acquisition with coarse slices) the lesion's bounding box is
  resampled (linear, threshold 0.5) onto an axial, LPS-aligned grid whose in-plane spacing is the finer of the
  spacings of the grid axes nearest to L and P and whose slice spacing is that of the axis nearest to S, and
  measured there. The rule looks only at where the voxels are, never at their storage order.
* **Slice.** The axial slice where the lesion's RECIST diameter (below) is largest; ties go to the larger
  short axis, then to the most inferior slice.
* **Fragments.** On one slice a lesion can fall into separate pieces (8-connected components) that join
  elsewhere in 3D. RECIST 1.1 adds the longest diameters of the fragments: the long axis is the sum of the
  pieces' longest diameters, each measured within its own piece (never across the tissue between them). The
  short axis is that of the piece with the longest diameter (perpendicular to that piece's own long axis).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.report.axes import SliceAxes, axes_on_slice, farthest_pair, slice_contours_xy_mm, xy_mm_to_lps
from SmoothSegNetLib.resample import Interpolation, canonical_geometry, reoriented_geometry, resample
from SmoothSegNetLib.volume import Geometry

#: Largest angle (degrees) between superior–inferior and the grid axis nearest to it at which a lesion is measured
#: on the acquired slices (the planes perpendicular to that axis). A diameter in a plane tilted by t differs from
#: the axial one by at most 1/cos(t) - 1 (0.38 % at 5 degrees: 0.23 mm on 60 mm), below one in-plane voxel for
#: lesions up to 13 cm at 0.5 mm.
TILT_LIMIT_DEG = 5.0

#: 8-connectivity in a slice: pieces touching at a corner are one piece (as 26-connectivity in 3D).
CONNECTIVITY_8 = np.ones((3, 3), dtype=bool)

_TIE_MM = 1e-6


@dataclass(frozen=True)
class Piece:
    """One piece of a lesion on its measurement slice; end points in LPS mm, shape ``(2, 3)``."""

    long_axis_mm: float
    long_ends_lps_mm: np.ndarray
    short_axis_mm: float
    short_ends_lps_mm: np.ndarray


@dataclass(frozen=True)
class RecistAxes:
    """RECIST 1.1 axes of one lesion.

    Attributes:
        long_axis_mm: the longest diameter, or for a fragmented lesion the sum of its pieces' longest diameters.
        short_axis_mm: the longest diameter perpendicular to the long axis (of the piece with the longest
            diameter when fragmented).
        pieces: the pieces on the measurement slice, longest diameter first (one when not fragmented).
        plane: ``"acquisition"`` (measured on the acquired slices) or ``"axial"`` (on a resampled axial grid).
        axial_tilt_deg: angle between superior–inferior and the grid axis nearest to it (0..90).
        storage_slice_k: the slice index ``k`` of the input grid measured on, when the measured plane is one of
            its stored slices; ``None`` otherwise (a resampled axial plane, or axial planes of a CT stored as
            sagittal or coronal slices).
        slice_s_mm: the S coordinate (LPS mm) of the measurement plane's centre.
    """

    long_axis_mm: float
    short_axis_mm: float
    pieces: tuple[Piece, ...]
    plane: str
    axial_tilt_deg: float
    storage_slice_k: int | None
    slice_s_mm: float

    @property
    def fragmented(self) -> bool:
        return len(self.pieces) > 1

    @property
    def long_ends_lps_mm(self) -> np.ndarray:
        """End points of the longest piece's long axis (the whole lesion's when not fragmented)."""
        return self.pieces[0].long_ends_lps_mm

    @property
    def short_ends_lps_mm(self) -> np.ndarray:
        return self.pieces[0].short_ends_lps_mm


def _nearest_axes(geometry: Geometry) -> tuple[int, int, int]:
    """For L, P and S, the grid axis (0 = i, 1 = j, 2 = k) nearest to it, one axis each."""
    cosines = np.abs(geometry.direction_array)  # [world axis, grid axis]
    best = max(itertools.permutations(range(3)), key=lambda p: sum(cosines[n, p[n]] for n in range(3)))
    return best[0], best[1], best[2]


def axial_tilt_deg(geometry: Geometry) -> float:
    """Angle in degrees (0..90) between superior–inferior and the grid axis nearest to it.

    It depends only on where the voxels are, not on the order they are stored in: an axial CT stored as
    sagittal slices (its j axis along S) has tilt 0, like the same CT stored axially.
    """
    axis = _nearest_axes(geometry)[2]
    cosine = abs(float(geometry.direction_array[2, axis]))
    return float(np.degrees(np.arccos(min(cosine, 1.0))))


def measurement_grid(geometry: Geometry) -> tuple[Geometry, str]:
    """The grid a lesion on ``geometry`` is measured on, and its plane kind (``acquisition`` or ``axial``).

    When a grid axis lies within :data:`TILT_LIMIT_DEG` of S and the two others have the same spacing: the same
    voxels re-ordered so that i, j, k point nearest to L, P, S (no interpolation; the planes are the acquired
    axial slices however they were stored). Otherwise: an LPS-aligned grid over the same extent, in-plane
    spacing the finer of the spacings of the axes nearest to L and P, slice spacing that of the axis nearest
    to S. Both depend only on where the voxels are, not on their storage order.
    """
    near_l, near_p, near_s = _nearest_axes(geometry)
    spacing = geometry.spacing_mm
    square = abs(spacing[near_l] - spacing[near_p]) <= 1e-3 * max(spacing[near_l], spacing[near_p])
    if axial_tilt_deg(geometry) <= TILT_LIMIT_DEG and square:
        return reoriented_geometry(geometry, "LPS"), "acquisition"
    in_plane = min(spacing[near_l], spacing[near_p])
    return canonical_geometry(geometry, (in_plane, in_plane, spacing[near_s]), "LPS"), "axial"


def _crop_to_mask(mask_kji: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, Geometry]:
    """The mask's bounding box grown by one voxel (zeros outside the image), with the crop's geometry."""
    k, j, i = np.nonzero(mask_kji)
    lo = np.array([k.min(), j.min(), i.min()]) - 1
    hi = np.array([k.max(), j.max(), i.max()]) + 2
    crop = np.zeros(tuple(hi - lo), dtype=bool)
    src = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, mask_kji.shape))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))
    crop[dst] = mask_kji[src]
    origin = geometry.index_to_lps(lo[::-1].astype(float))
    return crop, Geometry.create(crop.shape, geometry.spacing_mm, origin, geometry.direction_array)


def _pieces(field_ji: np.ndarray) -> list[np.ndarray]:
    """The pieces of a slice: 8-connected components of ``field > 0.5``, each as the field kept on the piece and
    on the ring of pixels around it that belong to no piece (so that its 0.5 iso-line is the piece's outline)."""
    inside = field_ji > 0.5
    labels, count = ndimage.label(inside, structure=CONNECTIVITY_8)
    pieces = []
    for n in range(1, count + 1):
        piece = labels == n
        region = piece | (ndimage.binary_dilation(piece, structure=CONNECTIVITY_8) & ~inside)
        pieces.append(np.where(region, field_ji, 0.0).astype(np.float32))
    return pieces


def _long_axis_mm(field_ji: np.ndarray, spacing_xy: tuple[float, float]) -> float:
    contours = slice_contours_xy_mm(field_ji, spacing_xy)
    return farthest_pair(np.concatenate(contours))[0] if contours else 0.0


def _slice_score(field_ji: np.ndarray, spacing_xy: tuple[float, float]) -> float:
    """The RECIST diameter of a slice: the sum over its pieces of each piece's longest diameter."""
    return sum(_long_axis_mm(piece, spacing_xy) for piece in _pieces(field_ji))


def _slice_axes(field_ji: np.ndarray, k: int, spacing_xy: tuple[float, float]) -> list[SliceAxes]:
    """Axes of every piece of a slice, longest diameter first (ties: larger short axis first)."""
    found = [axes_on_slice(piece, k, spacing_xy) for piece in _pieces(field_ji)]
    axes = [a for a in found if a is not None]
    return sorted(axes, key=lambda a: (-round(a.long_axis_mm, 6), -round(a.short_axis_mm, 6)))


def recist_axes(mask_kji: np.ndarray, geometry: Geometry) -> RecistAxes | None:
    """RECIST 1.1 axes of one lesion (a boolean mask ``[k, j, i]`` on ``geometry``); ``None`` if empty.

    See the module docstring for the plane, slice and fragment rules.
    """
    mask = np.asarray(mask_kji, dtype=bool)
    if not mask.any():
        return None
    crop, crop_geometry = _crop_to_mask(mask, geometry)
    grid, plane = measurement_grid(crop_geometry)
    # The mask's linear interpolation (exactly the mask where the grids align): its 0.5 iso-lines are the outlines.
    best = _best_slice(resample(crop.astype(np.float32), crop_geometry, grid, Interpolation.LINEAR), grid)
    if best is None:  # a lesion thinner than the resampling can hold: measure its acquired slices instead
        grid, plane = reoriented_geometry(crop_geometry, "LPS"), "acquisition"
        best = _best_slice(resample(crop.astype(np.float32), crop_geometry, grid, Interpolation.NEAREST), grid)
    if best is None:  # cannot happen: the acquired slices hold the lesion's voxels
        raise RuntimeError("a lesion with voxels has no outline on any slice")
    return _result(best, grid, plane, geometry)


def _best_slice(field_kji: np.ndarray, grid: Geometry) -> list[SliceAxes] | None:
    """The pieces' axes on the slice with the largest RECIST diameter (ties: larger short axis, then the most
    inferior slice, as k increases towards S on the measurement grid); ``None`` when no slice holds a piece."""
    spacing_xy = (grid.spacing_mm[0], grid.spacing_mm[1])
    slices = [int(k) for k in np.flatnonzero((field_kji > 0.5).any(axis=(1, 2)))]
    scores = {k: _slice_score(field_kji[k], spacing_xy) for k in slices}
    top = max(scores.values(), default=0.0)
    best: list[SliceAxes] | None = None
    for k in slices:
        if scores[k] < top - _TIE_MM:
            continue
        axes = _slice_axes(field_kji[k], k, spacing_xy)
        if axes and (best is None or axes[0].short_axis_mm > best[0].short_axis_mm + _TIE_MM):
            best = axes
    return best


def _result(axes: list[SliceAxes], grid: Geometry, plane: str, geometry: Geometry) -> RecistAxes:
    pieces = tuple(
        Piece(
            long_axis_mm=a.long_axis_mm,
            long_ends_lps_mm=xy_mm_to_lps(np.array(a.long_ends_xy_mm), a.k, grid),
            short_axis_mm=a.short_axis_mm,
            short_ends_lps_mm=xy_mm_to_lps(np.array(a.short_ends_xy_mm), a.k, grid),
        )
        for a in axes
    )
    k = axes[0].k
    centre_ijk = [(grid.size_ijk[0] - 1) / 2.0, (grid.size_ijk[1] - 1) / 2.0, float(k)]
    storage_k = None
    # The measured plane is a stored slice when the measurement grid's k axis is the input's k axis.
    if plane == "acquisition" and abs(float(geometry.direction_array[:, 2] @ grid.direction_array[:, 2])) > 0.999:
        storage_k = int(round(float(geometry.lps_to_index(grid.index_to_lps(centre_ijk))[2])))
    return RecistAxes(
        long_axis_mm=float(sum(p.long_axis_mm for p in pieces)),
        short_axis_mm=pieces[0].short_axis_mm,
        pieces=pieces,
        plane=plane,
        axial_tilt_deg=axial_tilt_deg(geometry),
        storage_slice_k=storage_k,
        slice_s_mm=float(grid.index_to_lps(centre_ijk)[2]),
    )
