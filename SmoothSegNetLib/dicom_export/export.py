"""Write seg.dcm and sr.dcm of a case into a staged output folder."""

from __future__ import annotations

from typing import Any

import numpy as np

from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.outputs import StagedOutputDir
from SmoothSegNetLib.volume import CTVolume


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
    """Write ``seg.dcm`` (and ``sr.dcm``) for a CT read from a DICOM series."""
    raise ExportError("DICOM export is not implemented yet")
