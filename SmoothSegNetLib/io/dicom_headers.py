"""Scanning a DICOM folder and checking the headers of one CT series (no pixel data is read here).

Rules (README, section *input*):

- the folder is searched recursively; files that are not DICOM (no ``DICM`` preamble) and DICOMDIRs are
  skipped; a file that starts like DICOM but cannot be parsed is refused, naming it;
- files are grouped by SeriesInstanceUID; only CT series (Modality ``CT``) are read; with several CT series
  the caller must choose one by UID (the error lists each with its slice count and description);
- slices are ordered by the projection of ImagePositionPatient on the slice normal (row x column
  direction of ImageOrientationPatient) — never by file name or InstanceNumber;
- every slice must share ImageOrientationPatient, PixelSpacing, Rows, Columns; positions must advance
  along the normal (no gantry tilt), without duplicates, with a uniform step; a non-uniform step or missing
  slices are refused unless ``allow_resample`` (see :func:`irregular_steps`).

The volume itself is assembled by :mod:`SmoothSegNetLib.io.dicom_series`.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from SmoothSegNetLib import validation
from SmoothSegNetLib.errors import DicomSeriesError, VolumeReadError, VolumeValidationError

_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_ORIENTATION_TOLERANCE = 1e-4
_SPACING_TOLERANCE_MM = 1e-4


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a DICOM folder."""

    series_instance_uid: str
    modality: str
    description: str
    slice_count: int
    study_instance_uid: str
    paths: tuple[Path, ...]

    def summary(self) -> str:
        description = self.description or "no description"
        return f"{self.series_instance_uid} ({self.modality}, {self.slice_count} files, {description!r})"


@dataclass(frozen=True)
class SliceHeader:
    """The header (no pixel data) of one DICOM file and where it lies."""

    path: Path
    ds: Dataset


def scan_folder(folder: Path) -> dict[str, list[SliceHeader]]:
    """Headers (no pixels) of every DICOM image file under ``folder``, grouped by SeriesInstanceUID.

    Raises:
        DicomSeriesError: no DICOM file at all.
        VolumeReadError: a file starting like DICOM that cannot be parsed, or an unreadable file.
    """
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    looked_at = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        looked_at += 1
        ds = _read_header(path)
        if ds is None:
            continue
        groups[str(ds.SeriesInstanceUID)].append(SliceHeader(path, ds))
    if not groups:
        raise DicomSeriesError(
            f"no DICOM image files in folder {folder} ({looked_at} files looked at): give the folder that holds "
            "the DICOM CT series (files with the DICM preamble), or a volume file"
        )
    return dict(groups)


def _read_header(path: Path) -> Dataset | None:
    """The header of ``path``, or ``None`` when it is not a DICOM image file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError as exc:
        if not _has_dicom_preamble(path):
            return None
        raise VolumeReadError(
            f"{path} starts like a DICOM file but its header cannot be read ({exc}); the file is truncated or "
            "corrupt: remove it from the folder or export the series again"
        ) from exc
    except PermissionError as exc:
        raise VolumeReadError(f"permission denied reading {path}: make the folder's files readable") from exc
    except Exception as exc:  # pydicom raises many types on a broken header (EOFError, struct.error, ...)
        raise VolumeReadError(
            f"{path} starts like a DICOM file but its header cannot be read ({type(exc).__name__}: {exc}); "
            "the file is truncated or corrupt: remove it from the folder or export the series again"
        ) from exc
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == _DICOMDIR_CLASS:
        return None
    missing = [key for key in ("SOPClassUID", "SeriesInstanceUID") if str(ds.get(key, "")) == ""]
    if missing:
        # pydicom reads a cut-short header without complaint; every stored DICOM object has both UIDs
        raise VolumeReadError(
            f"{path} starts like a DICOM file but lacks {' and '.join(missing)}: the file is truncated or corrupt: "
            "remove it from the folder or export the series again"
        )
    return ds


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _series_info(uid: str, headers: list[SliceHeader]) -> SeriesInfo:
    first = headers[0].ds
    return SeriesInfo(
        series_instance_uid=uid,
        modality=str(first.get("Modality", "")) or "unknown",
        description=str(first.get("SeriesDescription", "")),
        slice_count=len(headers),
        study_instance_uid=str(first.get("StudyInstanceUID", "")),
        paths=tuple(h.path for h in headers),
    )


def list_series(folder: str | Path) -> list[SeriesInfo]:
    """Every series (any modality) under ``folder``, most files first."""
    folder = Path(folder)
    validation.check_input_path(folder, want="dir")
    groups = scan_folder(folder)
    infos = [_series_info(uid, headers) for uid, headers in groups.items()]
    return sorted(infos, key=lambda s: (-s.slice_count, s.series_instance_uid))


def list_ct_series(folder: str | Path) -> list[SeriesInfo]:
    """The CT series under ``folder``, most slices first (no pixel data is read)."""
    return [s for s in list_series(folder) if s.modality == "CT"]


def choose_series(groups: dict[str, list[SliceHeader]], series_uid: str | None, folder: Path) -> str:
    """The UID of the CT series to read.

    Raises:
        DicomSeriesError: unknown UID, non-CT series, no CT series, or several CT series and no UID.
    """
    infos = {uid: _series_info(uid, headers) for uid, headers in groups.items()}
    listing = "; ".join(i.summary() for i in sorted(infos.values(), key=lambda s: -s.slice_count))
    if series_uid is not None:
        if series_uid not in infos:
            raise DicomSeriesError(f"series {series_uid} is not in {folder}: choose one of {listing}")
        if infos[series_uid].modality != "CT":
            raise DicomSeriesError(
                f"series {series_uid} in {folder} has modality {infos[series_uid].modality}, not CT: SmoothSegNet "
                "segments CT only; choose a CT series"
            )
        return series_uid
    ct = [uid for uid, info in infos.items() if info.modality == "CT"]
    if not ct:
        modalities = ", ".join(sorted({i.modality for i in infos.values()}))
        raise DicomSeriesError(
            f"no CT series in {folder}: found only modality {modalities} ({listing}); SmoothSegNet segments CT "
            "only: give a folder holding a CT series"
        )
    if len(ct) > 1:
        choices = "; ".join(infos[uid].summary() for uid in sorted(ct, key=lambda u: -infos[u].slice_count))
        raise DicomSeriesError(
            f"{folder} holds {len(ct)} CT series: {choices}; choose one with --series UID (series_uid=...)"
        )
    return ct[0]


@dataclass(frozen=True)
class StackPlan:
    """Slice order and geometry of one series, worked out from its headers alone.

    ``order`` sorts the headers by ``positions_mm`` (IPP projected on ``normal``); ``ipp`` holds each
    header's ImagePositionPatient (header order); ``row_dir``/``col_dir``/``normal`` are the unit i, j, k
    directions in LPS; ``step_mm`` is the median slice step and ``irregular`` the gaps that differ from it.
    """

    order: np.ndarray
    positions_mm: np.ndarray
    ipp: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    normal: np.ndarray
    rows: int
    columns: int
    spacing_ij_mm: tuple[float, float]
    step_mm: float
    irregular: list[int]


def plan_stack(headers: list[SliceHeader], source: str) -> StackPlan:
    """Check the headers of one series and work out the slice order and the geometry."""
    first = headers[0].ds
    if int(first.get("NumberOfFrames", 1) or 1) > 1:
        raise VolumeValidationError(
            f"{source} is a multi-frame (enhanced) CT object, which is not supported: export it as classic "
            "single-frame CT Image Storage (one file per slice)"
        )
    samples = int(first.get("SamplesPerPixel", 1) or 1)
    rows, columns = _require(headers[0], "Rows", source), _require(headers[0], "Columns", source)
    validation.check_dimensions((int(columns), int(rows), len(headers)), samples, source=source)
    iop = np.array([_float_list(h, "ImageOrientationPatient", 6, source) for h in headers])
    spacing = np.array([_float_list(h, "PixelSpacing", 2, source) for h in headers])
    ipp = np.array([_float_list(h, "ImagePositionPatient", 3, source) for h in headers])
    for n, h in enumerate(headers):
        _same(h, "Rows", int(h.ds.Rows), int(rows), source)
        _same(h, "Columns", int(h.ds.Columns), int(columns), source)
        if not np.allclose(iop[n], iop[0], atol=_ORIENTATION_TOLERANCE):
            _inconsistent(h, "ImageOrientationPatient", iop[n].tolist(), iop[0].tolist(), source)
        if not np.allclose(spacing[n], spacing[0], atol=_SPACING_TOLERANCE_MM):
            _inconsistent(h, "PixelSpacing", spacing[n].tolist(), spacing[0].tolist(), source)
    row_dir, col_dir = iop[0, :3], iop[0, 3:]
    norms = np.linalg.norm([row_dir, col_dir], axis=1)
    if np.any(np.abs(norms - 1.0) > 1e-3) or abs(float(row_dir @ col_dir)) > 1e-3:
        raise VolumeValidationError(
            f"{source} has an invalid ImageOrientationPatient {iop[0].tolist()}: the row and column directions "
            "must be perpendicular unit vectors; the header is broken: export the series again"
        )
    row_dir, col_dir = row_dir / norms[0], col_dir / norms[1]
    normal = np.cross(row_dir, col_dir)
    # spacing along i (between columns) is PixelSpacing[1]; along j (between rows) PixelSpacing[0]
    spacing_ij = (float(spacing[0, 1]), float(spacing[0, 0]))
    validation.check_spacing((*spacing_ij, 1.0), source=source)
    positions = ipp @ normal
    order = np.argsort(positions, kind="stable")
    step, irregular = validation.check_slice_steps(positions[order], source=source)
    validation.check_tilt(ipp[order], normal, source=source)
    return StackPlan(
        order, positions, ipp, row_dir, col_dir, normal, int(rows), int(columns), spacing_ij, step, irregular
    )


def irregular_steps(positions: np.ndarray, plan: StackPlan, source: str, allow_resample: bool) -> str:
    """A description of irregular slice steps ('' when uniform); refuses them unless ``allow_resample``."""
    if not plan.irregular:
        return ""
    steps = sorted({round(float(s), 3) for s in np.diff(positions)})
    where = validation.describe_positions([float(positions[g]) for g in plan.irregular])
    detail = (
        f"non-uniform slice spacing or missing slices (slice steps of {validation.describe_positions(steps)}; "
        f"median {plan.step_mm:g} mm; irregular after positions {where} along the normal)"
    )
    if not allow_resample:
        raise VolumeValidationError(
            f"{source} has {detail}: re-export the complete series, or allow resampling onto a uniform grid "
            "(--allow-resample / allow_resample=True)"
        )
    return detail


def _require(header: SliceHeader, keyword: str, source: str) -> Any:
    value = header.ds.get(keyword)
    if value is None or value == "":
        raise VolumeValidationError(
            f"{source}: file {header.path} lacks {keyword}, so its place in the volume is unknown (a localizer, "
            "secondary capture or anonymised-too-far file?): remove it or export the series again"
        )
    return value


def _float_list(header: SliceHeader, keyword: str, count: int, source: str) -> list[float]:
    value = _require(header, keyword, source)
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise VolumeValidationError(
            f"{source}: file {header.path} has an unreadable {keyword} {value!r}: export the series again"
        ) from exc
    if len(values) != count or not np.all(np.isfinite(values)):
        raise VolumeValidationError(
            f"{source}: file {header.path} has {keyword} {values} but {count} finite numbers are needed: "
            "export the series again"
        )
    return values


def _same(header: SliceHeader, keyword: str, value: Any, expected: Any, source: str) -> None:
    if value != expected:
        _inconsistent(header, keyword, value, expected, source)


def _inconsistent(header: SliceHeader, keyword: str, value: Any, expected: Any, source: str) -> None:
    raise VolumeValidationError(
        f"{source} mixes slices of different {keyword}: {header.path} has {value}, other slices {expected} "
        "(several acquisitions or a localizer in one series?): export one consistent series"
    )
