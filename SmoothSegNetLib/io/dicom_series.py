"""Assembling a CT volume from one DICOM series: pixels, rescale, padding, geometry, DICOM source.

The folder is scanned and every header rule is checked first (:mod:`SmoothSegNetLib.io.dicom_headers`);
pixel data is decoded only then. Rules (docs/ct-input.md):

- compressed transfer syntaxes are decoded by pydicom's plugins (RLE natively, JPEG/JPEG-LS/JPEG 2000
  through pylibjpeg); RescaleSlope/Intercept are applied per slice;
- pixel padding (PS3.3 C.7.5.1.1.2: PixelPaddingValue, up to PixelPaddingRangeLimit when present, in
  stored values before rescale; scanners mark the area outside the reconstruction circle with it) becomes
  :data:`PADDING_HU` (air); the Hounsfield check ignores padded voxels, so padding cannot make raw stored
  values look like HU; ordinary padding is only logged, a warning is kept when it is unusual
  (:func:`padding_warning`);
- with ``allow_resample``, non-uniform steps or missing slices are resampled by linear interpolation onto
  the median step, with a warning and no DICOM source (the grid no longer matches the source slices).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from SmoothSegNetLib import validation
from SmoothSegNetLib.errors import VolumeReadError, VolumeValidationError
from SmoothSegNetLib.io.dicom_frames import SliceHeader, expand_frames, pixel_rescale
from SmoothSegNetLib.io.dicom_headers import (
    choose_series,
    ignored_warning,
    irregular_steps,
    plan_stack,
    quiet_pydicom,
    scan_folder,
)
from SmoothSegNetLib.volume import CTVolume, DicomSlice, DicomSource, Geometry

log = logging.getLogger(__name__)

_INT16 = np.iinfo(np.int16)

#: HU given to pixel padding (air).
PADDING_HU = -1024

#: Padding is worth a warning when the values it replaced stood for more than this (tissue, not the
#: -2000/-3024 HU or air that scanners use), since real tissue of that value was then blanked too ...
PADDING_WARN_ABOVE_HU = -900.0

#: ... or when it covers more than this fraction of the voxels (outside the circle inscribed in a square
#: slice lies 21.5 %).
PADDING_WARN_FRACTION = 0.5

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


def read_dicom_series(
    folder: Path,
    *,
    series_uid: str | None = None,
    max_voxels: int | None = None,
    allow_resample: bool = False,
) -> CTVolume:
    """Read and validate one CT series from ``folder`` (see the module rules); headers first, then pixels."""
    with quiet_pydicom():
        return _read_series(folder, series_uid, max_voxels, allow_resample)


def _read_series(folder: Path, series_uid: str | None, max_voxels: int | None, allow_resample: bool) -> CTVolume:
    scan = scan_folder(folder)
    uid = choose_series(scan.groups, series_uid, folder)
    source = f"DICOM series {uid} in {folder}"
    headers = expand_frames(scan.groups[uid], source)
    plan = plan_stack(headers, source)
    validation.check_spacing((*plan.spacing_ij_mm, plan.step_mm), source=source)
    validation.check_voxel_budget((plan.columns, plan.rows, len(headers)), max_voxels, source=source)
    positions = plan.positions_mm[plan.order]
    irregular = irregular_steps(positions, plan, source, allow_resample)
    ordered = [headers[n] for n in plan.order]
    stack = read_pixels(ordered, plan.rows, plan.columns, source=source)
    validation.check_hounsfield(stack.array, source=source, ignore=stack.padded)
    notes = [note for note in (ignored_warning(scan, uid, folder), padding_warning(stack)) if note]
    array = resample_uniform(stack.array, positions, plan.step_mm) if irregular else stack.array
    geometry = Geometry.create(
        array.shape,
        (plan.spacing_ij_mm[0], plan.spacing_ij_mm[1], plan.step_mm),
        plan.ipp[plan.order[0]],
        np.column_stack([plan.row_dir, plan.col_dir, plan.normal]),
    )
    for note in notes:
        log.info("%s: %s", source, note)
    if irregular:
        resampled = (
            f"{irregular}: resampled onto {array.shape[0]} slices {plan.step_mm:g} mm apart by linear interpolation "
            "along the slice normal; DICOM-SEG/SR export is not available for this grid"
        )
        log.info("%s: %s", source, resampled)
        return CTVolume(array, geometry, source=str(folder), warnings=(*notes, resampled))
    dicom = _dicom_source(ordered, plan.ipp[plan.order])
    return CTVolume(array, geometry, source=str(folder), dicom=dicom, warnings=tuple(notes))


def _dicom_source(ordered: list[SliceHeader], ipp: np.ndarray) -> DicomSource:
    first = ordered[0].ds
    slices = tuple(
        DicomSlice(
            sop_instance_uid=str(h.ds.get("SOPInstanceUID", "")),
            sop_class_uid=str(h.ds.get("SOPClassUID", "")),
            path=str(h.path),
            position_lps_mm=(float(p[0]), float(p[1]), float(p[2])),
            frame_number=h.frame,
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


@dataclass(frozen=True)
class DecodedStack:
    """Decoded slices in stack order.

    Attributes:
        array: ``[k, j, i]`` HU, padded voxels set to :data:`PADDING_HU`; int16 when every slope and
            intercept is an integer and the values fit, else float32.
        padded: bool ``[k, j, i]`` mask of the padded voxels; ``None`` when no voxel is padding.
        padding_hu: lowest and highest HU the padded voxels had after rescale (before becoming air);
            ``None`` when no voxel is padding.
    """

    array: np.ndarray
    padded: np.ndarray | None = None
    padding_hu: tuple[float, float] | None = None

    @property
    def padded_count(self) -> int:
        """Number of padded voxels."""
        return 0 if self.padded is None else int(np.count_nonzero(self.padded))


def read_pixels(slices: Sequence[Path | SliceHeader], rows: int, columns: int, *, source: str) -> DecodedStack:
    """Decode ``slices`` (stack order: classic files, or frames of an Enhanced object), apply each slice's
    rescale (:func:`~SmoothSegNetLib.io.dicom_frames.pixel_rescale`) and pixel padding."""
    out = np.empty((len(slices), rows, columns), dtype=np.float32)
    padded: np.ndarray | None = None
    padding_hu: list[float] = []
    integral = True
    decoded: tuple[Path, Dataset, np.ndarray] | None = None  # the last file, decoded once for all its frames
    for k, item in enumerate(slices):
        path, frame = (item, None) if isinstance(item, Path) else (item.path, item.frame)
        if decoded is None or decoded[0] != path:
            ds = _read_full(path, source)
            decoded = (path, ds, _decode(ds, path, source))
        ds, pixels = decoded[1], decoded[2]
        stored = _frame_pixels(pixels, frame, path, (rows, columns), source)
        slope, intercept = pixel_rescale(SliceHeader(path, ds, frame), source)
        integral = integral and slope.is_integer() and intercept.is_integer()
        out[k] = stored.astype(np.float64) * slope + intercept
        limits = padding_range(ds, path, source)
        mask = None if limits is None else (stored >= limits[0]) & (stored <= limits[1])
        if mask is not None and mask.any():
            if padded is None:
                padded = np.zeros(out.shape, dtype=bool)
            padded[k] = mask
            values = stored[mask]
            padding_hu += [float(values.min()) * slope + intercept, float(values.max()) * slope + intercept]
            out[k][mask] = PADDING_HU
    if integral and out.size and out.min() >= _INT16.min and out.max() <= _INT16.max:
        out = out.astype(np.int16)
    if padded is None:
        return DecodedStack(out)
    log.info("%s: %d voxels of pixel padding set to %d HU", source, int(np.count_nonzero(padded)), PADDING_HU)
    return DecodedStack(out, padded, (min(padding_hu), max(padding_hu)))


def _frame_pixels(pixels: np.ndarray, frame: int | None, path: Path, shape: tuple[int, int], source: str) -> np.ndarray:
    """The stored values of one slice: the whole (2D) array of a classic file, or frame ``frame`` (1-based)."""
    if frame is not None and pixels.ndim == 3 and frame <= pixels.shape[0]:
        pixels = pixels[frame - 1]
    if pixels.shape != shape:
        where = f"{path}" if frame is None else f"{path} (frame {frame})"
        raise VolumeValidationError(
            f"{source}: {where} holds pixel data of shape {pixels.shape}, not {shape} from its header "
            "(or holds more frames than its header says): export the series again"
        )
    return pixels


def padding_range(ds: Dataset, path: Path, source: str) -> tuple[int, int] | None:
    """The stored values ``ds`` marks as padding (inclusive), or ``None`` without PixelPaddingValue.

    PixelPaddingValue alone marks one value; with PixelPaddingRangeLimit every value between the two, in
    either order. Both are reduced to a ``BitsStored``-bit value of the slice's PixelRepresentation (two's
    complement), so a value written with the wrong VR (63536 as US in a signed image) still means -2000.

    Raises:
        VolumeValidationError: a padding attribute that is not an integer.
    """
    value = _padding_attribute(ds, "PixelPaddingValue", path, source)
    if value is None:
        return None
    limit = _padding_attribute(ds, "PixelPaddingRangeLimit", path, source)
    bits = int(ds.get("BitsStored", 16) or 16)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    first = _as_stored(value, bits, signed)
    second = first if limit is None else _as_stored(limit, bits, signed)
    return min(first, second), max(first, second)


def _padding_attribute(ds: Dataset, keyword: str, path: Path, source: str) -> int | None:
    value = ds.get(keyword)
    if value is None or value == "" or value == b"":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise VolumeValidationError(
            f"{source}: {path} has an unreadable {keyword} {value!r} (an integer stored value is needed): "
            "export the series again"
        ) from exc


def _as_stored(value: int, bits: int, signed: bool) -> int:
    span = 1 << bits
    if signed:
        half = span >> 1
        return (value + half) % span - half
    return value % span


def padding_warning(stack: DecodedStack) -> str:
    """A warning about unusual pixel padding ('' for none or ordinary padding).

    Padding is ordinary when it replaced values at or below :data:`PADDING_WARN_ABOVE_HU` and covers at most
    :data:`PADDING_WARN_FRACTION` of the voxels; it is then only logged.
    """
    if stack.padded is None or stack.padding_hu is None:
        return ""
    count = stack.padded_count
    fraction = count / stack.padded.size
    low, high = stack.padding_hu
    reasons = []
    if high > PADDING_WARN_ABOVE_HU:
        reasons.append(
            f"the padding stood for {low:g}..{high:g} HU, tissue values above {PADDING_WARN_ABOVE_HU:g} HU, so real "
            "tissue of those values may have been blanked"
        )
    if fraction > PADDING_WARN_FRACTION:
        reasons.append(f"the padding covers more than {PADDING_WARN_FRACTION:.0%} of the volume")
    if not reasons:
        return ""
    return (
        f"{count:,} voxels ({fraction:.1%}) marked as pixel padding (PixelPaddingValue) were set to {PADDING_HU} "
        f"HU (air); {' and '.join(reasons)}: check the series' PixelPaddingValue"
    )


def _decode(ds: Dataset, path: Path, source: str) -> np.ndarray:
    try:
        with quiet_pydicom():
            return np.asarray(ds.pixel_array)
    except Exception as exc:  # decoders raise many types (missing plugin, truncated stream, ...)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise VolumeReadError(
            f"{source}: cannot decode the pixel data of {path} (transfer syntax {name}; {type(exc).__name__}: "
            f"{exc}); the file is truncated or corrupt, or its compression is not supported: export the series "
            "again uncompressed"
        ) from exc


def _read_full(path: Path, source: str) -> Dataset:
    try:
        with quiet_pydicom():
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
