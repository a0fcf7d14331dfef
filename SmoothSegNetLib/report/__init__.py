"""Lesion measurement (RECIST 1.1, volumes, tumor burden) and the report files of a case.

Public API: :func:`label_lesions`, :func:`measure`, :class:`ReportOptions`. Writing a case's files (report and
DICOM) is :func:`SmoothSegNetLib.case_outputs.write_case_outputs`, one layer up: this package knows nothing of DICOM.
"""

from __future__ import annotations

from SmoothSegNetLib.report.lesions import label_lesions
from SmoothSegNetLib.report.measure import SCHEMA_ID, ReportOptions, measure

__all__ = ["SCHEMA_ID", "ReportOptions", "label_lesions", "measure"]
