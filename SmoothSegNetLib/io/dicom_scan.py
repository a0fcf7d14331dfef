"""Scanning a DICOM folder (headers only) and choosing the CT series to read.

- the folder is searched recursively; non-DICOM files (no ``DICM`` preamble), DICOMDIRs, files holding
  only the preamble, FIFOs/sockets/devices, broken or looping symbolic links and links to folders are
  skipped and counted; :func:`ignored_warning` makes one warning of them and of the objects of other series
  (a SEG, an SR, another acquisition); a file that starts like DICOM but cannot be parsed is refused, naming
  it;
- files are grouped by SeriesInstanceUID; only CT series (Modality ``CT`` in the first file; every file is
  checked later by :func:`SmoothSegNetLib.io.dicom_headers.check_files`) are read; with several CT series the
  caller must choose one by UID (the error lists each with its slice count and description);
- pydicom's own log handler and warnings are kept off stderr while reading (:func:`quiet_pydicom`).
"""

from __future__ import annotations

import contextlib
import logging
import stat
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from SmoothSegNetLib import validation
from SmoothSegNetLib.errors import DicomSeriesError, VolumeReadError
from SmoothSegNetLib.io.dicom_frames import SliceHeader, is_enhanced
from SmoothSegNetLib.io.file_headers import has_dicom_preamble

log = logging.getLogger(__name__)

_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: Bytes of the DICOM preamble and prefix ("DICM"); a file no longer than this holds no data element.
_PREAMBLE_BYTES = 132


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
        if not has_dicom_preamble(path):
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


def _series_info(uid: str, headers: list[SliceHeader]) -> SeriesInfo:
    first = headers[0].ds
    # the modality most files give: one odd file (first or not) is named by check_files, not taken for the series
    modalities = Counter(str(h.ds.get("Modality", "")).strip() or "unknown" for h in headers)
    return SeriesInfo(
        series_instance_uid=uid,
        modality=modalities.most_common(1)[0][0],
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
