"""Lesion instances: 26-connected components of the tumor mask, numbered by decreasing volume.

Touching lesions merge into one component. :func:`split_touching` optionally separates them at their necks
with a distance-transform watershed (off by default: a deeply lobulated lesion can also be split in two, so
the report says when it was used).
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
    split_neck_depth_mm: float = 2.0,
) -> np.ndarray:
    """Lesion instances of a tumor mask.

    Args:
        tumor_mask_kji: tumor mask (non-zero = tumor), indexed [k, j, i], on ``geometry``'s grid.
        geometry: the grid (for voxel volumes).
        min_volume_ml: components smaller than this (ml) are dropped (>= 0).
        split: separate touching lesions with a distance-transform watershed (see :func:`split_touching`).
        split_neck_depth_mm: with ``split``, how much thinner (mm of half-thickness) a neck must be than both
            parts for the parts to count as two lesions.

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
        labels, count = split_touching(mask, geometry, split_neck_depth_mm)
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


def split_touching(mask_kji: np.ndarray, geometry: Geometry, neck_depth_mm: float = 2.0) -> tuple[np.ndarray, int]:
    """Split touching lesions at their necks: a watershed of the physical distance transform.

    The seeds are the h-maxima of the distance to the background (h = ``neck_depth_mm``): two parts become
    two lesions only where the lesion's half-thickness drops by at least ``neck_depth_mm`` between them and
    both centres. So a sphere, an ellipsoid or an elongated lesion stays whole (its distance map has one ridge;
    voxel steps are far below 2 mm), while two spheres touching at a neck separate.

    Returns:
        (labels [k, j, i] in 0..count, count).
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    if not np.isfinite(neck_depth_mm) or neck_depth_mm <= 0:
        raise InputError(f"split_neck_depth_mm must be a finite number > 0, got {neck_depth_mm!r}")
    components, count = ndimage.label(mask_kji, structure=CONNECTIVITY_26)
    if count == 0:
        return components, 0
    spacing_kji = tuple(reversed(geometry.spacing_mm))
    distance = ndimage.distance_transform_edt(mask_kji, sampling=spacing_kji)
    seeds = h_maxima(distance, neck_depth_mm, footprint=CONNECTIVITY_26).astype(bool) & mask_kji
    markers, _n = ndimage.label(seeds, structure=CONNECTIVITY_26)
    split = watershed(-distance, markers=markers, mask=mask_kji, connectivity=3)
    # A component too thin to hold an h-maximum keeps its own label.
    missing = (split == 0) & mask_kji
    if missing.any():
        extra, _n_extra = ndimage.label(missing, structure=CONNECTIVITY_26)
        split[missing] = extra[missing] + split.max()
    values = np.unique(split[split > 0])
    lut = np.zeros(int(split.max()) + 1, dtype=np.int64)
    lut[values] = np.arange(1, len(values) + 1)
    return lut[split], len(values)
