"""Lesion measurement (RECIST 1.1, volumes, tumor burden) and the report files of a case.

Public API: :func:`label_lesions`, :func:`measure`, :func:`write_case_outputs`, :class:`ReportOptions`.
"""

from __future__ import annotations

from SmoothSegNetLib.report.lesions import label_lesions
from SmoothSegNetLib.report.measure import SCHEMA_ID, ReportOptions, measure
from SmoothSegNetLib.report.outputs import write_case_outputs

__all__ = ["SCHEMA_ID", "ReportOptions", "label_lesions", "measure", "write_case_outputs"]
