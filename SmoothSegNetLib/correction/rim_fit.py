"""The last try of ``add-lesion``: a lesion with an enhancing rim whose centre has the liver's value.

The shell profile of :mod:`SmoothSegNetLib.correction.grow` starts from the point's own value, so a small
rim-enhancing lesion whose dark core is filled in by partial volume (the point reads as liver, the rim 20–30 HU
brighter) is refused there. Here the raw HU of the liver around the point (a ball of ``WINDOW_MM``, the liver's
in-plane edge voxels left out, values clipped to ``CLIP_SIGMA`` times the liver's spread around its median) are
fitted by least squares with a lesion centred on the point::

    HU = liver + core * inside(R - t) + rim * (inside(R) - inside(R - t))

where ``inside(r0)`` is a ball of radius ``r0`` (millimetres, so thick slices count right) whose edge is blurred
by a Gaussian of ``BLUR_MM``. The outer
radius ``R`` runs over ``RADII_MM`` and the rim's width ``t`` over ``RIM_WIDTHS_MM`` (0: a plain ball, no rim); the
fit with the smallest residual wins. It is a lesion only if that fit has a rim brighter than the liver and than the
core by ``RIM_GAP_HU``, the rim stands out from the noise (its amplitude over its standard error, ``min_z``), it
goes round (along at least ``min_cover`` of the 7 axes whose direction sectors at both ends hold 3 or more of
its voxels, the rim's median lies over half its height at both ends: a vessel or a half ring on one side does
not), and ``R`` is at least ``min_radius_mm``. The lesion is then the ball of
radius ``R`` in the allowed voxels, holding the point. Arrays are ``[k, j, i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import erfc

from SmoothSegNetLib.correction.grow import _MAD_SIGMA, _core

#: Radius (mm) of the ball of voxels fitted around the point.
WINDOW_MM = 24.0
#: The outer radii (mm) tried.
RADII_MM = np.arange(3.0, 16.0 + 1e-6, 0.5)
#: The rim widths (mm) tried; 0 is a plain ball.
RIM_WIDTHS_MM = (0.0, 1.5, 2.5, 3.5)
#: The blur of the lesion's edges (Gaussian sigma, mm). Blurring along the direction from the point by the
#: voxel's extent too (thick slices) found the same radii on 5 mm slices and the same tuning clicks: left out.
BLUR_MM = 0.9
#: Voxels further than this many spreads from the liver's median are clipped (vessels, other structures).
CLIP_SIGMA = 3.0
#: Noise samples closer than this (mm, along each axis) are not independent: the scanner's point spread and the
#: reconstruction correlate neighbouring voxels, so the rim's standard error counts at most one sample per
#: ``INDEPENDENT_MM`` along each axis. Without it the rim's z grew with the number of voxels (four times as many on
#: a 0.75 mm grid as on a 1.5 mm one, z about twice as large), and normal liver passed it on fine grids
#: (docs/add-lesion.md, sixth round).
INDEPENDENT_MM = 1.5
#: Width (mm) of the shells whose sums the least squares are solved on.
_SHELL_MM = 0.1
#: A rim must be brighter than the core by this much (HU).
RIM_GAP_HU = 10.0
#: The 7 axes (3 faces and 4 corners of a cube) along which the rim's coverage is counted: 14 direction sectors,
#: sector ``2m`` opposite sector ``2m + 1``.
_AXES = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], dtype=float)
_SECTORS = np.repeat(_AXES / np.linalg.norm(_AXES, axis=1, keepdims=True), 2, axis=0) * np.tile([[1.0], [-1.0]], (7, 1))


@dataclass(frozen=True)
class RimFit:
    """The best fit of the model around a point (see the module docstring).

    Attributes:
        radius_mm: the outer radius ``R``.
        rim_mm: the rim's width ``t`` (0: the best fit is a plain ball).
        liver_hu, core_hu, rim_hu: the fitted liver level and the core's and rim's amplitudes over it.
        noise_hu: the liver's spread (MAD as a standard deviation) in the window's outer part.
        rim_z: the rim's amplitude over the error it would have alone, ``noise / sqrt(sum of its weights squared
            x the independent share of a voxel's noise)`` (:data:`INDEPENDENT_MM`; 0 without a rim).
        cover: the share of the axes (of 7, those with rim voxels at both ends) along which the rim's median lies
            over half its height at both ends.
    """

    radius_mm: float
    rim_mm: float
    liver_hu: float
    core_hu: float
    rim_hu: float
    noise_hu: float
    rim_z: float
    cover: float

    def is_rim_lesion(self, min_z: float, min_cover: float, min_radius_mm: float) -> bool:
        return (
            self.rim_mm > 0
            and self.rim_hu > 0
            and self.rim_hu >= self.core_hu + RIM_GAP_HU
            and self.rim_z >= min_z
            and self.cover >= min_cover
            and self.radius_mm >= min_radius_mm
        )


def fit_rim(
    hu: np.ndarray, allowed: np.ndarray, voxel: tuple[int, ...], spacing_kji: np.ndarray
) -> tuple[RimFit, tuple[slice, ...], np.ndarray] | None:
    """The best fit around ``voxel``, and the box of ``hu`` it was made in with the distance (mm) of the box's
    voxels from the point; ``None`` when under 100 liver voxels lie in the window."""
    spacing = np.asarray(spacing_kji, dtype=float)
    half = np.ceil(WINDOW_MM / spacing).astype(int) + 1
    box = tuple(slice(max(0, v - h), min(n, v + h + 1)) for v, h, n in zip(voxel, half, hu.shape))
    offsets = np.ogrid[tuple(slice(b.start, b.stop) for b in box)]
    axes = [(g - c) * d for g, c, d in zip(offsets, voxel, spacing)]
    distance = np.sqrt(sum(a.astype(np.float64) ** 2 for a in axes))
    use = _core(allowed[box]) & (distance <= WINDOW_MM)
    if np.count_nonzero(use) < 100:
        return None
    where = np.nonzero(use)
    r = distance[where]
    parts = [np.broadcast_to(a, distance.shape)[where] for a in axes]
    y = hu[box][where].astype(np.float64)
    far = r > 0.6 * WINDOW_MM
    base = y[far] if np.count_nonzero(far) >= 50 else y
    level = float(np.median(base))
    noise = max(_MAD_SIGMA * float(np.median(np.abs(base - level))), 1.0)
    y = np.clip(y, level - CLIP_SIGMA * noise, level + CLIP_SIGMA * noise)
    # The model depends on a voxel only through its distance: the least squares are solved on the sums of
    # 0.1 mm shells (count, sum of HU, mean distance), exactly as on the voxels up to that rounding.
    shell_of = np.floor(r / _SHELL_MM).astype(np.intp)
    count = np.bincount(shell_of).astype(np.float64)
    present = count > 0
    count = count[present]
    total = np.bincount(shell_of, weights=y)[present]
    middle = np.bincount(shell_of, weights=r)[present] / count
    sum_squares = float(y @ y)
    best: tuple[float, float, float, np.ndarray, float] | None = None
    ones = np.ones_like(middle)
    for radius in RADII_MM:
        outer = _inside(middle, float(radius))
        for width in RIM_WIDTHS_MM:
            if width >= radius - 1.0:
                continue
            if width == 0:
                design = np.stack([ones, outer], axis=1)
            else:
                core = _inside(middle, float(radius - width))
                design = np.stack([ones, core, outer - core], axis=1)
            normal = design.T @ (design * count[:, None])
            moment = design.T @ total
            try:
                beta = np.linalg.solve(normal, moment)
            except np.linalg.LinAlgError:
                continue
            if width > 0 and not (beta[2] > 0 and beta[2] >= beta[1] + RIM_GAP_HU):
                continue  # not an enhancing rim: the plain ball of this radius speaks for it
            sse = sum_squares - float(moment @ beta)
            rim_weight = float(count @ design[:, 2] ** 2) if width > 0 else 0.0
            if best is None or sse < best[0]:
                best = (sse, float(radius), float(width), beta, rim_weight)
    if best is None:
        return None
    _sse, radius, width, beta, rim_weight = best
    rim_hu = float(beta[2]) if width > 0 else 0.0
    cover = 0.0
    if width > 0:
        shell = (r > radius - width) & (r <= radius)
        vectors = np.stack([p[shell] for p in parts], axis=1)
        sector = np.argmax(vectors @ _SECTORS.T, axis=1)
        values = y[shell]
        bright = np.zeros(len(_SECTORS), dtype=bool)
        seen = np.zeros(len(_SECTORS), dtype=bool)
        for k in range(len(_SECTORS)):
            in_sector = values[sector == k]
            seen[k] = len(in_sector) >= 3
            bright[k] = seen[k] and bool(np.median(in_sector) > beta[0] + 0.5 * rim_hu)
        # An axis whose end holds under 3 voxels (a thin shell on thick slices) is not counted either way.
        counted = seen[0::2] & seen[1::2]
        axes_counted = max(int(np.count_nonzero(counted)), 1)
        cover = int(np.count_nonzero(counted & bright[0::2] & bright[1::2])) / axes_counted
    fit = RimFit(
        radius_mm=radius,
        rim_mm=width,
        liver_hu=float(beta[0]),
        core_hu=float(beta[1]),
        rim_hu=rim_hu,
        noise_hu=noise,
        rim_z=rim_hu * np.sqrt(rim_weight * _independent_share(spacing)) / noise,
        cover=cover,
    )
    return fit, box, distance


def rim_lesion(
    hu: np.ndarray,
    allowed: np.ndarray,
    voxel: tuple[int, ...],
    spacing_kji: np.ndarray,
    min_z: float,
    min_cover: float,
    min_radius_mm: float,
) -> np.ndarray | None:
    """The ball of the fitted radius (allowed voxels, the component holding the point, holes filled) when the fit
    around ``voxel`` is a rim-enhancing lesion (see the module docstring), else ``None``."""
    found = fit_rim(hu, allowed, voxel, spacing_kji)
    if found is None:
        return None
    fit, box, distance = found
    if not fit.is_rim_lesion(min_z, min_cover, min_radius_mm):
        return None
    ball = np.zeros(hu.shape, dtype=bool)
    ball[box] = distance <= fit.radius_mm
    ball &= allowed
    labels, _count = ndimage.label(ball, structure=np.ones((3, 3, 3), dtype=bool))
    if labels[tuple(voxel)] == 0:
        return None
    return np.asarray(ndimage.binary_fill_holes(labels == labels[tuple(voxel)]) & allowed)


def _independent_share(spacing_kji: np.ndarray) -> float:
    """The share of a voxel's noise that is its own: 1 on voxels of at least :data:`INDEPENDENT_MM` along every
    axis, their volume over that of the voxel enlarged to it otherwise (0.25 for 0.75 mm in-plane voxels)."""
    spacing = np.asarray(spacing_kji, dtype=float)
    return float(np.prod(spacing) / np.prod(np.maximum(spacing, INDEPENDENT_MM)))


def _inside(r: np.ndarray, radius: float) -> np.ndarray:
    """A ball of ``radius`` (mm) whose edge is blurred by a Gaussian of ``BLUR_MM``: 1 inside, 0 outside."""
    return np.asarray(0.5 * erfc((r - radius) / (np.sqrt(2.0) * BLUR_MM)))
