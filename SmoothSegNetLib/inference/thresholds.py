"""Lesion floors: tumor components under the minimum volume or confidence become candidates, not lesions."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.report.candidates import Candidates, DropReason, LesionThresholds, candidate_map
from SmoothSegNetLib.volume import Geometry

Slices = tuple[slice, slice, slice]


def split_by_thresholds(
    tumor_kji: np.ndarray, q_kji: np.ndarray, geometry: Geometry, thresholds: LesionThresholds
) -> tuple[np.ndarray, dict[int, float], Candidates]:
    """Lesions (components reaching both floors, numbered by decreasing volume), their confidences, and the
    components under a floor as candidates (the volume floor is checked first).

    Args:
        tumor_kji: tumor mask on ``geometry``.
        q_kji: tumor decision probability on ``geometry`` (a lesion's confidence is its mean).
        geometry: the grid (for voxel volumes).
        thresholds: the floors (``None`` values: not applied).
    """
    from SmoothSegNetLib.report import label_lesions

    components = label_lesions(tumor_kji, geometry)
    confidence = lesion_confidence(q_kji, components)
    sizes = np.bincount(components.ravel(), minlength=len(confidence) + 1)
    min_ml = thresholds.min_lesion_ml or 0.0
    min_conf = thresholds.min_lesion_confidence or 0.0
    dropped: dict[int, str] = {}
    for n, conf in confidence.items():
        if sizes[n] * geometry.voxel_volume_mm3 / 1000.0 < min_ml:
            dropped[n] = DropReason.BELOW_MIN_LESION_ML.value
        elif conf < min_conf:
            dropped[n] = DropReason.BELOW_MIN_LESION_CONFIDENCE.value
    candidates = candidate_map(components, dropped)
    candidates = dataclasses.replace(candidates, confidence=lesion_confidence(q_kji, candidates.instances))
    if not dropped:
        return components, confidence, candidates
    # The kept components, numbered again by decreasing volume (their order among themselves is unchanged).
    lesions = label_lesions((components > 0) & ~np.isin(components, list(dropped)), geometry)
    return lesions, lesion_confidence(q_kji, lesions), candidates


def on_grid(candidates: Candidates, box: Slices, shape_kji: tuple[int, int, int]) -> Candidates:
    """Candidates of a crop placed on the full grid."""
    full = np.zeros(shape_kji, dtype=np.uint16)
    full[box] = candidates.instances
    return dataclasses.replace(candidates, instances=full)


def lesion_confidence(q: np.ndarray, lesions: np.ndarray) -> dict[int, float]:
    """Lesion id -> mean decision probability inside it."""
    count = int(lesions.max()) if lesions.size else 0
    if not count:
        return {}
    means = ndimage.mean(q, labels=lesions, index=np.arange(1, count + 1))
    return {n + 1: round(float(v), 4) for n, v in enumerate(np.atleast_1d(means))}
