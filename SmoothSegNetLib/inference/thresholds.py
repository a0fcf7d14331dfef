"""Lesion floors: tumor components under the minimum volume, confidence or attenuation become candidates."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.report.candidates import Candidates, DropReason, LesionThresholds, candidate_map
from SmoothSegNetLib.volume import Geometry

Slices = tuple[slice, slice, slice]


def split_by_thresholds(
    tumor_kji: np.ndarray,
    q_kji: np.ndarray,
    geometry: Geometry,
    thresholds: LesionThresholds,
    hu_kji: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[int, float], Candidates]:
    """Lesions (components reaching every floor, numbered by decreasing volume), their confidences, and the
    components under a floor as candidates (checked in the order volume, confidence, attenuation; the first
    floor missed is the reason).

    Args:
        tumor_kji: tumor mask on ``geometry``.
        q_kji: tumor decision probability on ``geometry`` (a lesion's confidence is its mean).
        geometry: the grid (for voxel volumes).
        thresholds: the floors (``None`` values: not applied).
        hu_kji: the CT in HU on ``geometry`` (a component's attenuation is its median); needed when
            ``thresholds.min_lesion_hu`` is set.
    """
    from SmoothSegNetLib.report import label_lesions

    components = label_lesions(tumor_kji, geometry)
    confidence = lesion_confidence(q_kji, components)
    sizes = np.bincount(components.ravel(), minlength=len(confidence) + 1)
    min_ml = thresholds.min_lesion_ml or 0.0
    min_conf = thresholds.min_lesion_confidence or 0.0
    median_hu = {} if thresholds.min_lesion_hu is None else component_median_hu(hu_kji, components)
    dropped: dict[int, str] = {}
    for n, conf in confidence.items():
        if sizes[n] * geometry.voxel_volume_mm3 / 1000.0 < min_ml:
            dropped[n] = DropReason.BELOW_MIN_LESION_ML.value
        elif conf < min_conf:
            dropped[n] = DropReason.BELOW_MIN_LESION_CONFIDENCE.value
        elif thresholds.min_lesion_hu is not None and median_hu[n] < thresholds.min_lesion_hu:
            dropped[n] = DropReason.BELOW_MIN_LESION_HU.value
    candidates = candidate_map(components, dropped)
    candidates = dataclasses.replace(candidates, confidence=lesion_confidence(q_kji, candidates.instances))
    if not dropped:
        return components, confidence, candidates
    # The kept components, numbered again by decreasing volume (their order among themselves is unchanged).
    lesions = label_lesions((components > 0) & ~np.isin(components, list(dropped)), geometry)
    return lesions, lesion_confidence(q_kji, lesions), candidates


def component_median_hu(hu_kji: np.ndarray | None, components: np.ndarray) -> dict[int, float]:
    """Component id -> median CT value (HU) inside it.

    Raises:
        ValueError: no CT was given (a programming error, not bad input: the attenuation floor needs it).
    """
    if hu_kji is None:
        raise ValueError("min_lesion_hu is set: split_by_thresholds needs the CT (hu_kji)")
    count = int(components.max()) if components.size else 0
    if not count:
        return {}
    medians = ndimage.median(np.asarray(hu_kji, dtype=np.float32), labels=components, index=np.arange(1, count + 1))
    return {n + 1: float(v) for n, v in enumerate(np.atleast_1d(medians))}


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
