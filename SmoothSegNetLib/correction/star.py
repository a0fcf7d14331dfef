"""A star-shaped lesion: one edge radius per direction from the point, instead of one ball (opt-in).

The radial profile of :mod:`SmoothSegNetLib.correction.grow` (median of 1 mm shells of the smoothed CT around
the point, minus the liver's value) gives one edge radius ``R``. Here, along each of ``directions`` rays (a
Fibonacci sphere, in millimetres), the whole profile is stretched by the factor ``a`` (``radius_range``) that
best fits the voxels within ``cone_deg`` of the ray, each compared at its own distance (voxel centres, so no
interpolation across thick slices bends the profile; residuals capped at ``ROBUST_HU``, so a vessel or the
liver's edge in a cone does not drag the edge out); a rim-enhancing lesion's rim is stretched with it. The
stretches are smoothed across the rays within ``smooth_deg`` (median), and a voxel is in the lesion if it lies
within ``a * R`` of the point along the ray nearest its direction.

On the tuning phantoms this scored no better than the ball (docs/add-lesion.md: the lesions are nearly round
and the voxels coarse and noisy), so the bundled settings keep the ball (``star_directions`` 0); on a clean
elongated lesion it follows the long axis that the ball cuts off. Arrays are ``[k, j, i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Step of the stretches tried.
STRETCH_STEP = 0.025
#: Voxels nearer the point than this fraction of the shells' radius do not count.
FIT_FROM = 0.4
#: Residuals are counted up to this many HU (a vessel or the liver's edge in a cone does not drag the edge out).
ROBUST_HU = 10.0
#: About this many voxels of the fit's box (every n-th along each axis) take part in the fit.
MAX_FIT_VOXELS = 60000


@dataclass(frozen=True)
class StarShape:
    """How the star-shaped region is drawn (see the module docstring)."""

    directions: int
    cone_deg: float
    smooth_deg: float
    radius_range: tuple[float, float]


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` unit vectors ``[k, j, i]`` spread evenly over the sphere (golden-angle spiral)."""
    index = np.arange(n, dtype=float) + 0.5
    z = 1.0 - 2.0 * index / n
    ring = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    angle = np.pi * (3.0 - np.sqrt(5.0)) * index
    return np.stack([z, ring * np.sin(angle), ring * np.cos(angle)], axis=1)


def star_radii(
    smooth: np.ndarray,
    inside: np.ndarray,
    local: tuple[int, ...],
    spacing: np.ndarray,
    profile: tuple[np.ndarray, np.ndarray],
    radius_mm: float,
    shape: StarShape,
) -> tuple[np.ndarray, np.ndarray]:
    """``(directions, radii_mm)``: the lesion's edge along each direction.

    Each direction's radius is ``a * radius_mm``, with ``a`` the stretch of the whole radial profile
    (``profile``: distances and values, the shells' medians minus the liver) that best fits the voxels within
    ``cone_deg`` of that direction, each compared at its own distance (voxel centres: no interpolation across
    thick slices). A rim-enhancing lesion's rim is part of the profile and is stretched with it.

    Args:
        smooth: the smoothed CT minus the liver's value (HU), as ``profile`` is.
        inside: bool, the voxels the lesion may take (the others do not count).
        local: the point's index.
        spacing: voxel size (mm) ``[k, j, i]``.
        profile: ``(radii_mm, deviation)``: the radial profile, increasing distances, ``value - liver_hu``.
        radius_mm: the shells' edge radius ``R``.
        shape: the star's settings.
    """
    directions = fibonacci_directions(shape.directions)
    lo, hi = shape.radius_range
    stretches = np.arange(lo, hi + 1e-9, STRETCH_STEP)
    reach = (hi + 0.6) * radius_mm
    half = np.ceil(reach / spacing).astype(int)
    box = tuple(slice(max(0, v - r), min(n, v + r + 1)) for v, r, n in zip(local, half, smooth.shape))
    # A big lesion on fine voxels: every stride-th voxel along each axis is plenty (and fast).
    stride = max(1, int(np.ceil((np.prod([b.stop - b.start for b in box]) / MAX_FIT_VOXELS) ** (1.0 / 3.0))))
    box = tuple(slice(b.start, b.stop, stride) for b in box)
    grids = np.meshgrid(
        *[(np.arange(b.start, b.stop, stride) - v) * d for b, v, d in zip(box, local, spacing)], indexing="ij"
    )
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    distance = np.sqrt((offsets**2).sum(axis=1))
    # The voxels around the edge say where it is; the core and the far liver say nothing about the stretch.
    keep = inside[box].ravel() & (distance >= FIT_FROM * radius_mm) & (distance <= reach)
    offsets, distance, sample = offsets[keep], distance[keep], smooth[box].ravel()[keep]
    cone = ((offsets / distance[:, None]) @ directions.T >= np.cos(np.radians(shape.cone_deg))).astype(np.float32)
    near = (directions @ directions.T) >= np.cos(np.radians(shape.smooth_deg))
    stretch = _fit_stretches(distance, sample, cone, profile, stretches, near)
    return directions, stretch * radius_mm


def _fit_stretches(
    distance: np.ndarray,
    sample: np.ndarray,
    cone: np.ndarray,
    profile: tuple[np.ndarray, np.ndarray],
    stretches: np.ndarray,
    near: np.ndarray,
) -> np.ndarray:
    """Per direction, the stretch of ``profile`` that fits the voxels of its cone best (robust to outliers),
    then the median over the directions ``near`` it."""
    radii_mm, deviation = profile
    good = np.isfinite(deviation)
    residual = np.empty((len(stretches), len(distance)), dtype=np.float32)
    for n, a in enumerate(stretches):
        model = np.interp(distance / a, radii_mm[good], deviation[good], right=0.0)
        residual[n] = np.minimum(np.abs(sample - model), ROBUST_HU)
    cost = residual @ cone  # [stretch, direction]
    best = np.where(cone.sum(axis=0) > 0, stretches[np.argmin(cost, axis=0)], 1.0)
    return np.array([np.median(best[row]) for row in near])


def star_mask(
    shape_kji: tuple[int, ...], local: tuple[int, ...], spacing: np.ndarray, directions: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """The voxels within the edge of the direction nearest theirs (the point's voxel always)."""
    reach = float(radii.max())
    half = np.ceil(reach / spacing).astype(int)
    box = tuple(slice(max(0, v - r), min(n, v + r + 1)) for v, r, n in zip(local, half, shape_kji))
    grids = np.ogrid[tuple(slice(b.start - v, b.stop - v) for b, v in zip(box, local))]
    distance = np.sqrt(sum(((g * d) ** 2).astype(np.float32) for g, d in zip(grids, spacing)))
    inside = distance <= radii.min()
    # Only the voxels between the shortest and the longest ray need their direction.
    band = np.argwhere((distance > radii.min()) & (distance <= reach))
    offsets = (band - (np.asarray(local) - np.array([b.start for b in box]))) * spacing
    nearest = np.argmax(offsets @ directions.T, axis=1)
    hit = np.sqrt((offsets**2).sum(axis=1)) <= radii[nearest]
    inside[tuple(band[hit].T)] = True
    out = np.zeros(shape_kji, dtype=bool)
    out[box] = inside
    return out
