"""Scanning a DICOM folder and checking the headers of one CT series (no pixel data is read here).

Rules (README, section *input*):

- the folder is searched recursively; non-DICOM files (no ``DICM`` preamble), DICOMDIRs, files holding
  only the preamble, FIFOs/sockets/devices, broken or looping symbolic links and links to folders are
  skipped and counted (one warning, :func:`ignored_warning`, also counts objects of other series such as a
  SEG); a file that starts like DICOM but cannot be parsed is refused, naming it;
- files are grouped by SeriesInstanceUID; only CT series (Modality ``CT``) are read; with several CT series
  the caller must choose one by UID (the error lists each with its slice count and description); every
  file of the chosen series must say Modality CT, hold grey values (MONOCHROME1/2: PALETTE COLOR is
  refused, with or without its table) and have its own SOPInstanceUID;
- an Enhanced CT object is one slice per frame, its values taken from the functional groups
  (:mod:`SmoothSegNetLib.io.dicom_frames`);
- slices are ordered by the projection of ImagePositionPatient on the slice normal (row x column
  direction of ImageOrientationPatient) — never by file name, InstanceNumber or frame number;
- every slice must share ImageOrientationPatient, PixelSpacing, Rows, Columns; positions must advance
  along the normal (no gantry tilt), without duplicates, with a uniform step; a non-uniform step or missing
  slices are refused unless ``allow_resample`` (see :func:`irregular_steps`); RescaleSlope must be > 0.

The volume itself is assembled by :mod:`SmoothSegNetLib.io.dicom_series`.
"""

from __future__ import annotations

import contextlib
import logging
import stat
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from SmoothSegNetLib import validation
from SmoothSegNetLib.errors import DicomSeriesError, VolumeReadError, VolumeValidationError
from SmoothSegNetLib.io.dicom_frames import (
    SliceHeader,
    describe_keyword,
    expand_frames,
    frame_value,
    is_enhanced,
    pixel_rescale,
)

log = logging.getLogger(__name__)

__all__ = ["SliceHeader", "expand_frames", "plan_stack", "scan_folder"]

_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: Bytes of the DICOM preamble and prefix ("DICM"); a file no longer than this holds no data element.
_PREAMBLE_BYTES = 132
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
        files = len(self.paths)
        count = f"{files} files" if files == self.slice_count else f"{files} file(s), {self.slice_count} frames"
        return f"{self.series_instance_uid} ({self.modality}, {count}, {description!r})"


#: What :func:`scan_folder` skips, by kind (the keys of :attr:`FolderScan.ignored`).
IGNORED_KINDS = {
    "non_dicom": "non-DICOM files",
    "preamble_only": "empty DICOM files (preamble only)",
    "dicomdir": "DICOMDIRs",
    "special": "FIFOs, sockets or device files",
    "bad_link": "broken or looping symbolic links",
    "dir_link": "symbolic links to folders (not followed)",
}


@dataclass(frozen=True)
class FolderScan:
    """The DICOM headers found under a folder, grouped by SeriesInstanceUID, and what was skipped.

    Attributes:
        groups: SeriesInstanceUID -> headers of its files (one :class:`SliceHeader` per file).
        ignored: kind (a key of :data:`IGNORED_KINDS`) -> number of entries skipped.
    """

    groups: dict[str, list[SliceHeader]]
    ignored: dict[str, int]


def scan_folder(folder: Path) -> FolderScan:
    """Headers (no pixels) of every DICOM file under ``folder``, grouped by SeriesInstanceUID.

    Non-DICOM files, DICOMDIRs, files holding nothing but the DICOM preamble, FIFOs/sockets/devices, broken
    or looping symbolic links and symbolic links to folders are skipped and counted.

    Raises:
        DicomSeriesError: no DICOM file at all.
        VolumeReadError: a file starting like DICOM that cannot be parsed, or an unreadable file.
    """
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    ignored: dict[str, int] = defaultdict(int)
    looked_at = 0
    for path in sorted(folder.rglob("*")):
        kind = _entry_kind(path)
        if kind == "dir":
            continue
        looked_at += 1
        if kind != "file":
            ignored[kind] += 1
            continue
        ds, kind = _read_header(path)
        if ds is None:
            ignored[kind] += 1
            continue
        groups[str(ds.SeriesInstanceUID)].append(SliceHeader(path, ds))
    if not groups:
        raise DicomSeriesError(
            f"no DICOM image files in folder {folder} ({looked_at} files looked at): give the folder that holds "
            "the DICOM CT series (files with the DICM preamble), or a volume file"
        )
    return FolderScan(dict(groups), dict(ignored))


def _entry_kind(path: Path) -> str:
    """'file', 'dir' (a real folder, walked), or a key of :data:`IGNORED_KINDS`."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return "bad_link"  # vanished while walking
    if stat.S_ISLNK(mode):
        try:
            mode = path.stat().st_mode
        except OSError:  # ELOOP or a missing target
            return "bad_link"
        if stat.S_ISDIR(mode):
            return "dir_link"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "special"


def _read_header(path: Path) -> tuple[Dataset | None, str]:
    """The header of ``path`` and 'file', or ``None`` and the kind of file skipped."""
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError as exc:
        if not _has_dicom_preamble(path):
            return None, "non_dicom"
        if path.stat().st_size <= _PREAMBLE_BYTES:
            return None, "preamble_only"
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
    if path.stat().st_size <= _PREAMBLE_BYTES:
        return None, "preamble_only"  # pydicom reads the bare preamble as an empty dataset
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == _DICOMDIR_CLASS:
        return None, "dicomdir"
    missing = [key for key in ("SOPClassUID", "SeriesInstanceUID") if str(ds.get(key, "")) == ""]
    if missing:
        # pydicom reads a cut-short header without complaint; every stored DICOM object has both UIDs
        raise VolumeReadError(
            f"{path} starts like a DICOM file but lacks {' and '.join(missing)}: the file is truncated or corrupt: "
            "remove it from the folder or export the series again"
        )
    return ds, "file"


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Send what pydicom logs and warns to our log at debug level.

    pydicom's own handler prints ERROR lines with tracebacks on stderr (a failed decoder) and it warns about
    invalid values when an element is first read (``'abc'`` as a DS), which can happen anywhere a header is
    looked at; the command line must show one ``error:`` line, and the exception raised afterwards says what
    is wrong.
    """
    logger = logging.getLogger("pydicom")
    saved = (logger.handlers[:], logger.propagate)
    logger.handlers = [_ForwardToLog()]
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.handlers, logger.propagate = saved


class _ForwardToLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log.debug("pydicom: %s", record.getMessage())


def ignored_warning(scan: FolderScan, uid: str, folder: Path) -> str:
    """One warning counting what was skipped in ``folder`` and the DICOM objects of other series ('' for none)."""
    parts = [f"{name}: {n}" for kind, name in IGNORED_KINDS.items() if (n := scan.ignored.get(kind, 0))]
    others = [_series_info(u, headers) for u, headers in scan.groups.items() if u != uid]
    if others:
        count = sum(len(info.paths) for info in others)
        modalities = ", ".join(sorted({info.modality for info in others}))
        parts.append(f"DICOM objects of {len(others)} other series ({modalities}): {count}")
    if not parts:
        return ""
    total = sum(scan.ignored.values()) + sum(len(info.paths) for info in others)
    return (
        f"{total} entr{'ies' if total > 1 else 'y'} in {folder} ignored, not part of series {uid}: {', '.join(parts)}"
    )


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
        slice_count=sum(_frames_or_one(h) for h in headers),
        study_instance_uid=str(first.get("StudyInstanceUID", "")),
        paths=tuple(h.path for h in headers),
    )


def _frames_or_one(header: SliceHeader) -> int:
    """The slices a file adds to a listing: the frames of an Enhanced object, else 1 (never raises)."""
    if not is_enhanced(header.ds):
        return 1
    try:
        return max(int(str(header.ds.get("NumberOfFrames", 1))), 1)
    except ValueError:
        return 1


def list_series(folder: str | Path) -> list[SeriesInfo]:
    """Every series (any modality) under ``folder``, most files first."""
    folder = Path(folder)
    validation.check_input_path(folder, want="dir")
    with quiet_pydicom():
        groups = scan_folder(folder).groups
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
    """Check the headers of one series' slices (classic files or Enhanced frames, see
    :func:`~SmoothSegNetLib.io.dicom_frames.expand_frames`) and work out the slice order and the geometry."""
    samples = _integer(headers[0], "SamplesPerPixel", 1, source)
    rows, columns = _integer(headers[0], "Rows", None, source), _integer(headers[0], "Columns", None, source)
    validation.check_dimensions((columns, rows, len(headers)), samples, source=source)
    check_files(headers, source)
    iop = np.array([_float_list(h, "ImageOrientationPatient", 6, source) for h in headers])
    spacing = np.array([_float_list(h, "PixelSpacing", 2, source) for h in headers])
    ipp = np.array([_float_list(h, "ImagePositionPatient", 3, source) for h in headers])
    for n, h in enumerate(headers):
        _same(h, "Rows", _integer(h, "Rows", None, source), rows, source)
        _same(h, "Columns", _integer(h, "Columns", None, source), columns, source)
        if not np.allclose(iop[n], iop[0], atol=_ORIENTATION_TOLERANCE):
            _inconsistent(h, "ImageOrientationPatient", iop[n].tolist(), iop[0].tolist(), source)
        if not np.allclose(spacing[n], spacing[0], atol=_SPACING_TOLERANCE_MM):
            _inconsistent(h, "PixelSpacing", spacing[n].tolist(), spacing[0].tolist(), source)
        pixel_rescale(h, source)
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
    return StackPlan(order, positions, ipp, row_dir, col_dir, normal, rows, columns, spacing_ij, step, irregular)


_GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")

#: PhotometricInterpretation values of a CT: grey values (MONOCHROME1 only inverts the display).
_GREY = ("MONOCHROME1", "MONOCHROME2")


def check_files(headers: list[SliceHeader], source: str) -> None:
    """Rules on every file of the series: Modality CT, grey pixels, one SOPInstanceUID per file.

    A PALETTE COLOR image is refused with or without its colour table: its stored values are indices into
    a table of colours, not densities, and a CT is never stored that way.
    """
    seen: dict[str, Path] = {}
    for h in headers:
        if h.frame is not None and h.frame > 1:
            continue  # the frames of an Enhanced object share its file
        modality = str(h.ds.get("Modality", "")).strip() or "none"
        if modality != "CT":
            raise VolumeValidationError(
                f"{source} mixes modalities: file {h.path} has Modality {modality}, not CT like the series' first "
                "file: SmoothSegNet segments CT only; remove the other files from the folder or export the series "
                "again"
            )
        photometric = str(_require(h, "PhotometricInterpretation", source)).strip()
        if photometric not in _GREY:
            table = " (with a colour table)" if "RedPaletteColorLookupTableData" in h.ds else ""
            raise VolumeValidationError(
                f"{source}: file {h.path} has PhotometricInterpretation {photometric}{table}, but a CT stores grey "
                f"values ({' or '.join(_GREY)}) that rescale to HU: give the original greyscale CT, not a "
                "colour rendering"
            )
        uid = str(h.ds.get("SOPInstanceUID", "")).strip()
        if uid in seen:
            raise VolumeValidationError(
                f"{source}: files {seen[uid]} and {h.path} share SOPInstanceUID {uid or '(empty)'}, but every "
                "image has its own (a copied file, or a broken anonymiser?): remove the copy or export the series "
                "again"
            )
        seen[uid] = h.path


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
    value = frame_value(header, keyword)
    if value is None or value == "":
        why = "its place in the volume" if keyword in _GEOMETRY else "how to read its pixels"
        raise VolumeValidationError(
            f"{source}: {header.where} lacks {describe_keyword(header, keyword)}, so {why} is unknown (a localizer, "
            "secondary capture or anonymised-too-far file?): remove it or export the series again"
        )
    return value


def _integer(header: SliceHeader, keyword: str, default: int | None, source: str) -> int:
    value = header.ds.get(keyword)
    if (value is None or value == "") and default is not None:
        return default
    value = _require(header, keyword, source)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise VolumeValidationError(
            f"{source}: file {header.path} has an unreadable {keyword} {value!r} (an integer is needed): export "
            "the series again"
        ) from exc


def _float_list(header: SliceHeader, keyword: str, count: int, source: str) -> list[float]:
    value = _require(header, keyword, source)
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise VolumeValidationError(
            f"{source}: {header.where} has an unreadable {describe_keyword(header, keyword)} {value!r}: export "
            "the series again"
        ) from exc
    if len(values) != count or not np.all(np.isfinite(values)):
        raise VolumeValidationError(
            f"{source}: {header.where} has {describe_keyword(header, keyword)} {values} but {count} finite numbers "
            "are needed: export the series again"
        )
    return values


def _same(header: SliceHeader, keyword: str, value: Any, expected: Any, source: str) -> None:
    if value != expected:
        _inconsistent(header, keyword, value, expected, source)


def _inconsistent(header: SliceHeader, keyword: str, value: Any, expected: Any, source: str) -> None:
    raise VolumeValidationError(
        f"{source} mixes slices of different {keyword}: {header.where} has {value}, other slices {expected} "
        "(several acquisitions or a localizer in one series?): export one consistent series"
    )
