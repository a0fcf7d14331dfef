"""Overlap and surface-distance metrics of binary masks, in millimetres through the grid's geometry.

Masks are indexed ``[k, j, i]`` on a :class:`~SmoothSegNetLib.volume.Geometry`; the geometry's axes are
orthonormal, so distances computed with the per-axis spacing are physical distances for oblique grids too.

Conventions (stated because libraries differ):

* Dice and IoU of two empty masks are 1.0 (nothing to find, nothing found); of one empty mask, 0.0.
* The surface of a mask is its voxels with at least one 6-neighbour outside the mask (or the grid border).
* Directed distances go from every surface voxel of one mask to the nearest surface voxel of the other.
  HD95 is the larger of the two directed 95th percentiles (as MONAI's ``compute_hausdorff_distance`` with
  ``percentile=95``); HD is the larger directed maximum; ASSD is the mean over both directions' distances
  pooled together.
* Surface distances are NaN when either mask is empty (undefined), and are left out of averages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.volume import Geometry

_SIX_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)


@dataclass(frozen=True)
class MaskMetrics:
    """Agreement of one predicted mask with its reference (distances in mm, volumes in ml)."""

    dice: float
    iou: float
    hd95_mm: float
    hd_mm: float
    assd_mm: float
    volume_pred_ml: float
    volume_truth_ml: float


def _check(pred: np.ndarray, truth: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred).astype(bool, copy=False)
    truth = np.asarray(truth).astype(bool, copy=False)
    if pred.shape != truth.shape or pred.shape != tuple(geometry.shape_kji):
        raise ValueError(
            f"masks must be on the same grid: prediction {pred.shape}, reference {truth.shape}, "
            f"geometry {geometry.shape_kji}"
        )
    return pred, truth


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """``2|P∩T| / (|P| + |T|)``; 1.0 when both are empty."""
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(truth))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(pred & truth)) / total


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """``|P∩T| / |P∪T|``; 1.0 when both are empty."""
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    union = int(np.count_nonzero(pred | truth))
    return 1.0 if union == 0 else int(np.count_nonzero(pred & truth)) / union


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a 6-neighbour outside it (the grid border counts as outside)."""
    mask = np.asarray(mask, dtype=bool)
    eroded = ndimage.binary_erosion(mask, structure=_SIX_NEIGHBOURS, border_value=0)
    return mask & ~eroded


def _bbox_union(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    both = a | b
    out = []
    for axis in range(3):
        other = tuple(x for x in range(3) if x != axis)
        present = np.flatnonzero(both.any(axis=other))
        out.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(out)


def directed_surface_distances(
    source: np.ndarray, target: np.ndarray, geometry: Geometry
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of ``source`` to ``target``'s surface, and the reverse.

    Both masks must be non-empty. Work is confined to the bounding box of the two masks (distances between
    voxels inside it do not depend on anything outside).
    """
    box = _bbox_union(source, target)
    s_surface = surface(source)[box]
    t_surface = surface(target)[box]
    spacing_kji = tuple(reversed(geometry.spacing_mm))
    to_target = ndimage.distance_transform_edt(~t_surface, sampling=spacing_kji)
    to_source = ndimage.distance_transform_edt(~s_surface, sampling=spacing_kji)
    return np.asarray(to_target[s_surface], dtype=float), np.asarray(to_source[t_surface], dtype=float)


def mask_metrics(pred: np.ndarray, truth: np.ndarray, geometry: Geometry) -> MaskMetrics:
    """Dice, IoU, HD95, HD, ASSD and volumes of ``pred`` against ``truth`` (see the module conventions)."""
    pred, truth = _check(pred, truth, geometry)
    voxel_ml = geometry.voxel_volume_mm3 / 1000.0
    hd95 = hd = assd = math.nan
    if pred.any() and truth.any():
        forward, backward = directed_surface_distances(pred, truth, geometry)
        hd95 = float(max(np.percentile(forward, 95), np.percentile(backward, 95)))
        hd = float(max(forward.max(), backward.max()))
        assd = float((forward.sum() + backward.sum()) / (len(forward) + len(backward)))
    return MaskMetrics(
        dice=dice(pred, truth),
        iou=iou(pred, truth),
        hd95_mm=hd95,
        hd_mm=hd,
        assd_mm=assd,
        volume_pred_ml=float(np.count_nonzero(pred)) * voxel_ml,
        volume_truth_ml=float(np.count_nonzero(truth)) * voxel_ml,
    )
