"""Region growing from a point: the fallback of ``add-lesion`` when the tumor network sees nothing there."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.correction.settings import AddLesionSettings

_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)
#: Radius (mm) of the ball around the point whose median HU is the lesion's value.
SEED_RADIUS_MM = 2.0


def region_grow(
    hu: np.ndarray,
    allowed: np.ndarray,
    voxel: tuple[int, ...],
    spacing_kji: np.ndarray,
    settings: AddLesionSettings,
) -> np.ndarray | None:
    """The region of the point's attenuation around ``voxel`` (``[k, j, i]``), or ``None``.

    The CT is smoothed (Gaussian, ``smoothing_mm``) in a box of ``max_diameter_mm`` around the point. The
    lesion's value is the median in a 2 mm ball at the point, the liver's the median of the allowed voxels of
    the box; allowed voxels that differ from the liver's value by at least half the point's contrast (either
    way), opened by ``opening_mm`` and connected to the point, with their holes filled, form the region.
    ``None`` when the two values differ by less than ``min_contrast_hu``, or when the region reaches the box's
    edge (it leaked into the liver or beyond).
    """
    radius = np.ceil(settings.max_diameter_mm / 2.0 / spacing_kji).astype(int)
    box = tuple(slice(max(0, v - r), min(n, v + r + 1)) for v, r, n in zip(voxel, radius, hu.shape))
    local = tuple(v - b.start for v, b in zip(voxel, box))
    sigma = [settings.smoothing_mm / s for s in spacing_kji]
    smooth = ndimage.gaussian_filter(hu[box].astype(np.float32), sigma=sigma)
    inside = allowed[box]
    if not inside.any():
        return None
    ball = _ball(local, smooth.shape, spacing_kji, SEED_RADIUS_MM) & inside
    lesion_hu = float(np.median(smooth[ball])) if ball.any() else float(smooth[local])
    liver_hu = float(np.median(smooth[inside]))
    if abs(lesion_hu - liver_hu) < settings.min_contrast_hu:
        return None
    # Voxels that differ from the liver by at least half the point's contrast, in either direction: a
    # rim-enhancing lesion's dark core and bright rim both do, the liver around does not.
    limit = max(settings.min_contrast_hu, abs(lesion_hu - liver_hu) / 2.0)
    side = (np.abs(smooth - liver_hu) >= limit) & inside
    if settings.opening_mm > 0:
        # Cuts thin bridges (vessels) between the lesion and the rest.
        steps = np.maximum(1, np.round(settings.opening_mm / spacing_kji)).astype(int)
        side &= ndimage.binary_opening(side, _ellipsoid(steps))
    labels, _count = ndimage.label(side, structure=_CONNECTIVITY_26)
    hit = int(labels[local])
    if hit == 0:
        return None
    region = labels == hit
    if _touches_edge(region, box, hu.shape):
        return None
    region = ndimage.binary_fill_holes(region) & inside
    out = np.zeros(hu.shape, dtype=bool)
    out[box] = region
    return out


def _ellipsoid(radius_kji: np.ndarray) -> np.ndarray:
    grids = np.ogrid[tuple(slice(-int(r), int(r) + 1) for r in radius_kji)]
    return np.asarray(sum((g / max(int(r), 1)) ** 2 for g, r in zip(grids, radius_kji)) <= 1.0)


def _ball(centre: tuple[int, ...], shape: tuple[int, ...], spacing_kji: np.ndarray, radius_mm: float) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    distance2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing_kji))
    return np.asarray(distance2 <= radius_mm**2)


def _touches_edge(region: np.ndarray, box: tuple[slice, ...], full_shape: tuple[int, ...]) -> bool:
    """True if the region reaches a face of the box that is not the edge of the image itself."""
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
