"""Lesion thresholds and the candidates they dropped: stated in every report, never silently lost.

A tumor component under the minimum lesion volume, or whose mean tumor probability is under the confidence
floor, is not a lesion: it is not counted in the tumor burden (the ``segment`` path gives it back to the liver).
The report says which floors were used and where they came from, and lists each dropped component as a
*candidate* (with the reason), so that a reader can review what the floors removed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from SmoothSegNetLib.report.lesions import CONNECTIVITY_26, renumber_by_volume

#: At most this many candidates are measured and listed (largest first); a note gives the number left out.
MAX_CANDIDATES = 200


class ThresholdSource(str, enum.Enum):
    """Where a threshold's value came from."""

    CARD = "card"  # the tumor model card
    CLI = "cli"  # a command-line option (or the caller's explicit option)
    DEFAULT = "default"  # the command's default (``report`` on a labelmap: 0 ml)
    NOT_APPLIED = "not_applied"  # no such floor was applied (no tumor stage, or no confidences)


class DropReason(str, enum.Enum):
    """Why a tumor component is a candidate and not a lesion."""

    BELOW_MIN_LESION_ML = "below_min_lesion_ml"
    BELOW_MIN_LESION_CONFIDENCE = "below_min_lesion_confidence"


@dataclass(frozen=True)
class LesionThresholds:
    """The floors a tumor component must reach to count as a lesion, and their sources.

    Attributes:
        min_lesion_ml: minimum volume (ml); ``None`` when not applied.
        min_lesion_ml_source: :class:`ThresholdSource` value.
        min_lesion_confidence: minimum mean tumor probability (0..1); ``None`` when not applied.
        min_lesion_confidence_source: :class:`ThresholdSource` value.
    """

    min_lesion_ml: float | None = None
    min_lesion_ml_source: str = ThresholdSource.NOT_APPLIED.value
    min_lesion_confidence: float | None = None
    min_lesion_confidence_source: str = ThresholdSource.NOT_APPLIED.value

    def __post_init__(self) -> None:
        for name in ("min_lesion_ml_source", "min_lesion_confidence_source"):
            ThresholdSource(getattr(self, name))  # raises ValueError naming the bad value

    def as_report(self) -> dict[str, Any]:
        """The ``thresholds`` block of report.json."""
        return {
            "min_lesion_ml": self.min_lesion_ml,
            "min_lesion_confidence": self.min_lesion_confidence,
            "source": {
                "min_lesion_ml": self.min_lesion_ml_source,
                "min_lesion_confidence": self.min_lesion_confidence_source,
            },
        }


@dataclass(frozen=True)
class Candidates:
    """Dropped tumor components on the CT grid.

    Attributes:
        instances: uint16 ``[k, j, i]``: candidate n has value n (1 = largest), 0 elsewhere.
        reasons: candidate id -> :class:`DropReason` value.
        confidence: candidate id -> mean tumor probability (absent when unknown, e.g. a hand-made labelmap).
    """

    instances: np.ndarray
    reasons: Mapping[int, str]
    confidence: Mapping[int, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.reasons)


def candidate_map(components_kji: np.ndarray, dropped: Mapping[int, str]) -> Candidates:
    """The ``dropped`` components (id -> reason) of a component map, renumbered 1..m by decreasing volume."""
    ids = sorted(dropped)
    lut = np.zeros(int(components_kji.max()) + 1 if components_kji.size else 1, dtype=np.int64)
    lut[ids] = np.arange(1, len(ids) + 1)
    compact = lut[components_kji]
    instances = renumber_by_volume(compact, len(ids))
    reasons: dict[int, str] = {}
    for old in ids:
        new = int(instances[compact == lut[old]][0])
        reasons[new] = DropReason(dropped[old]).value
    return Candidates(instances, reasons)


def small_components(tumor_kji: np.ndarray, lesions_kji: np.ndarray) -> Candidates:
    """Tumor voxels that are in no lesion, as candidates below the minimum volume (the ``report`` path)."""
    from scipy import ndimage

    rest = np.asarray(tumor_kji, dtype=bool) & (np.asarray(lesions_kji) == 0)
    labels, count = ndimage.label(rest, structure=CONNECTIVITY_26)
    instances = renumber_by_volume(labels, count)
    reasons = {n: DropReason.BELOW_MIN_LESION_ML.value for n in range(1, count + 1)}
    return Candidates(instances, reasons)


MeasureOne = Callable[[int, np.ndarray, tuple[slice, ...]], dict[str, Any]]


def measure_candidates(candidates: Candidates, measure_one: MeasureOne) -> tuple[list[dict[str, Any]], int]:
    """``candidates[]`` entries of report.json (largest first, at most :data:`MAX_CANDIDATES`) and how many
    were left out.

    Args:
        candidates: the dropped components.
        measure_one: ``measure_one(n, instances, box) -> dict`` measuring instance ``n`` (the lesion measurer).
    """
    from scipy import ndimage

    listed = min(candidates.count, MAX_CANDIDATES)
    objects = ndimage.find_objects(candidates.instances.astype(np.int32), max_label=listed)
    entries = []
    for n in range(1, listed + 1):
        box = objects[n - 1]
        if box is None:
            continue
        full = measure_one(n, candidates.instances, box)
        confidence = candidates.confidence.get(n)
        entries.append(
            {
                "id": n,
                "volume_ml": full["volume_ml"],
                "long_axis_mm": full["long_axis_mm"],
                "confidence": None if confidence is None else round(float(confidence), 4),
                "centroid_lps_mm": full["centroid_lps_mm"],
                "reason": candidates.reasons[n],
            }
        )
    return entries, candidates.count - listed
