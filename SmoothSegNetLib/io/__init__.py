"""Reading and writing CT volumes, labelmaps and segmentations.

``read_volume`` reads and validates a CT from a NRRD/NIfTI/MetaImage file or a DICOM series folder;
``list_ct_series`` lists the CT series of a DICOM folder; ``write_ct_series`` writes a CT as a DICOM
CT Image Storage series. Labelmap and segmentation writers live in :mod:`SmoothSegNetLib.io.writers`.
"""

from __future__ import annotations

from SmoothSegNetLib.io.dicom_scan import SeriesInfo, list_ct_series, list_series
from SmoothSegNetLib.io.dicom_writer import TRANSFER_SYNTAXES, write_ct_series
from SmoothSegNetLib.io.readers import FILE_FORMATS, read_volume

__all__ = [
    "FILE_FORMATS",
    "TRANSFER_SYNTAXES",
    "SeriesInfo",
    "list_ct_series",
    "list_series",
    "read_volume",
    "write_ct_series",
]
