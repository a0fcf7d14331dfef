"""Lesion instances: 26-connected components of the tumor mask, numbered by decreasing volume.

Touching lesions merge into one component. :func:`split_touching` optionally separates them with a
distance-transform watershed (off by default: it can also split one lobulated lesion in two, so the
report says when it was used).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.volume import Geometry

#: 26-connectivity: voxels that share a face, an edge or a corner belong to the same lesion.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def _check_mask(mask_kji: np.ndarray, geometry: Geometry, name: str) -> np.ndarray:
    mask = np.asarray(mask_kji)
    if mask.ndim != 3:
        raise InputError(f"{name} must be a 3D array indexed [k, j, i], got {mask.ndim} dimensions")
    if tuple(mask.shape) != tuple(geometry.shape_kji):
        raise InputError(
            f"{name} has shape {tuple(mask.shape)} but the geometry has shape_kji {geometry.shape_kji}: "
            "the mask must lie on the CT grid (resample it onto the CT first)"
        )
    return mask != 0


def renumber_by_volume(instances_kji: np.ndarray, count: int) -> np.ndarray:
    """Renumber labels ``1..count`` so that 1 is the largest; ties keep the order of the input labels.

    Args:
        instances_kji: integer labels 0..count, indexed [k, j, i].
        count: the largest label.

    Returns:
        uint16 labels on the same grid.
    """
    if count == 0:
        return np.zeros(instances_kji.shape, dtype=np.uint16)
    sizes = np.bincount(instances_kji.ravel(), minlength=count + 1)[1:]
    # A stable sort on -size keeps scipy's raster-order numbering for equal sizes: deterministic ties.
    order = np.argsort(-sizes, kind="stable")
    lut = np.zeros(count + 1, dtype=np.uint16)
    lut[order + 1] = np.arange(1, count + 1, dtype=np.uint16)
    return lut[instances_kji]


def label_lesions(
    tumor_mask_kji: np.ndarray,
    geometry: Geometry,
    min_volume_ml: float = 0.0,
    *,
    split: bool = False,
    split_min_distance_mm: float = 5.0,
) -> np.ndarray:
    """Lesion instances of a tumor mask.

    Args:
        tumor_mask_kji: tumor mask (non-zero = tumor), indexed [k, j, i], on ``geometry``'s grid.
        geometry: the grid (for voxel volumes).
        min_volume_ml: components smaller than this (ml) are dropped (>= 0).
        split: separate touching lesions with a distance-transform watershed (see :func:`split_touching`).
        split_min_distance_mm: with ``split``, the smallest distance between two lesion centres (mm).

    Returns:
        uint16 array [k, j, i]: 0 background, lesion ``n`` has value ``n``; 1 is the largest.
        Ties in volume keep raster order (first voxel in [k, j, i] order first).

    Raises:
        InputError: the mask is not 3D, not on the grid, or ``min_volume_ml`` is negative or not finite.
    """
    if not np.isfinite(min_volume_ml) or min_volume_ml < 0:
        raise InputError(f"min_volume_ml must be a finite number >= 0, got {min_volume_ml!r}")
    mask = _check_mask(tumor_mask_kji, geometry, "tumor_mask_kji")
    if split:
        labels, count = split_touching(mask, geometry, split_min_distance_mm)
    else:
        labels, count = ndimage.label(mask, structure=CONNECTIVITY_26)
    if count > np.iinfo(np.uint16).max:
        raise InputError(f"the tumor mask has {count} separate lesions, more than 65535: is it a tumor mask?")
    if min_volume_ml > 0 and count:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        volume_ml = sizes * geometry.voxel_volume_mm3 / 1000.0
        keep = volume_ml >= min_volume_ml
        keep[0] = False
        new_ids = np.cumsum(keep) * keep
        labels = new_ids[labels]
        count = int(keep.sum())
    return renumber_by_volume(labels, count)


def split_touching(mask_kji: np.ndarray, geometry: Geometry, min_distance_mm: float = 5.0) -> tuple[np.ndarray, int]:
    """Split touching lesions: watershed of the (physical) distance transform from its local maxima.

    Two maxima closer than ``min_distance_mm`` merge (h-maxima of 1 voxel spacing suppress plateaus), so
    one round lesion stays one lesion while two spheres touching at a neck separate.

    Returns:
        (labels [k, j, i] in 0..count, count).
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    if not np.isfinite(min_distance_mm) or min_distance_mm <= 0:
        raise InputError(f"split_min_distance_mm must be > 0, got {min_distance_mm!r}")
    components, count = ndimage.label(mask_kji, structure=CONNECTIVITY_26)
    if count == 0:
        return components, 0
    spacing_kji = tuple(reversed(geometry.spacing_mm))
    distance = ndimage.distance_transform_edt(mask_kji, sampling=spacing_kji)
    footprint_vox = [max(1, int(round(min_distance_mm / s))) for s in spacing_kji]
    footprint = np.ones([2 * f + 1 for f in footprint_vox], dtype=bool)
    peaks = peak_local_max(distance, footprint=footprint, labels=components, exclude_border=False)
    markers = np.zeros(mask_kji.shape, dtype=np.int32)
    for n, (k, j, i) in enumerate(peaks, start=1):
        markers[k, j, i] = n
    # Peaks on one plateau (several maxima of the same component closer than the footprint) merge here.
    markers = ndimage.label(ndimage.binary_dilation(markers > 0, structure=CONNECTIVITY_26), CONNECTIVITY_26)[0]
    markers[~mask_kji] = 0
    split = watershed(-distance, markers=markers, mask=mask_kji, connectivity=3)
    # A component without a marker (should not happen) keeps its own label.
    missing = (split == 0) & mask_kji
    if missing.any():
        extra, _n_extra = ndimage.label(missing, structure=CONNECTIVITY_26)
        split[missing] = extra[missing] + split.max()
    values = np.unique(split[split > 0])
    lut = np.zeros(int(split.max()) + 1, dtype=np.int64)
    lut[values] = np.arange(1, len(values) + 1)
    return lut[split], len(values)
