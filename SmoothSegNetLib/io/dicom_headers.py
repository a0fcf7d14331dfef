"""Checking the headers of one CT series and working out its stack (no pixel data is read here).

Rules (docs/ct-input.md):

- every file of the series must say Modality CT, hold grey values (MONOCHROME1/2: PALETTE COLOR is refused,
  with or without its table) and have its own SOPInstanceUID (:func:`check_files`);
- an Enhanced CT object is one slice per frame, its values taken from the functional groups
  (:mod:`SmoothSegNetLib.io.dicom_frames`);
- slices are ordered by the projection of ImagePositionPatient on the slice normal (row x column
  direction of ImageOrientationPatient) — never by file name, InstanceNumber or frame number;
- every slice must share ImageOrientationPatient, PixelSpacing, Rows, Columns; positions must advance
  along the normal (no gantry tilt), without duplicates, with a uniform step; a non-uniform step or missing
  slices are refused unless ``allow_resample`` (see :func:`irregular_steps`); RescaleSlope must be > 0.

Folder scanning and series choice live in :mod:`SmoothSegNetLib.io.dicom_scan` (re-exported here); the
volume itself is assembled by :mod:`SmoothSegNetLib.io.dicom_series`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib import validation
from SmoothSegNetLib.errors import VolumeValidationError
from SmoothSegNetLib.io.dicom_frames import (
    SliceHeader,
    describe_keyword,
    expand_frames,
    frame_value,
    pixel_rescale,
)
from SmoothSegNetLib.io.dicom_scan import (
    FolderScan,
    SeriesInfo,
    choose_series,
    ignored_warning,
    list_ct_series,
    list_series,
    quiet_pydicom,
    scan_folder,
)

__all__ = [
    "FolderScan",
    "SeriesInfo",
    "SliceHeader",
    "StackPlan",
    "check_files",
    "choose_series",
    "expand_frames",
    "ignored_warning",
    "irregular_steps",
    "list_ct_series",
    "list_series",
    "plan_stack",
    "quiet_pydicom",
    "scan_folder",
]

_ORIENTATION_TOLERANCE = 1e-4
_SPACING_TOLERANCE_MM = 1e-4


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
                f"{source} mixes modalities: file {h.path} has Modality {modality}, not CT like the rest of the "
                "series: SmoothSegNet segments CT only; remove the other files from the folder or export the series "
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
