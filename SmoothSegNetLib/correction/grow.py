"""Growing one lesion from a point by its contrast to the liver around it (the core of ``add-lesion``).

The lesions a network misses are those it gives a low tumor probability, so the lesion is found from the CT.
In a window of ``max_diameter_mm`` around the point, the CT is smoothed over the liver only (``smoothing_mm``)
and summarised as a radial profile: the median of each 1 mm shell around the point (distances in millimetres,
so thick slices count right; the liver's edge voxels, partly fat, left out). The lesion's value is the median of
a 2 mm ball at the point, the liver's the median of the window's far half (or of a ring just outside the lesion
when the lesion reaches that far). The lesion's edge is where the profile crosses half-way between the two; a
dark lesion whose profile then rises over the liver by ``rim_min_hu`` and falls back within ``rim_max_mm`` has
an enhancing rim, and its edge is where the rim falls to half its height. The lesion is the ball of that radius
inside the liver (on the phantoms this scored above thresholded voxels, which noise breaks up), holding the
point, hole-filled. Arrays are ``[k, j, i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.correction.settings import AddLesionSettings
from SmoothSegNetLib.correction.star import StarShape, star_mask, star_radii

Slices = tuple[slice, ...]
_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)
#: MAD to standard deviation of a normal distribution.
_MAD_SIGMA = 1.4826


@dataclass(frozen=True)
class Grown:
    """A region grown from a point, on the array it was grown in.

    Attributes:
        mask: bool, the shape of the input arrays.
        lesion_hu: the lesion's attenuation (median near the point, smoothed CT).
        liver_hu: the liver's (median of the ring around the region).
        noise_hu: the spread of the smoothed CT in the ring (MAD as a standard deviation).
        rim_mm: how far the region was grown out to an enhancing rim (0 if none).
        leaked: the region reached the edge of the window (it is not a closed lesion).
        radius_mm: the profile's outer edge (mm from the point).
        rim_hu: the height of the enhancing rim over the liver (0 if none).
        core_mm: the core's edge (mm from the point).
    """

    mask: np.ndarray
    lesion_hu: float
    liver_hu: float
    noise_hu: float
    rim_mm: float
    leaked: bool
    radius_mm: float = 0.0
    rim_hu: float = 0.0
    core_mm: float = 0.0

    @property
    def contrast_hu(self) -> float:
        return self.lesion_hu - self.liver_hu

    @property
    def contrast_z(self) -> float:
        """Contrast over the ring's noise: how clearly the point differs from the liver around it."""
        return abs(self.contrast_hu) / max(self.noise_hu, 1.0)


def region_grow(
    hu: np.ndarray,
    allowed: np.ndarray,
    voxel: tuple[int, ...],
    spacing_kji: np.ndarray,
    settings: AddLesionSettings,
) -> Grown | None:
    """The lesion around ``voxel`` found by its contrast (see the module docstring), or ``None``.

    Args:
        hu: CT in HU, ``[k, j, i]``.
        allowed: bool, same shape: the voxels the lesion may take (liver, away from other lesions).
        voxel: the point's ``[k, j, i]`` index.
        spacing_kji: voxel size in mm, ``[k, j, i]``.
        settings: the add-lesion settings (window, smoothing, ring, opening, rim, contrast floor).

    Returns:
        ``None`` when the point's contrast to the liver is under ``min_contrast_hu`` or no region holds it.
        A leaked region is returned marked ``leaked`` (the caller decides).
    """
    s = settings
    spacing = np.asarray(spacing_kji, dtype=float)
    box = window_box(voxel, s.max_diameter_mm / 2.0, spacing, hu.shape)
    local = tuple(v - b.start for v, b in zip(voxel, box))
    inside = allowed[box]
    if not inside.any():
        return None
    smooth = masked_smooth(hu[box], inside, spacing, s.smoothing_mm)
    distance = np.sqrt(distance_squared_mm(local, smooth.shape, spacing))
    # Statistics leave out the liver's edge voxels (partly fat or another lesion: darker or brighter).
    stats = _core(inside) if s.skip_edge else inside
    if not stats.any():
        stats = inside
    found = _lesion_edges(smooth, stats, distance, s)
    if found is None:
        return None
    lesion_hu, liver_hu, edges = found
    ring = _ring(stats, distance, edges.outer_mm, s)
    noise = _spread(smooth[ring]) if ring.sum() >= 10 else _spread(smooth[stats])
    shaped = _shape(smooth, inside, stats, local, spacing, distance, liver_hu, edges, s)
    if s.opening_mm > 0:
        shaped = ndimage.binary_opening(shaped, _ellipsoid(spacing, s.opening_mm))
    region = component_near(shaped, inside, local, spacing, s.snap_mm)
    if region is None:
        return None
    region = _fill_slices(ndimage.binary_fill_holes(region)) & inside
    leaked = _touches_edge(region, box, hu.shape) or edges.outer_mm >= s.max_diameter_mm / 2.0 - s.ring_mm[1]
    out = np.zeros(hu.shape, dtype=bool)
    out[box] = region
    return Grown(
        out, lesion_hu, liver_hu, noise, edges.rim_mm, leaked, edges.outer_mm, edges.rim_height_hu, edges.core_mm
    )


def _lesion_edges(
    smooth: np.ndarray, stats: np.ndarray, distance: np.ndarray, s: AddLesionSettings
) -> tuple[float, float, Edges] | None:
    """``(lesion_hu, liver_hu, edges)`` from the profile of shells around the point, or ``None`` when the point
    differs from the liver by less than ``min_contrast_hu``. The liver's value is the median of the window's far
    half; a lesion reaching into it (or ``rounds``) takes it again from the ring just outside its edge."""
    profile = Profile.of(smooth, stats, distance, s.rim_step_mm, s.max_diameter_mm / 2.0)
    seed = stats & (distance <= s.seed_radius_mm)
    lesion_hu = float(np.median(smooth[seed])) if seed.any() else float(smooth[distance == distance.min()][0])
    liver_hu = profile.median_between(s.max_diameter_mm / 4.0, s.max_diameter_mm / 2.0)
    if not np.isfinite(liver_hu) or abs(lesion_hu - liver_hu) < s.min_contrast_hu:
        return None  # no liver to compare with, or no contrast to it
    edges = profile.edges(lesion_hu, liver_hu, s)
    rounds = max(s.rounds, 1 if edges.outer_mm + s.ring_mm[1] > s.max_diameter_mm / 4.0 else 0)
    for _round in range(rounds):
        ring = _ring(stats, distance, edges.outer_mm, s)
        if ring.sum() < 10:
            break
        liver_hu = float(np.median(smooth[ring]))
        if abs(lesion_hu - liver_hu) < s.min_contrast_hu:
            return None
        edges = profile.edges(lesion_hu, liver_hu, s)
    return lesion_hu, liver_hu, edges


def _shape(
    smooth: np.ndarray,
    inside: np.ndarray,
    stats: np.ndarray,
    local: tuple[int, ...],
    spacing: np.ndarray,
    distance: np.ndarray,
    liver_hu: float,
    edges: Edges,
    s: AddLesionSettings,
) -> np.ndarray:
    """The lesion's voxels: the ball of the shells' edge radius, or (``star_directions`` > 0) the star of
    per-ray edges of :mod:`SmoothSegNetLib.correction.star`."""
    if s.star_directions <= 0:
        return (distance <= edges.outer_mm) & inside
    profile = Profile.of(smooth, stats, distance, s.rim_step_mm, s.max_diameter_mm / 2.0)
    middles = profile.radii_mm - profile.step_mm / 2.0
    star = StarShape(s.star_directions, s.star_cone_deg, s.star_smooth_deg, s.star_radius_range)
    directions, radii = star_radii(
        smooth - liver_hu, inside, local, spacing, (middles, profile.medians - liver_hu), edges.outer_mm, star
    )
    return star_mask(smooth.shape, local, spacing, directions, radii) & inside


def _ring(stats: np.ndarray, distance: np.ndarray, radius_mm: float, s: AddLesionSettings) -> np.ndarray:
    return stats & (distance > radius_mm + s.ring_mm[0]) & (distance <= radius_mm + s.ring_mm[1])


def _core(inside: np.ndarray) -> np.ndarray:
    """``inside`` without its edge voxels in the axial plane (4-neighbours)."""
    cross = np.zeros((1, 3, 3), dtype=bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    return np.asarray(ndimage.binary_erosion(inside, structure=cross, border_value=1))


@dataclass(frozen=True)
class Edges:
    """Where the radial profile says the lesion ends: the core's edge, and the rim's outer edge (if any)."""

    core_mm: float
    outer_mm: float
    rim_height_hu: float

    @property
    def rim_mm(self) -> float:
        return self.outer_mm - self.core_mm if self.rim_height_hu > 0 else 0.0


@dataclass(frozen=True)
class Profile:
    """Median of the smoothed CT in shells around the point (``step_mm`` wide), the point's shell first."""

    radii_mm: np.ndarray
    medians: np.ndarray
    step_mm: float

    @classmethod
    def of(
        cls, smooth: np.ndarray, inside: np.ndarray, distance: np.ndarray, step_mm: float, reach_mm: float
    ) -> Profile:
        bins = np.floor(distance[inside] / step_mm).astype(int)
        values = smooth[inside]
        keep = bins < int(np.ceil(reach_mm / step_mm))
        bins, values = bins[keep], values[keep]
        order = np.argsort(bins, kind="stable")
        bins, values = bins[order], values[order]
        cuts = np.flatnonzero(np.diff(bins)) + 1
        groups = np.split(values, cuts)
        present = bins[np.r_[0, cuts]] if len(bins) else np.zeros(0, int)
        medians = np.full(int(np.ceil(reach_mm / step_mm)), np.nan)
        for b, g in zip(present, groups):
            medians[b] = float(np.median(g))
        radii = (np.arange(len(medians)) + 1.0) * step_mm  # outer radius of each shell
        return cls(radii, medians, step_mm)

    def median_between(self, lo_mm: float, hi_mm: float) -> float:
        """The median of the shells' medians between ``lo_mm`` and ``hi_mm`` (of all shells when none there has
        a value; NaN when no shell has one)."""
        chosen = self.medians[(self.radii_mm > lo_mm) & (self.radii_mm <= hi_mm)]
        chosen = chosen[np.isfinite(chosen)]
        if not len(chosen):
            chosen = self.medians[np.isfinite(self.medians)]
        return float(np.median(chosen)) if len(chosen) else float("nan")

    def edges(self, lesion_hu: float, liver_hu: float, s: AddLesionSettings) -> Edges:
        """The core's edge: the first shell whose median is no longer on the lesion's side of the threshold; a rim:
        the largest deviation of the other sign within ``rim_max_mm`` beyond it; its outer edge: where the
        deviation falls under half of it."""
        sign = 1.0 if lesion_hu > liver_hu else -1.0
        deviation = sign * (np.nan_to_num(self.medians, nan=liver_hu) - liver_hu)
        level = s.threshold_fraction * abs(lesion_hu - liver_hu)
        below = np.flatnonzero(deviation < level)
        core = int(below[0]) if len(below) else len(deviation) - 1
        core_mm = self._crossing(deviation, core, level)
        reach = min(len(deviation), core + int(np.ceil(s.rim_max_mm / self.step_mm)) + 1)
        # Only a dark lesion has an enhancing (bright) rim.
        if s.rim_max_mm <= 0 or sign > 0 or reach <= core:
            return Edges(core_mm, core_mm, 0.0)
        rim = -deviation[core:]
        peak = int(np.argmax(rim[: reach - core]))
        height = float(rim[peak])
        if height < s.rim_min_hu:
            return Edges(core_mm, core_mm, 0.0)
        fallen = np.flatnonzero(rim[peak : reach - core + peak] < height / 2.0)
        if not len(fallen):  # no way back to the liver within reach: a slope, not a rim
            return Edges(core_mm, core_mm, 0.0)
        out = core + peak + int(fallen[0])
        return Edges(core_mm, self._crossing(-deviation, out, height / 2.0), height)

    def _crossing(self, values: np.ndarray, index: int, level: float) -> float:
        """The radius (mm) where ``values`` falls through ``level`` between shell ``index - 1`` (above) and shell
        ``index`` (below), linearly interpolated between the shells' middles."""
        middle = self.radii_mm - self.step_mm / 2.0
        if index <= 0:
            return float(middle[0])
        above, below = float(values[index - 1]), float(values[index])
        t = (above - level) / (above - below) if above > below else 0.5
        return float(middle[index - 1] + np.clip(t, 0.0, 1.0) * self.step_mm)


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    """Holes filled in each axial slice (``k``) too: a rim closed in-plane but open through thick slices."""
    out = mask.copy()
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        out[k] = ndimage.binary_fill_holes(mask[k])
    return out


def window_box(voxel: tuple[int, ...], half_mm: float, spacing: np.ndarray, shape: tuple[int, ...]) -> Slices:
    """The slices of the voxels within ``half_mm`` of ``voxel`` along each axis (a box, cut at the array's edge)."""
    half = np.ceil(half_mm / spacing).astype(int)
    return tuple(slice(max(0, v - h), min(n, v + h + 1)) for v, h, n in zip(voxel, half, shape))


def distance_squared_mm(centre: tuple[int, ...], shape: tuple[int, ...], spacing: np.ndarray) -> np.ndarray:
    """float32 ``shape``: each voxel's squared distance (mm^2) from the voxel ``centre`` (``spacing`` per axis)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.asarray(sum((((g - c) * d) ** 2).astype(np.float32) for g, c, d in zip(grids, centre, spacing)))


def masked_smooth(hu: np.ndarray, inside: np.ndarray, spacing: np.ndarray, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing (``sigma_mm``) of ``hu`` over the ``inside`` voxels only (normalised convolution):
    the liver near its edge or near another lesion is not darkened or brightened by what lies beyond."""
    values = hu.astype(np.float32)
    if sigma_mm <= 0:
        return values
    sigma = [sigma_mm / float(s) for s in spacing]
    weight = inside.astype(np.float32)
    num = ndimage.gaussian_filter(values * weight, sigma=sigma, truncate=3.0)
    den = ndimage.gaussian_filter(weight, sigma=sigma, truncate=3.0)
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), values).astype(np.float32)


def away_from_lesions(liver: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """The ``liver`` voxels that neither are nor touch (26-neighbours) a ``lesion`` voxel: where an added lesion
    may lie, so that a connected-component relabelling keeps it apart from the others."""
    if not lesion.any():
        return liver & ~lesion
    return liver & ~ndimage.binary_dilation(lesion, structure=_CONNECTIVITY_26)


def component_near(
    candidate: np.ndarray, allowed: np.ndarray, voxel: tuple[int, ...], spacing_kji: np.ndarray, snap_mm: float
) -> np.ndarray | None:
    """The 26-connected component of ``candidate & allowed`` holding ``voxel`` or, failing that, the one with
    the voxel nearest to it within ``snap_mm``; ``None`` if there is none."""
    mask = candidate & allowed
    reach = np.ceil(snap_mm / spacing_kji).astype(int)
    near = tuple(slice(max(0, v - r), v + r + 1) for v, r in zip(voxel, reach))
    if not mask[near].any():
        return None
    labels, _count = ndimage.label(mask, structure=_CONNECTIVITY_26)
    hit = int(labels[voxel])
    if hit == 0:
        points = np.argwhere(labels[near] > 0)
        offsets = points + np.array([s.start for s in near]) - np.asarray(voxel)
        distance = np.sqrt(((offsets * spacing_kji) ** 2).sum(axis=1))
        best = int(np.argmin(distance))
        if distance[best] > snap_mm:
            return None
        hit = int(labels[near][tuple(points[best])])
    return np.asarray(labels == hit)


def _spread(values: np.ndarray) -> float:
    if values.size < 2:
        return 0.0
    return _MAD_SIGMA * float(np.median(np.abs(values - np.median(values))))


def _ellipsoid(spacing: np.ndarray, radius_mm: float) -> np.ndarray:
    """A ball of ``radius_mm`` on the grid (an ellipsoid of voxels; a disc where slices are thicker than it)."""
    steps = np.floor(radius_mm / spacing + 1e-6).astype(int)
    grids = np.ogrid[tuple(slice(-int(r), int(r) + 1) for r in steps)]
    return np.asarray(sum((g * d) ** 2 for g, d in zip(grids, spacing)) <= radius_mm**2 + 1e-6)


def _touches_edge(region: np.ndarray, box: Slices, full_shape: tuple[int, ...]) -> bool:
    """True if the region reaches a face of the window that is not the edge of the array itself."""
    for axis, (b, n) in enumerate(zip(box, full_shape)):
        first = [slice(None)] * 3
        first[axis] = slice(0, 1)
        last = [slice(None)] * 3
        last[axis] = slice(-1, None)
        if b.start > 0 and region[tuple(first)].any():
            return True
        if b.stop < n and region[tuple(last)].any():
            return True
    return False
