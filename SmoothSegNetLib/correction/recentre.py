"""Where the lesion's centre lies when the user's click is not on it (``add-lesion``'s re-centring).

The search of :mod:`SmoothSegNetLib.correction.search` profiles shells around the point, so it measures the lesion
from there: clicked half-way between the centre and the edge, it finds the distance to the nearest edge (too small
a lesion, or none) or a ball centred on the click that hangs over the lesion's edge. On the tuning phantoms, clicks
at half the lesion's radius from its centre reached Dice 0.7 in 5 % of cases, against 75 % at the centre. Two
estimates of the centre are used (arrays ``[k, j, i]``, distances in millimetres, so thick slices count right):

- :func:`blob_centre`, when nothing was found at the click: the extremum of the scale-normalised Laplacian of
  Gaussian (a blob detector) near the point, dark or bright, over the scales ``BLOB_SCALES_MM``, among voxels
  within ``sqrt(3)`` times the scale of the point (a blob of scale ``s`` has a radius of about ``sqrt(3) s``, so
  the point lies inside it). Voxels outside the liver take the liver's median, and values are clipped to
  ``CLIP_SPREADS`` of its spread, so that the liver's edge and vessels make weaker blobs.
- :func:`mean_shift_centre`, when something was found: the centroid of the voxels that look like the lesion
  (the smoothed CT's deviation from the liver ring around the region, on the lesion's side, as a share of the
  region's contrast, clipped to [0, 1]) within the region's radius plus ``MEAN_SHIFT_EXTRA_MM``, moved there and
  taken again until it moves less than ``MEAN_SHIFT_STOP_MM``.

The search then runs again from the new centre (:func:`SmoothSegNetLib.correction.search.find_lesion`), and its
lesion is kept only if it holds the voxel clicked. Both may act on one click: on a rim-enhancing lesion clicked off
its centre, the strongest blob is often a bright piece of the ring; grown from there it holds the click, and the
mean shift of its bright voxels goes round the ring to the centre, where the ring fit takes the whole lesion.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.correction.grow import _MAD_SIGMA, distance_squared_mm, masked_smooth, window_box

#: Scales (Gaussian sigma, mm) of the blob detector: lesions of about 5-17 mm across.
BLOB_SCALES_MM = (1.5, 2.5, 3.5, 5.0)
#: Half-side (mm) of the window the blob detector looks in.
BLOB_WINDOW_MM = 24.0
#: Liver values are clipped to this many spreads around the liver's median before the blob detector.
CLIP_SPREADS = 9.0
#: The mean shift looks this far (mm) beyond the found region's radius.
MEAN_SHIFT_EXTRA_MM = 3.0
#: The liver ring of the mean shift: this far (mm) beyond the region's radius, inner and outer.
MEAN_SHIFT_RING_MM = (2.0, 6.0)
#: The mean shift stops when its centre moves less than this (mm), or after ``MEAN_SHIFT_STEPS`` steps.
MEAN_SHIFT_STOP_MM = 0.3
MEAN_SHIFT_STEPS = 6
#: The mean shift samples a lesion's radius with at least this many voxels (every n-th voxel of a large lesion).
MEAN_SHIFT_SAMPLES_PER_RADIUS = 8.0


def equivalent_radius_mm(mask: np.ndarray, spacing_kji: np.ndarray) -> float:
    """The radius (mm) of a ball of the mask's volume."""
    volume = float(np.count_nonzero(mask)) * float(np.prod(spacing_kji))
    return float((3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0))


def distance_mm(a: tuple[int, ...], b: tuple[int, ...], spacing_kji: np.ndarray) -> float:
    return float(np.sqrt((((np.asarray(a) - np.asarray(b)) * spacing_kji) ** 2).sum()))


def blob_centre(
    hu: np.ndarray, allowed: np.ndarray, voxel: tuple[int, ...], spacing_kji: np.ndarray
) -> tuple[int, int, int] | None:
    """The centre of the strongest blob (dark or bright) whose radius reaches ``voxel`` (see the module
    docstring), as an allowed voxel; ``None`` if the window holds no liver."""
    spacing = np.asarray(spacing_kji, dtype=float)
    box = window_box(voxel, BLOB_WINDOW_MM, spacing, hu.shape)
    local = tuple(v - b.start for v, b in zip(voxel, box))
    inside = allowed[box]
    if not inside.any():
        return None
    values = hu[box].astype(np.float32)
    level = float(np.median(values[inside]))
    spread = max(_MAD_SIGMA * float(np.median(np.abs(values[inside] - level))), 1.0)
    clipped = np.clip(values, level - CLIP_SPREADS * spread, level + CLIP_SPREADS * spread)
    filled = np.where(inside, clipped, level).astype(np.float32)
    distance = np.sqrt(distance_squared_mm(local, filled.shape, spacing))
    best: tuple[float, tuple[int, ...]] | None = None
    for scale in BLOB_SCALES_MM:
        near = inside & (distance <= scale * np.sqrt(3.0))
        if not near.any():
            continue
        response = scale**2 * ndimage.gaussian_laplace(filled, [scale / d for d in spacing])
        for sign in (1.0, -1.0):  # a dark blob has a positive Laplacian, a bright one a negative
            signed = np.where(near, sign * response, -np.inf)
            at = np.unravel_index(int(np.argmax(signed)), signed.shape)
            if best is None or float(signed[at]) > best[0]:
                best = (float(signed[at]), tuple(int(a) for a in at))
    if best is None:
        return None
    k, j, i = (a + b.start for a, b in zip(best[1], box))
    return (k, j, i)


def mean_shift_centre(
    hu: np.ndarray,
    allowed: np.ndarray,
    radius: float,
    contrast_hu: float,
    start: tuple[int, ...],
    spacing_kji: np.ndarray,
    smoothing_mm: float,
) -> tuple[int, int, int]:
    """The centre the lesion-like voxels around a region found at ``start`` imply (``radius``: the region's
    :func:`equivalent_radius_mm`; ``contrast_hu``: its contrast to the liver; see the module docstring); ``start``
    itself when there is too little liver around to say."""
    full_spacing = np.asarray(spacing_kji, dtype=float)
    box = window_box(start, 2.0 * (radius + MEAN_SHIFT_RING_MM[1]), full_spacing, hu.shape)
    # Large lesions are followed on every n-th voxel (about radius / MEAN_SHIFT_SAMPLES_PER_RADIUS mm apart):
    # the centroid of a 60 mm lesion needs no 0.75 mm voxels, and the window would hold millions.
    steps = np.maximum(1, (radius / MEAN_SHIFT_SAMPLES_PER_RADIUS / full_spacing).astype(int))
    box = tuple(slice(b.start, b.stop, int(n)) for b, n in zip(box, steps))
    spacing = full_spacing * steps
    inside = allowed[box]
    smooth = masked_smooth(hu[box], inside, spacing, smoothing_mm)
    sign = 1.0 if contrast_hu > 0 else -1.0
    scale = max(abs(contrast_hu), 5.0)
    centre = np.asarray([(v - b.start) / n for v, b, n in zip(start, box, steps)], dtype=float)
    grids: list[np.ndarray] = list(np.indices(smooth.shape, dtype=np.float64))
    for _step in range(MEAN_SHIFT_STEPS):
        distance = np.asarray(np.sqrt(sum(((g - c) * d) ** 2 for g, c, d in zip(grids, centre, spacing))))
        ring = inside & (distance > radius + MEAN_SHIFT_RING_MM[0]) & (distance <= radius + MEAN_SHIFT_RING_MM[1])
        window = inside & (distance <= radius + MEAN_SHIFT_EXTRA_MM)
        if np.count_nonzero(ring) < 10 or np.count_nonzero(window) < 5:
            break
        liver = float(np.median(smooth[ring]))
        weight = np.clip(sign * (smooth[window] - liver) / scale, 0.0, 1.0)
        if weight.sum() <= 0:
            break
        moved_to = np.array([float((g[window] * weight).sum() / weight.sum()) for g in grids])
        step = float(np.sqrt((((moved_to - centre) * spacing) ** 2).sum()))
        centre = moved_to
        if step < MEAN_SHIFT_STOP_MM:
            break
    k, j, i = (int(min(max(round(c * s + b.start), 0), n - 1)) for c, s, b, n in zip(centre, steps, box, hu.shape))
    return (k, j, i)
