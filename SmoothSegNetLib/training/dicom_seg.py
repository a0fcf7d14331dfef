"""Reading an HCC-TACE-Seg DICOM-SEG onto the grid of the CT series it segments.

The TCIA download holds, per patient, several CT series and one Segmentation object whose segments are
liver, tumor, portal vein and aorta (names vary a little between patients). The SEG is read with
highdicom; each frame is placed on the CT grid by its ImagePositionPatient (the frame's plane must coincide
with a CT slice, with the same rows and columns), and segments become the source labels 1 liver, 2 tumor,
3 portal vein, 4 aorta. Where segments overlap, tumor wins over liver and vessels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.volume import Geometry

log = logging.getLogger(__name__)

#: Keywords of segment labels (lower case) -> source label. Checked in this order.
SEGMENT_KEYWORDS: tuple[tuple[str, int], ...] = (
    ("portal", 3),
    ("aorta", 4),
    ("tumor", 2),
    ("tumour", 2),
    ("mass", 2),
    ("neoplasm", 2),
    ("lesion", 2),
    ("liver", 1),
)
#: Paint order: later labels overwrite earlier ones where segments overlap.
_PAINT_ORDER = (1, 3, 4, 2)
_POSITION_TOLERANCE_MM = 0.05


class SegmentationReadError(InputError):
    """A DICOM-SEG cannot be read or does not lie on the CT's grid."""


def label_of_segment(segment_label: str) -> int | None:
    """Source label of a segment name (``None`` for segments the training ignores)."""
    name = segment_label.lower()
    for keyword, label in SEGMENT_KEYWORDS:
        if keyword in name:
            return label
    return None


def referenced_series_uid(path: str | os.PathLike[str]) -> str | None:
    """SeriesInstanceUID of the CT series a SEG segments (ReferencedSeriesSequence), if it says."""
    import pydicom

    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    for item in ds.get("ReferencedSeriesSequence", []):
        uid = item.get("SeriesInstanceUID")
        if uid:
            return str(uid)
    return None


def read_seg_labels(path: str | os.PathLike[str], geometry: Geometry) -> np.ndarray:
    """Source labels ``[k, j, i]`` (uint8) of the DICOM-SEG ``path`` on the CT grid ``geometry``.

    Raises:
        SegmentationReadError: not a readable SEG, no known segment, or a frame off the CT grid.
    """
    import highdicom as hd

    path = Path(path)
    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:  # highdicom/pydicom raise many types for a file that is not a SEG
        raise SegmentationReadError(f"{path} cannot be read as a DICOM Segmentation: {exc}") from exc
    segment_labels = {int(s.SegmentNumber): label_of_segment(str(s.SegmentLabel)) for s in seg.SegmentSequence}
    if not any(segment_labels.values()):
        names = [str(s.SegmentLabel) for s in seg.SegmentSequence]
        raise SegmentationReadError(f"{path}: no liver/tumor/portal vein/aorta segment among {names}")
    rows, columns = int(seg.Rows), int(seg.Columns)
    nk, nj, ni = geometry.shape_kji
    if (rows, columns) != (nj, ni):
        raise SegmentationReadError(
            f"{path}: frames of {rows}x{columns} do not match the CT slices of {nj}x{ni}; is it the right CT series?"
        )
    pixels = np.asarray(seg.pixel_array)
    if pixels.ndim == 2:
        pixels = pixels[None]
    masks = {label: np.zeros(geometry.shape_kji, dtype=bool) for label in set(segment_labels.values()) if label}
    groups = seg.PerFrameFunctionalGroupsSequence
    if len(groups) != len(pixels):
        log.warning(
            "%s: %d frames of pixel data but %d frame descriptions; reading the first %d",
            path,
            len(pixels),
            len(groups),
            min(len(pixels), len(groups)),
        )
    for frame, item in enumerate(groups[: len(pixels)]):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        label = segment_labels.get(number)
        if not label:
            continue
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        i, j, k = geometry.lps_to_index(position)
        k_index = int(round(k))
        if (
            max(abs(i), abs(j), abs(k - k_index)) > _POSITION_TOLERANCE_MM / min(geometry.spacing_mm)
            or not 0 <= k_index < nk
        ):
            raise SegmentationReadError(
                f"{path}: frame {frame + 1} at {position} mm is not on a slice of the CT grid; "
                "the SEG must segment this CT series (same frame of reference, same slices)"
            )
        masks[label][k_index] |= pixels[frame] > 0
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    for label in _PAINT_ORDER:
        if label in masks:
            labels[masks[label]] = label
    return labels
