"""Evaluating predicted labelmaps against reference labelmaps, case by case, and summarising.

Layout. ``truth`` is a folder of reference labelmaps, one per case, named ``<case>.nrrd`` (or ``.nii.gz``,
``.nii``, ``.mha``, ``.seg.nrrd``) with 1 liver, 2 tumor (3 portal vein and 4 aorta, as in HCC-TACE-Seg,
count as background). ``pred`` holds, for each case, ``<case>.<ext>`` or the output folder of
``smoothsegnet segment`` ``<case>/segmentation.nrrd``. Prediction and reference must lie on the same grid.

Liver = labels 1 and 2 (the liver including its tumors); tumor = label 2. Per case: Dice, IoU, HD95 and
ASSD (mm) of liver and tumor, lesion-wise detection; each case is put in the paper's groups by its largest
reference lesion (RECIST long axis < 10 cm or >= 10 cm) and its total tumor volume (< 500 or >= 500 cm³).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.evaluation.lesions import Detection, LesionRecord, detect_lesions, diameter_group, volume_group
from SmoothSegNetLib.evaluation.metrics import MaskMetrics, mask_metrics
from SmoothSegNetLib.progress import CancelCheck, ProgressCallback, check_cancel, no_progress
from SmoothSegNetLib.report.inputs import read_labelmap
from SmoothSegNetLib.volume import Geometry

log = logging.getLogger(__name__)

LABEL_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nrrd", ".nii", ".mha")
SEGMENT_OUTPUT_NAME = "segmentation.nrrd"


class EvaluationError(InputError):
    """The prediction or reference folders cannot be evaluated (missing cases, different grids, bad files)."""


@dataclass(frozen=True)
class CaseResult:
    """All figures of one case."""

    case_id: str
    liver: MaskMetrics
    tumor: MaskMetrics
    detection: Detection
    largest_long_axis_mm: float
    tumor_volume_ml: float

    @property
    def diameter_group(self) -> str:
        return "no tumor" if not self.detection.lesions else diameter_group(self.largest_long_axis_mm)

    @property
    def volume_group(self) -> str:
        return "no tumor" if not self.detection.lesions else volume_group(self.tumor_volume_ml)

    @property
    def lesions(self) -> tuple[LesionRecord, ...]:
        return self.detection.lesions


def case_id_of(path: Path) -> str:
    """The case name of a labelmap file (its name without the label suffix)."""
    name = path.name
    for suffix in LABEL_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _index_folder(folder: Path, role: str, allow_segment_output: bool) -> dict[str, Path]:
    if not folder.is_dir():
        raise EvaluationError(f"--{role} {folder} is not a folder: pass the folder holding one labelmap per case")
    found: dict[str, Path] = {}
    for item in sorted(folder.iterdir()):
        if item.is_file() and item.name.lower().endswith(LABEL_SUFFIXES) and not item.name.startswith("."):
            found[case_id_of(item)] = item
        elif allow_segment_output and item.is_dir() and (item / SEGMENT_OUTPUT_NAME).is_file():
            found[item.name] = item / SEGMENT_OUTPUT_NAME
    if not found:
        raise EvaluationError(
            f"--{role} {folder} holds no labelmaps (<case>{'|'.join(LABEL_SUFFIXES)}"
            f"{' or <case>/' + SEGMENT_OUTPUT_NAME if allow_segment_output else ''}): check the folder"
        )
    return found


def pair_cases(pred_dir: Path, truth_dir: Path) -> list[tuple[str, Path, Path]]:
    """``(case, prediction, reference)`` for every reference case; a missing prediction is an error."""
    truth = _index_folder(truth_dir, "truth", allow_segment_output=False)
    pred = _index_folder(pred_dir, "pred", allow_segment_output=True)
    missing = sorted(set(truth) - set(pred))
    if missing:
        raise EvaluationError(
            f"--pred {pred_dir} has no prediction for {len(missing)} reference case(s) ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}): segment them or remove them from --truth"
        )
    extra = sorted(set(pred) - set(truth))
    if extra:
        log.warning("predictions without a reference are ignored: %s", ", ".join(extra))
    return [(case, pred[case], truth[case]) for case in sorted(truth)]


def evaluate_case(case_id: str, pred: np.ndarray, truth: np.ndarray, geometry: Geometry) -> CaseResult:
    """The figures of one case from two labelmaps on ``geometry``."""
    pred_tumor, truth_tumor = pred == 2, truth == 2
    detection = detect_lesions(pred_tumor, truth_tumor, geometry)
    largest = max((r.long_axis_mm for r in detection.lesions), default=0.0)
    tumor_volume = sum(r.volume_ml for r in detection.lesions)
    return CaseResult(
        case_id=case_id,
        liver=mask_metrics((pred == 1) | pred_tumor, (truth == 1) | truth_tumor, geometry),
        tumor=mask_metrics(pred_tumor, truth_tumor, geometry),
        detection=detection,
        largest_long_axis_mm=largest,
        tumor_volume_ml=tumor_volume,
    )


def evaluate_folders(
    pred_dir: str | Path,
    truth_dir: str | Path,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
) -> list[CaseResult]:
    """Evaluate every reference case.

    Raises:
        EvaluationError: folders without labelmaps, a missing prediction, a prediction on another grid.
    """
    pairs = pair_cases(Path(pred_dir), Path(truth_dir))
    results = []
    for n, (case, pred_path, truth_path) in enumerate(pairs):
        check_cancel(cancel)
        progress("evaluate", n / len(pairs), case)
        truth, geometry = read_labelmap(truth_path, "reference labelmap")
        pred, pred_geometry = read_labelmap(pred_path, "predicted labelmap")
        if not pred_geometry.same_grid(geometry, atol=1e-3):
            raise EvaluationError(
                f"case {case}: prediction {pred_path} is not on the reference grid of {truth_path} "
                f"(shape {pred_geometry.shape_kji} vs {geometry.shape_kji}, spacing {pred_geometry.spacing_mm} vs "
                f"{geometry.spacing_mm}); segment the reference CT itself"
            )
        results.append(evaluate_case(case, pred, truth, geometry))
    progress("evaluate", 1.0, f"{len(results)} cases")
    return results


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (NaN if none)."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan
