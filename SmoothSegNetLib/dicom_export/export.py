"""Write seg.dcm and sr.dcm of a case into a staged output folder."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from SmoothSegNetLib.dicom_export.common import read_source_datasets, require_dicom_source
from SmoothSegNetLib.dicom_export.seg import make_seg
from SmoothSegNetLib.dicom_export.sr import make_sr
from SmoothSegNetLib.outputs import StagedOutputDir
from SmoothSegNetLib.volume import CTVolume

log = logging.getLogger(__name__)

SEG_NAME = "seg.dcm"
SR_NAME = "sr.dcm"


def write_dicom_outputs(
    stage: StagedOutputDir,
    ct: CTVolume,
    labelmap: np.ndarray,
    lesions: np.ndarray,
    report: dict[str, Any],
    *,
    write_seg: bool = True,
    write_sr: bool = False,
    per_lesion_segments: bool = False,
) -> None:
    """Write ``seg.dcm`` (and ``sr.dcm``) for a CT read from a DICOM series.

    The SR references one SEG segment per lesion, so ``write_sr`` makes the SEG with one segment per lesion
    even when ``per_lesion_segments`` is False (the SEG is written too: the SR is useless without it).

    Raises:
        ExportError: the CT has no DICOM source, is not on the source slices, or the labelmap is empty.
    """
    source = require_dicom_source(ct, "DICOM SR" if write_sr and not write_seg else "DICOM-SEG")
    datasets = read_source_datasets(source)
    per_lesion = per_lesion_segments or write_sr
    if write_sr and not per_lesion_segments:
        log.info("DICOM SR requested: the SEG gets one segment per lesion so each measurement references it")
    seg = make_seg(
        ct,
        labelmap,
        lesions,
        report,
        per_lesion_segments=per_lesion,
        source_datasets=datasets,
    )
    seg.save_as(stage.path(SEG_NAME), enforce_file_format=True)
    if write_sr:
        make_sr(seg, datasets, report).save_as(stage.path(SR_NAME), enforce_file_format=True)
