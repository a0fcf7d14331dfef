"""Post-processing of masks on the input grid: largest component, hole filling, Chan–Vese refinement."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

Slices = tuple[slice, slice, slice]

_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def bounding_box(mask_kji: np.ndarray, margin_kji: tuple[int, int, int] = (0, 0, 0)) -> Slices | None:
    """Smallest ``[k, j, i]`` slices holding every true voxel, grown by ``margin_kji`` (clipped); ``None`` if empty."""
    if not mask_kji.any():
        return None
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask_kji.any(axis=other))
        lo = max(0, int(present[0]) - margin_kji[axis])
        hi = min(mask_kji.shape[axis], int(present[-1]) + 1 + margin_kji[axis])
        out.append(slice(lo, hi))
    return (out[0], out[1], out[2])


def largest_component(mask_kji: np.ndarray) -> np.ndarray:
    """Keep the largest 26-connected component (ties: the first in raster order). Boolean, same shape."""
    box = bounding_box(mask_kji)
    if box is None:
        return np.zeros(mask_kji.shape, dtype=bool)
    labels, count = ndimage.label(mask_kji[box], structure=_CONNECTIVITY_26)
    out = np.zeros(mask_kji.shape, dtype=bool)
    if count:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        out[box] = labels == int(np.argmax(sizes))
    return out


def fill_holes(mask_kji: np.ndarray) -> np.ndarray:
    """Fill cavities fully enclosed in 3D (6-connected background). Boolean, same shape."""
    box = bounding_box(mask_kji)
    out = np.asarray(mask_kji, dtype=bool).copy()
    if box is not None:
        out[box] = ndimage.binary_fill_holes(out[box])
    return out


def liver_context(liver_kji: np.ndarray, spacing_kji: tuple[float, float, float], dilation_mm: float) -> np.ndarray:
    """The region the tumor stage sees: the liver with its cavities filled, grown by ``dilation_mm``.

    With ``dilation_mm`` 0 this is the liver mask itself (unchanged). Otherwise the cavities (vessels) are
    filled and every voxel whose centre lies within ``dilation_mm`` (Euclidean, in millimetres, so anisotropic
    grids grow by the same distance along every axis) of a voxel of the filled liver is added. Training draws
    the dilation per case (``data.liver_mask_dilation_mm``) so the network learns the liver's surroundings;
    the pipeline uses the card's ``input.liver_mask_dilation_mm``.
    """
    liver = np.asarray(liver_kji, dtype=bool)
    if dilation_mm <= 0 or not liver.any():
        return liver.copy()
    spacing = tuple(float(s) for s in spacing_kji)
    margin = tuple(int(np.floor(dilation_mm / s)) + 1 for s in spacing)
    box = bounding_box(liver, (margin[0], margin[1], margin[2]))
    assert box is not None
    out = np.zeros(liver.shape, dtype=bool)
    out[box] = dilate_ball(ndimage.binary_fill_holes(liver[box]), (spacing[0], spacing[1], spacing[2]), dilation_mm)
    return out


def dilate_ball(mask_kji: np.ndarray, spacing_kji: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """Exact dilation by a Euclidean ball of ``radius_mm`` on an anisotropic grid (outside the array: empty).

    A voxel is set when some voxel of ``mask`` lies within ``radius_mm`` of it, centre to centre — the same set
    as ``distance_transform_edt(~mask, sampling) <= radius_mm`` but much faster for small radii: the ball is
    cut into rows along i (for each offset ``(dk, dj)`` the allowed ``|di|`` is ``m``), the mask is dilated
    along i once per distinct ``m`` (a 1D maximum filter) and shifted by each ``(dk, dj)`` of that ``m``.
    """
    mask = np.asarray(mask_kji, dtype=bool)
    sk, sj, si = spacing_kji
    limit = radius_mm * radius_mm * (1.0 + 1e-9)
    rows: dict[int, list[tuple[int, int]]] = {}
    rk, rj = int(radius_mm // sk), int(radius_mm // sj)
    for dk in range(-rk, rk + 1):
        for dj in range(-rj, rj + 1):
            rest = limit - (dk * sk) ** 2 - (dj * sj) ** 2
            if rest >= 0:
                rows.setdefault(int(np.floor(np.sqrt(rest) / si)), []).append((dk, dj))
    out = np.zeros(mask.shape, dtype=bool)
    nk, nj = mask.shape[0], mask.shape[1]
    for m, offsets in rows.items():
        row = ndimage.maximum_filter1d(mask.view(np.uint8), size=2 * m + 1, axis=2, mode="constant") > 0
        for dk, dj in offsets:
            target = (slice(max(dk, 0), nk + min(dk, 0)), slice(max(dj, 0), nj + min(dj, 0)))
            source = (slice(max(-dk, 0), nk + min(-dk, 0)), slice(max(-dj, 0), nj + min(-dj, 0)))
            out[target] |= row[source]
    return out


def chan_vese_refine(
    image_kji: np.ndarray, tumor_kji: np.ndarray, region_kji: np.ndarray, iterations: int
) -> np.ndarray:
    """Refine a tumor mask with morphological Chan–Vese (the paper's post-processing), inside ``region``.

    The active contour starts from the tumor mask and runs ``iterations`` steps on the windowed CT, in the
    tumor's bounding box grown by ``iterations + 2`` voxels (the contour moves at most one voxel per step, so
    nothing farther can change; the two phases' means are those of this neighbourhood). Voxels outside
    ``region`` (the liver) are set to the mean of the region there, so they attract neither phase; the result
    is confined to the region.
    """
    from skimage.segmentation import morphological_chan_vese

    tumor = np.asarray(tumor_kji, dtype=bool)
    if iterations <= 0 or not tumor.any():
        return tumor
    grow = iterations + 2
    box = bounding_box(tumor, (grow, grow, grow))
    assert box is not None
    region = np.asarray(region_kji[box], dtype=bool)
    if not region.any():
        return np.zeros(tumor.shape, dtype=bool)
    image = np.asarray(image_kji[box], dtype=np.float32).copy()
    image[~region] = float(image[region].mean())
    refined = morphological_chan_vese(image, num_iter=iterations, init_level_set=tumor[box].astype(np.int8))
    out = tumor.copy()
    out[box] = refined.astype(bool) & region
    return out
