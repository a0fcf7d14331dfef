"""Lesion-wise detection (matching by overlap) and the size groups of the paper and of RECIST.

Lesions are the 26-connected components of a tumor mask (:func:`SmoothSegNetLib.report.label_lesions`).
A reference lesion is *detected* when at least one predicted tumor voxel lies in it; a predicted lesion is
a *true positive* when it overlaps at least one reference lesion. Recall = detected / reference lesions,
precision = true-positive predictions / predicted lesions, F1 their harmonic mean (NaN where undefined).

Size of a reference lesion: its RECIST 1.1 long axis (longest in-plane diameter on the slice where it is
largest, mm) and its volume (ml = cm³). Groups:

* paper split by longest diameter: ``< 10 cm`` / ``>= 10 cm``; by volume: ``< 500 cm3`` / ``>= 500 cm3``;
* RECIST size bins of the long axis: ``< 10 mm``, ``10-20 mm``, ``20-50 mm``, ``> 50 mm`` (50 mm exactly
  falls in ``20-50 mm``; 10 and 20 mm fall in the upper bin).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from SmoothSegNetLib.report.lesions import label_lesions
from SmoothSegNetLib.report.recist import recist_axes
from SmoothSegNetLib.volume import Geometry

DIAMETER_SPLIT_MM = 100.0
VOLUME_SPLIT_ML = 500.0
RECIST_BINS: tuple[tuple[str, float, float], ...] = (
    ("<10 mm", 0.0, 10.0),
    ("10-20 mm", 10.0, 20.0),
    ("20-50 mm", 20.0, 50.0),
    (">50 mm", 50.0, math.inf),
)


@dataclass(frozen=True)
class LesionRecord:
    """One reference lesion: size and whether the prediction found it."""

    id: int
    long_axis_mm: float
    volume_ml: float
    detected: bool

    @property
    def diameter_group(self) -> str:
        return diameter_group(self.long_axis_mm)

    @property
    def volume_group(self) -> str:
        return volume_group(self.volume_ml)

    @property
    def recist_bin(self) -> str:
        return recist_bin(self.long_axis_mm)


@dataclass(frozen=True)
class Detection:
    """Lesion-wise detection of one case."""

    lesions: tuple[LesionRecord, ...]
    predicted_count: int
    predicted_true_positive: int

    @property
    def recall(self) -> float:
        return sum(r.detected for r in self.lesions) / len(self.lesions) if self.lesions else math.nan

    @property
    def precision(self) -> float:
        return self.predicted_true_positive / self.predicted_count if self.predicted_count else math.nan

    @property
    def f1(self) -> float:
        return f1_score(self.recall, self.precision)


def f1_score(recall: float, precision: float) -> float:
    """Harmonic mean; NaN if either is NaN, 0 if both are 0."""
    if math.isnan(recall) or math.isnan(precision):
        return math.nan
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


def wilson_interval(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a proportion ``hits / n``: the spread of a recall or a
    precision counted over few lesions (NaN, NaN when ``n`` is 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_text(hits: int, n: int) -> str:
    """``0.368 (7/19; 95 % CI 0.191–0.590)``, or ``–`` when ``n`` is 0."""
    if n <= 0:
        return "–"
    low, high = wilson_interval(hits, n)
    return f"{hits / n:.3f} ({hits}/{n}; 95 % CI {low:.3f}–{high:.3f})"


def diameter_group(long_axis_mm: float) -> str:
    """``<10 cm`` or ``>=10 cm``."""
    return ">=10 cm" if long_axis_mm >= DIAMETER_SPLIT_MM else "<10 cm"


def volume_group(volume_ml: float) -> str:
    """``<500 cm3`` or ``>=500 cm3``."""
    return ">=500 cm3" if volume_ml >= VOLUME_SPLIT_ML else "<500 cm3"


def recist_bin(long_axis_mm: float) -> str:
    """The RECIST size bin of a long axis (see the module docstring for the edges)."""
    if long_axis_mm < 10.0:
        return "<10 mm"
    if long_axis_mm < 20.0:
        return "10-20 mm"
    return "20-50 mm" if long_axis_mm <= 50.0 else ">50 mm"


def candidate_review(
    candidates: np.ndarray, truth_ids: np.ndarray, missed: Sequence[int]
) -> tuple[list[int], int, int]:
    """The review list against the truth: the ``missed`` true lesion ids (in ``truth_ids``, lesion n = n) that a
    candidate touches, the number of candidates (``candidates``: candidate n = n), and how many of them touch no
    true lesion."""
    caught = [n for n in missed if np.any(candidates[truth_ids == n])]
    ids = np.unique(candidates[candidates > 0])
    on_truth = np.unique(candidates[(candidates > 0) & (truth_ids > 0)])
    return caught, len(ids), len(ids) - len(on_truth)


def detect_lesions(pred_tumor: np.ndarray, truth_tumor: np.ndarray, geometry: Geometry) -> Detection:
    """Match predicted and reference lesions by overlap (see the module docstring)."""
    truth_ids = label_lesions(np.asarray(truth_tumor, dtype=bool), geometry)
    pred_ids = label_lesions(np.asarray(pred_tumor, dtype=bool), geometry)
    n_truth, n_pred = int(truth_ids.max()), int(pred_ids.max())
    overlap = (truth_ids > 0) & (pred_ids > 0)
    detected_ids = set(np.unique(truth_ids[overlap]).tolist())
    matched_pred = len(set(np.unique(pred_ids[overlap]).tolist()))
    voxel_ml = geometry.voxel_volume_mm3 / 1000.0
    sizes = np.bincount(truth_ids.ravel(), minlength=n_truth + 1)
    records = []
    for lesion_id in range(1, n_truth + 1):
        mask = truth_ids == lesion_id
        axes = recist_axes(mask, geometry)
        records.append(
            LesionRecord(
                id=lesion_id,
                long_axis_mm=0.0 if axes is None else float(axes.long_axis_mm),
                volume_ml=float(sizes[lesion_id]) * voxel_ml,
                detected=lesion_id in detected_ids,
            )
        )
    return Detection(tuple(records), n_pred, matched_pred)
