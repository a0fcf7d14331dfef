"""What DICOM-SEG and SR share: source datasets, the grid check, frame order, identification of the software.

The source is either classic CT (one file per slice, in the volume's k order) or one Enhanced CT object whose
frames are the slices (``DicomSlice.frame_number``; frame order need not be k order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from SmoothSegNetLib import __version__
from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.volume import CTVolume, DicomSource

MANUFACTURER = "SmoothSegNet project"
MODEL_NAME = "SmoothSegNet"
#: SpecificCharacterSet of SEG and SR: UTF-8, whatever the source series uses (names, model titles with '—',
#: '≥' or 'µ' would otherwise be written as '?' in the source's Latin-1).
CHARACTER_SET = "ISO_IR 192"
#: Positions of a source slice and of the volume's slice k may differ by this much (mm).
POSITION_TOLERANCE_MM = 0.01


def require_dicom_source(ct: CTVolume, what: str) -> DicomSource:
    """The CT's DICOM source, or ExportError saying that ``what`` needs one."""
    if ct.dicom is None:
        raise ExportError(
            f"{what} needs a DICOM source: the CT was read from {ct.source!r}, not from a DICOM series; "
            "run on the DICOM series folder instead"
        )
    return ct.dicom


def check_slices_match_grid(ct: CTVolume, source: DicomSource) -> None:
    """Each source slice must sit where the volume's slice k is (so SEG frames land on the right images)."""
    g = ct.geometry
    if len(source.slices) != g.shape_kji[0]:
        raise ExportError(
            f"the DICOM source has {len(source.slices)} slices but the volume has {g.shape_kji[0]}: the CT was "
            "resampled after reading; DICOM export needs the CT on its original slices"
        )
    expected = g.index_to_lps(
        np.column_stack(
            [np.zeros(len(source.slices)), np.zeros(len(source.slices)), np.arange(len(source.slices), dtype=float)]
        )
    )
    actual = np.array([s.position_lps_mm for s in source.slices], dtype=float)
    error = np.abs(expected - actual).max(axis=1)
    if np.any(error > POSITION_TOLERANCE_MM):
        k = int(np.argmax(error))
        entry = source.slices[k]
        where = entry.path if entry.frame_number is None else f"{entry.path} frame {entry.frame_number}"
        raise ExportError(
            f"source slice {where} is at {actual[k].tolist()} mm but slice k={k} of the volume is at "
            f"{expected[k].round(3).tolist()} mm: the volume is not on the DICOM series' grid"
        )


def is_multiframe(source: DicomSource) -> bool:
    """Whether the source slices are the frames of one Enhanced CT object."""
    return any(s.frame_number is not None for s in source.slices)


def to_source_order(source: DicomSource, array_kji: np.ndarray) -> np.ndarray:
    """``array_kji`` (one 2D plane per volume slice k) in the order of the source images that
    :func:`read_source_datasets` returns: k order for classic files, frame order (frame 1 first) for an
    Enhanced object — highdicom matches the planes of a SEG to the frames of a multi-frame source by index.

    Raises:
        ExportError: the slices are not each frame of one object exactly once.
    """
    if not is_multiframe(source):
        return array_kji
    frames = [s.frame_number or 0 for s in source.slices]
    if len({s.path for s in source.slices}) != 1 or sorted(frames) != list(range(1, len(frames) + 1)):
        raise ExportError(
            "the DICOM source's slices are not the frames 1..N of one Enhanced CT object: DICOM export needs the "
            "CT read from one complete Enhanced object or from classic slices"
        )
    out = np.empty_like(array_kji)
    out[np.asarray(frames) - 1] = array_kji
    return out


def read_source_datasets(source: DicomSource, *, pixels: bool = False) -> list[Dataset]:
    """The source images' datasets (headers only unless ``pixels``): one per slice in the volume's k order for
    classic files; the one object for an Enhanced CT."""
    datasets: list[Dataset] = []
    seen: set[str] = set()
    for entry in source.slices:
        if entry.path in seen:
            continue  # the frames of one Enhanced object
        seen.add(entry.path)
        try:
            ds = pydicom.dcmread(entry.path, stop_before_pixels=not pixels)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise ExportError(f"cannot read the source slice {entry.path}: {exc}; is the series still there?") from exc
        if str(ds.SOPInstanceUID) != entry.sop_instance_uid:
            raise ExportError(
                f"the source slice {entry.path} now holds SOP instance {ds.SOPInstanceUID}, not "
                f"{entry.sop_instance_uid}: the series changed since it was read; read it again"
            )
        datasets.append(ds)
    return datasets


def long_string(text: str, max_bytes: int = 64) -> str:
    """``text`` cut to fit a LO element in UTF-8 (64 bytes; '—' alone takes 3), never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def software_versions() -> str:
    return f"SmoothSegNetLib {__version__}"


def model_summary(models: Sequence[dict[str, Any]], task: str | None) -> tuple[str, str, dict[str, str]] | None:
    """(name, version, parameters) of the models that made a segment (``task``: liver / tumor / None = all)."""
    chosen = [m for m in models if task is None or m.get("task") in (task, None)]
    if not chosen:
        return None
    name = long_string(" + ".join(str(m.get("title") or m["id"]) for m in chosen))
    version = long_string(" + ".join(str(m.get("version", "unknown")) for m in chosen))
    parameters = {long_string(f"{m['id']}_weights_sha256"): str(m.get("sha256") or "unknown") for m in chosen}
    return name, version, parameters
