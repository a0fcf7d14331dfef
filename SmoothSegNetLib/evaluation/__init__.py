"""Evaluation of segmentations: overlap and surface metrics, lesion detection, size groups, summaries."""

from __future__ import annotations

from SmoothSegNetLib.evaluation.evaluate import CaseResult, EvaluationError, evaluate_case, evaluate_folders
from SmoothSegNetLib.evaluation.lesions import Detection, LesionRecord, detect_lesions, recist_bin
from SmoothSegNetLib.evaluation.metrics import MaskMetrics, dice, iou, mask_metrics

__all__ = [
    "CaseResult",
    "Detection",
    "EvaluationError",
    "LesionRecord",
    "MaskMetrics",
    "detect_lesions",
    "dice",
    "evaluate_case",
    "evaluate_folders",
    "iou",
    "mask_metrics",
    "recist_bin",
]
