"""Lesion thresholds and the candidates they dropped: stated in every report, never silently lost.

A tumor component under the minimum lesion volume, whose mean tumor probability is under the confidence floor,
or whose median CT value is under the attenuation floor (fluid: most likely a simple cyst), is not a lesion: it
is not counted in the tumor burden (the ``segment`` path gives it back to the liver). The report says which
floors were used and where they came from, and lists each dropped component as a *candidate* (with the reason),
so that a reader can review what the floors removed.
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
    BELOW_MIN_LESION_HU = "below_min_lesion_hu"
    # The tumor card's lesion classifier (a logistic model over the component's probability, contrast and shape)
    # scores it under min_lesion_score.
    BELOW_MIN_LESION_SCORE = "below_min_lesion_score"
    # Not a dropped component: a region where the tumor probability reaches the card's candidate_probability
    # but not the decision threshold 0.5 (the network saw something there, too faintly to call it tumor).
    LOW_TUMOR_PROBABILITY = "low_tumor_probability"
    # Not a dropped component either: a component that the tumor network calls tumor when it runs a second time
    # on a finer grid (candidate_fine_spacing_mm), where a small lesion spans more voxels.
    FINE_PASS = "fine_pass"
    # Not from the tumor network at all: a lesion-like region that the liver scan (SmoothSegNetLib.correction.scan:
    # blob seeds on the CT, grown by the add-lesion search, scored by a model fitted on tuning phantoms) found
    # where the network saw nothing; its confidence is that score.
    CT_SCAN = "ct_scan"


@dataclass(frozen=True)
class LesionThresholds:
    """The floors a tumor component must reach to count as a lesion, and their sources.

    Attributes:
        min_lesion_ml: minimum volume (ml); ``None`` when not applied.
        min_lesion_ml_source: :class:`ThresholdSource` value.
        min_lesion_confidence: minimum mean tumor probability (0..1); ``None`` when not applied.
        min_lesion_confidence_source: :class:`ThresholdSource` value.
        min_lesion_hu: minimum median CT value (HU) inside the component (water density and below is fluid: most
            likely a simple cyst); ``None`` when not applied.
        min_lesion_hu_source: :class:`ThresholdSource` value.
        min_lesion_score: minimum score of the tumor card's lesion classifier (0..1, how likely the component is a
            true lesion); ``None`` when not applied.
        min_lesion_score_source: :class:`ThresholdSource` value.
        candidate_probability: regions where the tumor probability reaches this (but never 0.5) and that touch no
            lesion are listed as candidates too; ``None`` when not applied.
        candidate_probability_source: :class:`ThresholdSource` value.
        candidate_fine_spacing_mm: the tumor network also runs on a grid of this isotropic spacing (mm); its
            components that touch no lesion and no earlier candidate are listed as candidates too; ``None`` when
            not applied.
        candidate_fine_spacing_mm_source: :class:`ThresholdSource` value.
        candidate_limit: at most this many regions of each added kind per case (faint regions: those with the
            highest peak probability; fine-pass components: those with the highest mean probability); ``None``:
            all (or not applied).
        candidate_scan: the liver scan lists at most this many of its findings (highest score first) as
            candidates; ``None`` when not applied.
        candidate_scan_source: :class:`ThresholdSource` value.
    """

    min_lesion_ml: float | None = None
    min_lesion_ml_source: str = ThresholdSource.NOT_APPLIED.value
    min_lesion_confidence: float | None = None
    min_lesion_confidence_source: str = ThresholdSource.NOT_APPLIED.value
    min_lesion_hu: float | None = None
    min_lesion_hu_source: str = ThresholdSource.NOT_APPLIED.value
    min_lesion_score: float | None = None
    min_lesion_score_source: str = ThresholdSource.NOT_APPLIED.value
    candidate_probability: float | None = None
    candidate_probability_source: str = ThresholdSource.NOT_APPLIED.value
    candidate_fine_spacing_mm: float | None = None
    candidate_fine_spacing_mm_source: str = ThresholdSource.NOT_APPLIED.value
    candidate_limit: int | None = None
    candidate_scan: int | None = None
    candidate_scan_source: str = ThresholdSource.NOT_APPLIED.value

    def __post_init__(self) -> None:
        for name in (
            "min_lesion_ml_source",
            "min_lesion_confidence_source",
            "min_lesion_hu_source",
            "min_lesion_score_source",
            "candidate_probability_source",
            "candidate_fine_spacing_mm_source",
            "candidate_scan_source",
        ):
            ThresholdSource(getattr(self, name))  # raises ValueError naming the bad value

    def as_report(self) -> dict[str, Any]:
        """The ``thresholds`` block of report.json."""
        return {
            "min_lesion_ml": self.min_lesion_ml,
            "min_lesion_confidence": self.min_lesion_confidence,
            "min_lesion_hu": self.min_lesion_hu,
            "min_lesion_score": self.min_lesion_score,
            "candidate_probability": self.candidate_probability,
            "candidate_fine_spacing_mm": self.candidate_fine_spacing_mm,
            "candidate_limit": self.candidate_limit,
            "candidate_scan": self.candidate_scan,
            "source": {
                "min_lesion_ml": self.min_lesion_ml_source,
                "min_lesion_confidence": self.min_lesion_confidence_source,
                "min_lesion_hu": self.min_lesion_hu_source,
                "min_lesion_score": self.min_lesion_score_source,
                "candidate_probability": self.candidate_probability_source,
                "candidate_fine_spacing_mm": self.candidate_fine_spacing_mm_source,
                "candidate_scan": self.candidate_scan_source,
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
    # The same order as renumber_by_volume (decreasing size, ties by compact id), known without a voxel search.
    sizes = np.bincount(compact.ravel(), minlength=len(ids) + 1)[1:]
    new_of_compact = np.zeros(len(ids) + 1, dtype=np.int64)
    new_of_compact[np.argsort(-sizes, kind="stable") + 1] = np.arange(1, len(ids) + 1)
    instances = renumber_by_volume(compact, len(ids))
    reasons = {int(new_of_compact[n]): DropReason(dropped[old]).value for n, old in enumerate(ids, start=1)}
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


def thresholds_from_report(report: Mapping[str, Any] | None) -> LesionThresholds | None:
    """The ``thresholds`` block of an earlier report.json, to state again when its folder is measured again
    (``export`` after a hand correction); ``None`` when it has none or it is not readable."""
    block = (report or {}).get("thresholds")
    if not isinstance(block, Mapping):
        return None
    raw_source = block.get("source")
    source: Mapping[str, Any] = raw_source if isinstance(raw_source, Mapping) else {}
    try:
        return LesionThresholds(
            min_lesion_ml=None if block.get("min_lesion_ml") is None else float(block["min_lesion_ml"]),
            min_lesion_ml_source=str(source.get("min_lesion_ml", ThresholdSource.NOT_APPLIED.value)),
            min_lesion_confidence=(
                None if block.get("min_lesion_confidence") is None else float(block["min_lesion_confidence"])
            ),
            min_lesion_confidence_source=str(source.get("min_lesion_confidence", ThresholdSource.NOT_APPLIED.value)),
            min_lesion_hu=None if block.get("min_lesion_hu") is None else float(block["min_lesion_hu"]),
            min_lesion_hu_source=str(source.get("min_lesion_hu", ThresholdSource.NOT_APPLIED.value)),
            min_lesion_score=None if block.get("min_lesion_score") is None else float(block["min_lesion_score"]),
            min_lesion_score_source=str(source.get("min_lesion_score", ThresholdSource.NOT_APPLIED.value)),
            candidate_probability=(
                None if block.get("candidate_probability") is None else float(block["candidate_probability"])
            ),
            candidate_probability_source=str(source.get("candidate_probability", ThresholdSource.NOT_APPLIED.value)),
            candidate_fine_spacing_mm=(
                None if block.get("candidate_fine_spacing_mm") is None else float(block["candidate_fine_spacing_mm"])
            ),
            candidate_fine_spacing_mm_source=str(
                source.get("candidate_fine_spacing_mm", ThresholdSource.NOT_APPLIED.value)
            ),
            candidate_limit=None if block.get("candidate_limit") is None else int(block["candidate_limit"]),
            candidate_scan=None if block.get("candidate_scan") is None else int(block["candidate_scan"]),
            candidate_scan_source=str(source.get("candidate_scan", ThresholdSource.NOT_APPLIED.value)),
        )
    except (TypeError, ValueError):
        return None


def carry_candidates(
    report: Mapping[str, Any] | None, stored_kji: np.ndarray, tumor_kji: np.ndarray
) -> Candidates | None:
    """The candidates an earlier run listed (its report.json ``candidates[]`` and ``candidates.nrrd``), minus those
    a reader has since made tumor (accepted by hand: they are lesions now), renumbered 1..m in their old order.

    Args:
        report: the earlier report.json (``None``: nothing to carry).
        stored_kji: its ``candidates.nrrd`` (uint16, candidate n = value n) on the CT grid.
        tumor_kji: the tumor mask measured now.
    """
    from scipy import ndimage

    if report is None:
        return None
    entries = {
        int(e["id"]): e for e in report.get("candidates", []) if isinstance(e, Mapping) and isinstance(e.get("id"), int)
    }
    stored = np.asarray(stored_kji)
    boxes = ndimage.find_objects(stored.astype(np.int32), max_label=max(entries, default=0))
    kept: list[int] = []
    for n in sorted(entries):
        box = boxes[n - 1] if n - 1 < len(boxes) else None
        if box is not None and not np.any(tumor_kji[box][stored[box] == n]):
            kept.append(n)
    lut = np.zeros(max(int(stored.max(initial=0)), max(entries, default=0)) + 1, dtype=np.uint16)
    lut[kept] = np.arange(1, len(kept) + 1)
    reasons = {new: str(entries[old]["reason"]) for new, old in enumerate(kept, start=1)}
    confidence = {
        new: float(entries[old]["confidence"])
        for new, old in enumerate(kept, start=1)
        if entries[old].get("confidence") is not None
    }
    return Candidates(lut[stored], reasons, confidence)
