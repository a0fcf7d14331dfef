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
    grids grow by the same distance along every axis) of the filled liver is added. Training draws the
    dilation per case (``data.liver_mask_dilation_mm``) so the network learns the liver's surroundings; the
    pipeline uses the card's ``input.liver_mask_dilation_mm``.
    """
    liver = np.asarray(liver_kji, dtype=bool)
    if dilation_mm <= 0 or not liver.any():
        return liver.copy()
    spacing = tuple(float(s) for s in spacing_kji)
    margin = tuple(int(np.ceil(dilation_mm / s)) + 1 for s in spacing)
    box = bounding_box(liver, (margin[0], margin[1], margin[2]))
    assert box is not None
    filled = ndimage.binary_fill_holes(liver[box])
    distance = ndimage.distance_transform_edt(~filled, sampling=spacing)
    out = np.zeros(liver.shape, dtype=bool)
    out[box] = distance <= dilation_mm + 1e-6
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
