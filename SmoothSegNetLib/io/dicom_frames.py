"""Frames of classic and Enhanced (multi-frame) CT objects, and the header values that belong to each frame.

Classic CT Image Storage holds one slice per file with ImagePositionPatient, ImageOrientationPatient,
PixelSpacing and RescaleSlope/Intercept at the top level. Enhanced CT Image Storage and Legacy Converted
Enhanced CT Image Storage hold many frames in one file; each frame's values live in functional group
macros (PS3.3 C.7.6.16): the frame's item of the Per-Frame Functional Groups Sequence first, else the Shared
Functional Groups Sequence (PlanePositionSequence, PlaneOrientationSequence, PixelMeasuresSequence,
PixelValueTransformationSequence). Both kinds become a list of :class:`SliceHeader`, one per frame, so that
the stack rules (:func:`SmoothSegNetLib.io.dicom_headers.plan_stack`) are the same for both.

Rules: a series is either classic single-frame files or exactly one Enhanced object (a SEG references the
frames of one multi-frame source); any other multi-frame object is refused; NumberOfFrames must be a
positive integer and match the Per-Frame Functional Groups Sequence; RescaleSlope must be a finite number
> 0 and RescaleIntercept finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from SmoothSegNetLib.errors import VolumeValidationError

#: SOP classes whose frames are read through functional groups.
ENHANCED_CT_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
}

#: The functional group macro (a sequence of one item) that holds each per-frame attribute.
FUNCTIONAL_GROUPS = {
    "ImagePositionPatient": "PlanePositionSequence",
    "ImageOrientationPatient": "PlaneOrientationSequence",
    "PixelSpacing": "PixelMeasuresSequence",
    "SliceThickness": "PixelMeasuresSequence",
    "RescaleSlope": "PixelValueTransformationSequence",
    "RescaleIntercept": "PixelValueTransformationSequence",
}


@dataclass(frozen=True)
class SliceHeader:
    """The header (no pixel data) of one slice: a classic file, or one frame of an Enhanced object.

    Attributes:
        path: the file.
        ds: the file's dataset (pixel data not loaded while headers are checked).
        frame: 1-based frame number within an Enhanced object; ``None`` for a classic single-frame file.
    """

    path: Path
    ds: Dataset
    frame: int | None = None

    @property
    def where(self) -> str:
        """The file, and the frame when there is one, for messages."""
        return str(self.path) if self.frame is None else f"{self.path} frame {self.frame}"


def is_enhanced(ds: Dataset) -> bool:
    """Whether ``ds`` is an Enhanced (or Legacy Converted Enhanced) CT object."""
    return str(ds.get("SOPClassUID", "")) in ENHANCED_CT_CLASSES


def frame_count(header: SliceHeader, source: str) -> int:
    """NumberOfFrames of the file (1 when absent).

    Raises:
        VolumeValidationError: a value that is not a positive integer.
    """
    value = header.ds.get("NumberOfFrames")
    if value is None or value == "":
        return 1
    try:
        count = int(str(value).strip())
    except ValueError as exc:
        raise VolumeValidationError(
            f"{source}: file {header.path} has an unreadable NumberOfFrames {str(value)!r} (a positive integer is "
            "needed): the header is broken; export the series again"
        ) from exc
    if count < 1:
        raise VolumeValidationError(
            f"{source}: file {header.path} has NumberOfFrames {count} (at least 1 is needed): the header is broken; "
            "export the series again"
        )
    return count


def expand_frames(headers: list[SliceHeader], source: str) -> list[SliceHeader]:
    """One :class:`SliceHeader` per frame of the series' files (classic files stay as they are).

    Raises:
        VolumeValidationError: a multi-frame object that is not Enhanced CT, several Enhanced objects or
            Enhanced mixed with classic files, or a malformed Enhanced object.
    """
    enhanced = [h for h in headers if is_enhanced(h.ds)]
    if enhanced and len(headers) > 1:
        classic = len(headers) - len(enhanced)
        kinds = f"{len(enhanced)} Enhanced CT object{'s' if len(enhanced) > 1 else ''}" + (
            f" and {classic} single-frame file{'s' if classic > 1 else ''}" if classic else ""
        )
        raise VolumeValidationError(
            f"{source} holds {kinds} ({enhanced[0].path}, ...): an Enhanced CT series is read from one "
            "multi-frame object: keep one object per folder, or export the series as classic CT Image Storage"
        )
    frames: list[SliceHeader] = []
    for header in headers:
        count = frame_count(header, source)
        if is_enhanced(header.ds):
            _check_functional_groups(header, count, source)
            frames += [SliceHeader(header.path, header.ds, n) for n in range(1, count + 1)]
        elif count > 1:
            sop_class = str(header.ds.get("SOPClassUID", "unknown"))
            raise VolumeValidationError(
                f"{source}: file {header.path} is a multi-frame object ({count} frames) of SOP class {sop_class}, "
                "which is not supported: only classic CT Image Storage (one slice per file) and Enhanced CT Image "
                "Storage are read; export the series as one of those"
            )
        else:
            frames.append(header)
    return frames


def _check_functional_groups(header: SliceHeader, count: int, source: str) -> None:
    per_frame = header.ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None or len(per_frame) != count:
        found = "no" if per_frame is None else str(len(per_frame))
        raise VolumeValidationError(
            f"{source}: the Enhanced CT object {header.path} is malformed: NumberOfFrames is {count} but its "
            f"Per-Frame Functional Groups Sequence has {found} items, so the frames' positions are unknown: "
            "export the series again"
        )
    shared = header.ds.get("SharedFunctionalGroupsSequence")
    if shared is not None and len(shared) > 1:
        raise VolumeValidationError(
            f"{source}: the Enhanced CT object {header.path} is malformed: its Shared Functional Groups Sequence "
            f"has {len(shared)} items (one is allowed): export the series again"
        )


def frame_value(header: SliceHeader, keyword: str) -> Any:
    """The value of ``keyword`` for the slice: top level for a classic file; for a frame, the functional group
    of :data:`FUNCTIONAL_GROUPS` in the frame's per-frame item, else in the shared item (``None`` if absent)."""
    if header.frame is None or keyword not in FUNCTIONAL_GROUPS:
        return header.ds.get(keyword)
    group = FUNCTIONAL_GROUPS[keyword]
    containers = [header.ds.PerFrameFunctionalGroupsSequence[header.frame - 1]]
    shared = header.ds.get("SharedFunctionalGroupsSequence")
    if shared:
        containers.append(shared[0])
    for container in containers:
        items = container.get(group)
        if items:
            value = items[0].get(keyword)
            if value is not None and value != "":
                return value
    return None


def describe_keyword(header: SliceHeader, keyword: str) -> str:
    """``keyword``, with the functional group it is read from for an Enhanced frame (for messages)."""
    if header.frame is None or keyword not in FUNCTIONAL_GROUPS:
        return keyword
    return f"{keyword} (per-frame or shared {FUNCTIONAL_GROUPS[keyword]})"


def pixel_rescale(header: SliceHeader, source: str) -> tuple[float, float]:
    """(slope, intercept) of the slice: HU = stored * slope + intercept; (1, 0) when absent.

    Raises:
        VolumeValidationError: a value that is not a number, a slope that is not finite and > 0 (a slope of
            0 would make every voxel the intercept), an infinite intercept.
    """
    slope = _rescale_number(header, "RescaleSlope", 1.0, source)
    intercept = _rescale_number(header, "RescaleIntercept", 0.0, source)
    if not math.isfinite(slope) or slope <= 0.0:
        raise VolumeValidationError(
            f"{source}: {header.where} has {describe_keyword(header, 'RescaleSlope')} {slope:g}, but a CT's rescale "
            "slope is a finite number > 0 (normally 1): the header is broken; export the series again"
        )
    if not math.isfinite(intercept):
        raise VolumeValidationError(
            f"{source}: {header.where} has {describe_keyword(header, 'RescaleIntercept')} {intercept:g}, but a "
            "finite number is needed (normally -1024 or 0): the header is broken; export the series again"
        )
    return slope, intercept


def _rescale_number(header: SliceHeader, keyword: str, default: float, source: str) -> float:
    value = frame_value(header, keyword)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise VolumeValidationError(
            f"{source}: {header.where} has an unreadable {describe_keyword(header, keyword)} {str(value)!r} (a "
            "number is needed): the header is broken; export the series again"
        ) from exc
