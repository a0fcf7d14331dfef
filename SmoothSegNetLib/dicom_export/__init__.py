"""DICOM-SEG and DICOM SR (TID 1500) export of a case, made with highdicom from the source CT series.

Public API: :func:`write_dicom_outputs`.
"""

from __future__ import annotations

from SmoothSegNetLib.dicom_export.export import write_dicom_outputs

__all__ = ["write_dicom_outputs"]
