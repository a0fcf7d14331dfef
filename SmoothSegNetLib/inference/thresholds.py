"""Lesion floors: tumor components under the minimum volume, confidence or attenuation become candidates."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.inference.lesion_classifier import LogisticModel
from SmoothSegNetLib.inference.lesion_features import component_features
from SmoothSegNetLib.report.candidates import Candidates, DropReason, LesionThresholds, candidate_map
from SmoothSegNetLib.volume import Geometry

Slices = tuple[slice, slice, slice]


def split_by_thresholds(
    tumor_kji: np.ndarray,
    q_kji: np.ndarray,
    geometry: Geometry,
    thresholds: LesionThresholds,
    hu_kji: np.ndarray | None = None,
    classifier: LogisticModel | None = None,
    liver_kji: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[int, float], Candidates]:
    """Lesions (components reaching every floor, numbered by decreasing volume), their confidences, and the
    components under a floor as candidates (checked in the order volume, confidence, attenuation, classifier
    score; the first floor missed is the reason).

    Args:
        tumor_kji: tumor mask on ``geometry``.
        q_kji: tumor decision probability on ``geometry`` (a lesion's confidence is its mean).
        geometry: the grid (for voxel volumes).
        thresholds: the floors (``None`` values: not applied).
        hu_kji: the CT in HU on ``geometry`` (a component's attenuation is its median); needed when
            ``thresholds.min_lesion_hu`` or ``thresholds.min_lesion_score`` is set.
        classifier: the lesion classifier; needed when ``thresholds.min_lesion_score`` is set.
        liver_kji: the liver, tumor included, on ``geometry`` (the classifier's ring and depth); needed with it.
    """
    from SmoothSegNetLib.report import label_lesions

    components = label_lesions(tumor_kji, geometry)
    confidence = lesion_confidence(q_kji, components)
    volumes_ml = np.bincount(components.ravel(), minlength=len(confidence) + 1) * geometry.voxel_volume_mm3 / 1000.0
    min_ml = thresholds.min_lesion_ml or 0.0
    min_conf = thresholds.min_lesion_confidence or 0.0
    median_hu = {} if thresholds.min_lesion_hu is None else component_median_hu(hu_kji, components)
    dropped: dict[int, str] = {}
    for n, conf in confidence.items():
        if volumes_ml[n] < min_ml:
            dropped[n] = DropReason.BELOW_MIN_LESION_ML.value
        elif conf < min_conf:
            dropped[n] = DropReason.BELOW_MIN_LESION_CONFIDENCE.value
        elif thresholds.min_lesion_hu is not None and median_hu[n] < thresholds.min_lesion_hu:
            dropped[n] = DropReason.BELOW_MIN_LESION_HU.value
    if thresholds.min_lesion_score:  # 0 keeps every lesion: nothing to score
        scores = lesion_scores(
            components, q_kji, hu_kji, liver_kji, geometry, classifier, exclude=dropped, volumes_ml=volumes_ml
        )
        for n, score in scores.items():
            if score < thresholds.min_lesion_score:
                dropped[n] = DropReason.BELOW_MIN_LESION_SCORE.value
    candidates = candidate_map(components, dropped)
    candidates = dataclasses.replace(candidates, confidence=lesion_confidence(q_kji, candidates.instances))
    if not dropped:
        return components, confidence, candidates
    # The kept components, numbered again by decreasing volume (their order among themselves is unchanged).
    lesions = label_lesions((components > 0) & ~np.isin(components, list(dropped)), geometry)
    return lesions, lesion_confidence(q_kji, lesions), candidates


def add_low_probability(
    candidates: Candidates,
    q_kji: np.ndarray,
    context_kji: np.ndarray,
    lesions_kji: np.ndarray,
    threshold: float,
    geometry: Geometry,
    min_ml: float = 0.0,
    limit: int | None = None,
) -> Candidates:
    """The ``candidates`` plus the regions where the tumor probability reaches ``threshold`` but that are neither
    a lesion nor a candidate already (reason ``low_tumor_probability``).

    Such a region is a 26-connected component of ``q >= threshold`` inside the tumor stage's ``context`` that
    touches no lesion (a lesion's own fringe of lower probability is not a second finding) and holds no voxel of
    an earlier candidate, of at least ``min_ml``; of those, the ``limit`` with the highest peak probability
    (all when ``None``). Every candidate is numbered again by decreasing volume; each one's confidence is its
    mean probability.
    """
    return _add_regions(
        candidates,
        q_kji,
        q_kji,
        context_kji,
        lesions_kji,
        threshold,
        geometry,
        min_ml,
        limit,
        "peak",
        DropReason.LOW_TUMOR_PROBABILITY,
    )


def add_fine_pass(
    candidates: Candidates,
    q_kji: np.ndarray,
    q_fine_kji: np.ndarray,
    context_kji: np.ndarray,
    lesions_kji: np.ndarray,
    geometry: Geometry,
    min_ml: float = 0.0,
    limit: int | None = None,
) -> Candidates:
    """The ``candidates`` plus the components that the tumor network's second pass on a finer grid calls tumor
    (``q_fine >= 0.5``, mapped back to this grid) and that are neither a lesion nor a candidate already (reason
    ``fine_pass``).

    As :func:`add_low_probability`, with the fine pass's probability: a component inside ``context`` touching
    no lesion, holding no voxel of an earlier candidate, of at least ``min_ml``; of those, the ``limit`` with the
    highest mean fine-pass probability (all when ``None``), which is also each one's confidence (the earlier
    candidates keep theirs, the mean of ``q``).
    """
    return _add_regions(
        candidates,
        q_kji,
        q_fine_kji,
        context_kji,
        lesions_kji,
        0.5,
        geometry,
        min_ml,
        limit,
        "mean",
        DropReason.FINE_PASS,
    )


#: A scan finding's voxels hold at least this (its score, or this when the score is 0).
SCAN_SCORE_FLOOR = 1e-6


def add_scan_findings(
    candidates: Candidates,
    q_kji: np.ndarray,
    score_kji: np.ndarray,
    context_kji: np.ndarray,
    lesions_kji: np.ndarray,
    geometry: Geometry,
    min_ml: float = 0.0,
    limit: int | None = None,
) -> Candidates:
    """The ``candidates`` plus the liver scan's findings (:mod:`SmoothSegNetLib.correction.scan`), given as a map
    that holds each finding's score on its voxels (> 0) and 0 elsewhere (reason ``ct_scan``).

    As :func:`add_fine_pass`: a finding inside ``context`` touching no lesion, holding no voxel of an earlier
    candidate, of at least ``min_ml``; of those, the ``limit`` with the highest score (all when ``None``), which is
    also each one's confidence.
    """
    return _add_regions(
        candidates,
        q_kji,
        score_kji,
        context_kji,
        lesions_kji,
        SCAN_SCORE_FLOOR,
        geometry,
        min_ml,
        limit,
        "mean",
        DropReason.CT_SCAN,
    )


def _add_regions(
    candidates: Candidates,
    q_kji: np.ndarray,
    q_new_kji: np.ndarray,
    context_kji: np.ndarray,
    lesions_kji: np.ndarray,
    threshold: float,
    geometry: Geometry,
    min_ml: float,
    limit: int | None,
    rank_by: str,
    reason: DropReason,
) -> Candidates:
    """Components of ``q_new >= threshold`` in ``context`` added as candidates of ``reason`` (see the callers);
    ``rank_by`` (``peak`` or ``mean`` of ``q_new``) chooses the ``limit`` kept. Confidence: the mean of ``q_new``
    in the new ones, of ``q`` in the earlier ones."""
    from SmoothSegNetLib.report import label_lesions

    found = (np.asarray(q_new_kji) >= threshold) & np.asarray(context_kji, dtype=bool)
    if not found.any():
        return candidates
    components = label_lesions(found, geometry)
    count = int(components.max())
    index = np.arange(1, count + 1)
    taken = ndimage.binary_dilation(np.asarray(lesions_kji) > 0, structure=np.ones((3, 3, 3), dtype=bool))
    taken |= candidates.instances > 0
    touches = np.atleast_1d(ndimage.maximum(taken, components, index)).astype(bool)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:] * geometry.voxel_volume_mm3 / 1000.0
    new = index[~touches & (sizes >= min_ml)]
    if limit is not None and len(new) > limit:
        rank = ndimage.maximum if rank_by == "peak" else ndimage.mean
        scores = np.atleast_1d(rank(np.asarray(q_new_kji), components, new))
        new = np.sort(new[np.argsort(-scores, kind="stable")[:limit]])
    if not len(new):
        return candidates
    # One map of both kinds (earlier candidates keep their reasons), numbered again by decreasing volume.
    old_count = candidates.count
    combined = candidates.instances.astype(np.int64)
    lut = np.zeros(count + 1, dtype=np.int64)
    lut[new] = np.arange(old_count + 1, old_count + 1 + len(new))
    combined = np.where(combined > 0, combined, lut[components])
    reasons = {int(n): r for n, r in candidates.reasons.items()}
    reasons.update({old_count + 1 + m: reason.value for m in range(len(new))})
    merged = candidate_map(combined, reasons)
    confidence = lesion_confidence(q_kji, merged.instances)
    if q_new_kji is not q_kji:
        fine = lesion_confidence(q_new_kji, merged.instances)
        confidence = {n: fine[n] if merged.reasons[n] == reason.value else c for n, c in confidence.items()}
    return dataclasses.replace(merged, confidence=confidence)


def lesion_scores(
    components: np.ndarray,
    q_kji: np.ndarray,
    hu_kji: np.ndarray | None,
    liver_kji: np.ndarray | None,
    geometry: Geometry,
    classifier: LogisticModel | None,
    exclude: Mapping[int, str] | None = None,
    volumes_ml: np.ndarray | None = None,
) -> dict[int, float]:
    """Component id -> the lesion classifier's score (every component not in ``exclude`` and under the
    classifier's ``max_ml``: larger ones are lesions whatever they look like). ``volumes_ml[n]``: component
    ``n``'s volume, when the caller has counted it already.

    Raises:
        ValueError: no classifier, CT or liver was given (a programming error: the score floor needs them).
    """
    if classifier is None or hu_kji is None or liver_kji is None:
        raise ValueError("min_lesion_score is set: split_by_thresholds needs the classifier, the CT and the liver")
    count = int(components.max()) if components.size else 0
    ids = [n for n in range(1, count + 1) if n not in (exclude or {})]
    if classifier.max_ml is not None:
        if volumes_ml is None:
            volumes_ml = np.bincount(components.ravel(), minlength=count + 1) * geometry.voxel_volume_mm3 / 1000.0
        ids = [n for n in ids if volumes_ml[n] < classifier.max_ml]
    features = component_features(components, q_kji, hu_kji, np.asarray(liver_kji, dtype=bool), geometry, ids)
    return {n: classifier.score(f) for n, f in features.items()}


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
