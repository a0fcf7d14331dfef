"""Reading a CT series from a DICOM folder with pydicom (own code, so every rule is ours and tested).

Rules (README, section *input*):

- the folder is searched recursively; files that are not DICOM (no ``DICM`` preamble) and DICOMDIRs are
  skipped; a file that starts like DICOM but cannot be parsed is refused, naming it;
- files are grouped by SeriesInstanceUID; only CT series (Modality ``CT``) are read; with several CT series
  the caller must choose one by UID (the error lists each with its slice count and description);
- slices are ordered by the projection of ImagePositionPatient on the slice normal (row x column
  direction of ImageOrientationPatient) — never by file name or InstanceNumber;
- every slice must share ImageOrientationPatient, PixelSpacing, Rows, Columns; positions must advance
  along the normal (no gantry tilt), without duplicates, with a uniform step; a non-uniform step or missing
  slices are refused unless ``allow_resample`` (then linear interpolation onto the median step, a warning,
  and no DICOM source since the grid no longer matches the source slices);
- RescaleSlope/Intercept are applied per slice; compressed transfer syntaxes are decoded by pydicom's
  plugins (RLE natively, JPEG/JPEG-LS/JPEG 2000 through pylibjpeg).
"""

from __future__ import annotations

import logging
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
from SmoothSegNetLib.volume import CTVolume, DicomSlice, DicomSource, Geometry

log = logging.getLogger(__name__)

_INT16 = np.iinfo(np.int16)
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_ORIENTATION_TOLERANCE = 1e-4
_SPACING_TOLERANCE_MM = 1e-4

#: Patient/study/series attributes kept for derived objects (DICOM-SEG, SR).
SOURCE_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesDate",
    "SeriesTime",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "InstitutionName",
    "BodyPartExamined",
    "PatientPosition",
    "SpecificCharacterSet",
)


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
class _Header:
    path: Path
    ds: Dataset


def scan_folder(folder: Path) -> dict[str, list[_Header]]:
    """Headers (no pixels) of every DICOM image file under ``folder``, grouped by SeriesInstanceUID.

    Raises:
        DicomSeriesError: no DICOM file at all.
        VolumeReadError: a file starting like DICOM that cannot be parsed, or an unreadable file.
    """
    groups: dict[str, list[_Header]] = defaultdict(list)
    looked_at = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        looked_at += 1
        ds = _read_header(path)
        if ds is None:
            continue
        groups[str(ds.SeriesInstanceUID)].append(_Header(path, ds))
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


def _series_info(uid: str, headers: list[_Header]) -> SeriesInfo:
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


def choose_series(groups: dict[str, list[_Header]], series_uid: str | None, folder: Path) -> str:
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


def read_dicom_series(
    folder: Path,
    *,
    series_uid: str | None = None,
    max_voxels: int | None = None,
    allow_resample: bool = False,
) -> CTVolume:
    """Read and validate one CT series from ``folder`` (see the module rules); headers first, then pixels."""
    groups = scan_folder(folder)
    uid = choose_series(groups, series_uid, folder)
    headers = groups[uid]
    source = f"DICOM series {uid} in {folder}"
    plan = _plan_stack(headers, source)
    validation.check_spacing((*plan.spacing_ij_mm, plan.step_mm), source=source)
    validation.check_voxel_budget((plan.columns, plan.rows, len(headers)), max_voxels, source=source)
    positions = plan.positions_mm[plan.order]
    irregular = _irregular_steps(positions, plan, source, allow_resample)
    ordered = [headers[n] for n in plan.order]
    array = read_pixels([h.path for h in ordered], plan.rows, plan.columns, source=source)
    validation.check_hounsfield(array, source=source)
    if irregular:
        array = resample_uniform(array, positions, plan.step_mm)
    geometry = Geometry.create(
        array.shape,
        (plan.spacing_ij_mm[0], plan.spacing_ij_mm[1], plan.step_mm),
        plan.ipp[plan.order[0]],
        np.column_stack([plan.row_dir, plan.col_dir, plan.normal]),
    )
    if irregular:
        warning = (
            f"{irregular}: resampled onto {array.shape[0]} slices {plan.step_mm:g} mm apart by linear interpolation "
            "along the slice normal; DICOM-SEG/SR export is not available for this grid"
        )
        log.info("%s: %s", source, warning)
        return CTVolume(array, geometry, source=str(folder), warnings=(warning,))
    return CTVolume(array, geometry, source=str(folder), dicom=_dicom_source(ordered, plan.ipp[plan.order]))


def _irregular_steps(positions: np.ndarray, plan: _StackPlan, source: str, allow_resample: bool) -> str:
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


@dataclass(frozen=True)
class _StackPlan:
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


def _plan_stack(headers: list[_Header], source: str) -> _StackPlan:
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
    return _StackPlan(
        order, positions, ipp, row_dir, col_dir, normal, int(rows), int(columns), spacing_ij, step, irregular
    )


def _require(header: _Header, keyword: str, source: str) -> Any:
    value = header.ds.get(keyword)
    if value is None or value == "":
        raise VolumeValidationError(
            f"{source}: file {header.path} lacks {keyword}, so its place in the volume is unknown (a localizer, "
            "secondary capture or anonymised-too-far file?): remove it or export the series again"
        )
    return value


def _float_list(header: _Header, keyword: str, count: int, source: str) -> list[float]:
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


def _same(header: _Header, keyword: str, value: Any, expected: Any, source: str) -> None:
    if value != expected:
        _inconsistent(header, keyword, value, expected, source)


def _inconsistent(header: _Header, keyword: str, value: Any, expected: Any, source: str) -> None:
    raise VolumeValidationError(
        f"{source} mixes slices of different {keyword}: {header.path} has {value}, other slices {expected} "
        "(several acquisitions or a localizer in one series?): export one consistent series"
    )


def _dicom_source(ordered: list[_Header], ipp: np.ndarray) -> DicomSource:
    first = ordered[0].ds
    slices = tuple(
        DicomSlice(
            sop_instance_uid=str(h.ds.get("SOPInstanceUID", "")),
            sop_class_uid=str(h.ds.get("SOPClassUID", "")),
            path=str(h.path),
            position_lps_mm=(float(p[0]), float(p[1]), float(p[2])),
        )
        for h, p in zip(ordered, ipp)
    )
    attributes = {key: _plain(first.get(key)) for key in SOURCE_ATTRIBUTES if key in first}
    return DicomSource(
        study_instance_uid=str(first.get("StudyInstanceUID", "")),
        series_instance_uid=str(first.get("SeriesInstanceUID", "")),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        slices=slices,
        attributes=attributes,
    )


def _plain(value: Any) -> Any:
    """A plain Python value (str, int, float or list of them) for a DICOM element value."""
    if isinstance(value, pydicom.multival.MultiValue):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return int(value)  # IS values are int subclasses
    if isinstance(value, float):
        return float(value)  # DS values are float subclasses
    return str(value)  # str, PersonName, UID


def read_pixels(paths: list[Path], rows: int, columns: int, *, source: str) -> np.ndarray:
    """Decode the slices in ``paths`` (stack order) and apply each slice's RescaleSlope/Intercept.

    Returns:
        ``[k, j, i]`` HU values: int16 when every slope and intercept is an integer and the values fit,
        else float32.
    """
    out = np.empty((len(paths), rows, columns), dtype=np.float32)
    integral = True
    for k, path in enumerate(paths):
        ds = _read_full(path, source)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stored = ds.pixel_array
        except Exception as exc:  # decoders raise many types (missing plugin, truncated stream, ...)
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            name = getattr(syntax, "name", str(syntax))
            raise VolumeReadError(
                f"{source}: cannot decode the pixel data of {path} (transfer syntax {name}; {type(exc).__name__}: "
                f"{exc}); the file is truncated or corrupt, or its compression is not supported: export the series "
                "again uncompressed"
            ) from exc
        if stored.shape != (rows, columns):
            raise VolumeValidationError(
                f"{source}: {path} holds pixel data of shape {stored.shape}, not {(rows, columns)} from its header "
                "(or holds several frames): export the series again"
            )
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        integral = integral and slope.is_integer() and intercept.is_integer()
        out[k] = stored.astype(np.float64) * slope + intercept
    if integral and out.size and out.min() >= _INT16.min and out.max() <= _INT16.max:
        return out.astype(np.int16)
    return out


def _read_full(path: Path, source: str) -> Dataset:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path)
    except Exception as exc:  # the header was read before, so this is a truncated or vanished file
        raise VolumeReadError(
            f"{source}: cannot read {path} ({type(exc).__name__}: {exc}); the file is truncated or was changed "
            "while reading: export the series again"
        ) from exc


def resample_uniform(array: np.ndarray, positions_mm: np.ndarray, step_mm: float) -> np.ndarray:
    """Linear interpolation of ``[k, j, i]`` slices at sorted ``positions_mm`` onto ``positions[0] + n * step``.

    The new stack starts at the first slice and ends at or before the last one; values keep the dtype
    (int16 rounded).
    """
    count = int(np.floor((positions_mm[-1] - positions_mm[0]) / step_mm + 1e-6)) + 1
    targets = positions_mm[0] + step_mm * np.arange(count)
    lower = np.clip(np.searchsorted(positions_mm, targets, side="right") - 1, 0, len(positions_mm) - 2)
    weight = (targets - positions_mm[lower]) / (positions_mm[lower + 1] - positions_mm[lower])
    weight = np.clip(weight, 0.0, 1.0).astype(np.float32)[:, None, None]
    result = (1.0 - weight) * array[lower].astype(np.float32) + weight * array[lower + 1].astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return np.rint(result).astype(array.dtype)
    return result.astype(array.dtype)
