"""Writing a case's outputs: the report files and, on request, DICOM-SEG / SR, into a staged output folder.

This module sits above both :mod:`SmoothSegNetLib.report` (measurements, report files, overview) and
:mod:`SmoothSegNetLib.dicom_export` (the DICOM writers), so that the report layer knows nothing of DICOM.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.outputs import StagedOutputDir
from SmoothSegNetLib.report.files import write_report_csv, write_report_json
from SmoothSegNetLib.volume import CTVolume

log = logging.getLogger(__name__)

DICOM_SOURCE_NEEDED = (
    "{what} needs a DICOM source: the CT was read from {source!r}, not from a DICOM series; "
    "run on the DICOM series folder instead (or drop --dicom-seg/--dicom-sr)"
)


def write_case_outputs(
    stage: StagedOutputDir,
    ct: CTVolume,
    labelmap: np.ndarray,
    lesions: np.ndarray,
    report: dict[str, Any],
    *,
    dicom_seg: bool = False,
    dicom_sr: bool = False,
    per_lesion_segments: bool = False,
    overview: bool = True,
) -> None:
    """Write report.json, report.csv, overview.png and, on request, seg.dcm / sr.dcm into ``stage``.

    Args:
        stage: the job's staged output folder (files appear in OUTDIR only when the job succeeds).
        ct: the CT measured; for DICOM outputs it must come from a DICOM series (``ct.dicom``).
        labelmap: uint8 [k, j, i] on ``ct``'s grid (1 liver, 2 tumor).
        lesions: uint16 [k, j, i] lesion instances matching ``report["lesions"]``.
        report: the result of :func:`SmoothSegNetLib.report.measure`.
        dicom_seg: also write ``seg.dcm`` (DICOM-SEG).
        dicom_sr: also write ``sr.dcm`` (DICOM SR TID 1500; needs the SEG, which is then written too).
        per_lesion_segments: one SEG segment per lesion instead of one "Tumor" segment.
        overview: write ``overview.png``.

    Raises:
        ExportError: DICOM output was requested for a CT that did not come from a DICOM series.
    """
    if (dicom_seg or dicom_sr) and ct.dicom is None:
        what = "DICOM-SEG" if dicom_seg else "DICOM SR"
        raise ExportError(DICOM_SOURCE_NEEDED.format(what=what, source=ct.source))
    write_report_json(stage.path("report.json"), report)
    write_report_csv(stage.path("report.csv"), report)
    if overview:
        from SmoothSegNetLib.report.overview import write_overview_png  # matplotlib: only when drawn

        write_overview_png(stage.path("overview.png"), ct, labelmap, lesions, report)
    if dicom_seg or dicom_sr:
        from SmoothSegNetLib.dicom_export import write_dicom_outputs  # highdicom: only when asked for

        write_dicom_outputs(
            stage,
            ct,
            labelmap,
            lesions,
            report,
            write_seg=True,
            write_sr=dicom_sr,
            per_lesion_segments=per_lesion_segments,
        )
