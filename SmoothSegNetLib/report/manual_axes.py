"""RECIST axes drawn by hand (Slicer markups lines, or a JSON file): they replace the measured axes of a lesion.

The input is ``{lesion id: {"long": [[L, P, S], [L, P, S]], "short": [...]}}`` (LPS mm; either axis may be
left out), e.g. ``{"2": {"long": [[0, 0, 0], [30, 40, 0]]}}``: lesion 2's long axis is then 50.0 mm. End points
are rounded to the report's 4 decimals when read, so that a length computed again from report.json's end points
is the very same number (report.json, report.csv, overview.png, the DICOM SR and the Slicer table show one value).

Which lesion a line belongs to. Lines are keyed by lesion id, and ids change when lesions are deleted or
renumbered, so a line is attached only when it lies on its lesion: the voxel nearest to the line's midpoint
belongs to the lesion, or (a curved or fragmented lesion, whose midpoint can fall outside it) that voxel is
background and every lesion voxel the line crosses belongs to this lesion. Otherwise the line is dropped with a
warning (Slicer, carried lines) or refused (a file given on the command line, :func:`check_manual_axes`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.volume import Geometry

#: The axes a file may give, and the report.json keys they set.
AXES = ("long", "short")
#: Values of the lesions' ``long_axis_source`` / ``short_axis_source``.
AUTOMATIC, MANUAL = "automatic", "manual"
_DIGITS = 4
#: Shortest line accepted (mm): a zero-length line is a click, not a diameter.
MIN_LENGTH_MM = 1e-3
#: Largest tilt (index units of k) between the two end points for the line to lie on one stored slice.
_ON_SLICE_TOLERANCE = 1e-3

#: Parts of the warnings :func:`apply_manual_axes` writes (not carried from an earlier report: written again).
WARNING_MARKS = ("RECIST axes measured by hand", "manual RECIST line(s) of lesion(s)")

ManualAxes = dict[int, dict[str, np.ndarray]]
"""lesion id -> axis ("long" / "short") -> end points, float array (2, 3) in LPS mm."""


def _line(value: Any, where: str) -> np.ndarray:
    try:
        ends = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where} must be two LPS points [[L, P, S], [L, P, S]] (mm), got {value!r}") from exc
    if ends.shape != (2, 3) or not np.all(np.isfinite(ends)):
        raise InputError(f"{where} must be two finite LPS points [[L, P, S], [L, P, S]] (mm), got {value!r}")
    ends = np.round(ends, _DIGITS)
    if float(np.linalg.norm(ends[1] - ends[0])) < MIN_LENGTH_MM:
        raise InputError(f"{where} has zero length (both ends at {ends[0].tolist()}): draw the line between two points")
    return ends


def parse_manual_axes(data: Any, source: str = "manual axes") -> ManualAxes:
    """Check and convert ``{lesion id: {"long": ends, "short": ends}}`` (ids as ints or digit strings).

    Raises:
        InputError: not an object of lesion ids, an unknown axis name, an axis that is not two finite LPS
            points, or a zero-length line; the message names ``source`` and the entry.
    """
    if not isinstance(data, Mapping):
        raise InputError(f'{source} must be a JSON object {{"<lesion id>": {{"long": [[L,P,S],[L,P,S]]}}}}')
    axes: ManualAxes = {}
    for key, entry in data.items():
        if isinstance(key, bool) or not str(key).strip().isdigit() or int(key) < 1:
            raise InputError(f"{source}: {key!r} is not a lesion id (a whole number >= 1)")
        if not isinstance(entry, Mapping) or not entry or set(entry) - set(AXES):
            raise InputError(f"{source}: lesion {key} must map 'long' and/or 'short' to two LPS points, got {entry!r}")
        axes[int(key)] = {axis: _line(entry[axis], f"{source}: lesion {key} {axis}") for axis in AXES if axis in entry}
    return axes


def read_manual_axes(path: str | Path, option: str = "--manual-axes") -> ManualAxes:
    """The manual axes of a JSON file; InputError (naming ``option``) when it is missing or malformed."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{option} {file}: no such file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{option} {file} is not a JSON file ({exc}); see docs/manual-axes.md") from exc
    return parse_manual_axes(data, f"{option} {file}")


def manual_axes_to_json(axes: ManualAxes) -> dict[str, dict[str, list[list[float]]]]:
    """The JSON form read by :func:`parse_manual_axes` (ids as strings)."""
    return {str(n): {axis: np.asarray(ends).tolist() for axis, ends in lines.items()} for n, lines in axes.items()}


def manual_axes_of_report(report: Mapping[str, Any] | None) -> ManualAxes:
    """The hand-drawn axes an earlier report.json holds (its lesions' ``*_axis_source: manual``)."""
    axes: ManualAxes = {}
    for lesion in (report or {}).get("lesions", []):
        if not isinstance(lesion, Mapping):
            continue
        lines = {a: lesion.get(f"{a}_axis_ends_lps_mm") for a in AXES if lesion.get(f"{a}_axis_source") == MANUAL}
        try:
            parsed = parse_manual_axes({str(lesion["id"]): lines}) if lines else {}
        except (InputError, KeyError):
            continue  # an unreadable entry of an old report is not carried
        axes.update(parsed)
    return axes


def _inside(geometry: Geometry, ends: np.ndarray) -> bool:
    """Both ends within the image's extent (voxel centres plus half a voxel)."""
    ijk = geometry.lps_to_index(ends)
    size = np.array(geometry.size_ijk, dtype=float)
    return bool(np.all(ijk >= -0.5 - 1e-6) and np.all(ijk <= size - 0.5 + 1e-6))


def _label_at(lesions: np.ndarray, geometry: Geometry, points_lps: np.ndarray) -> np.ndarray:
    """Lesion id of the voxel nearest to each point (0 outside the grid)."""
    ijk = np.rint(geometry.lps_to_index(np.atleast_2d(points_lps))).astype(np.int64)
    size = np.array(geometry.size_ijk)
    inside = np.all((ijk >= 0) & (ijk < size), axis=1)
    labels = np.zeros(len(ijk), dtype=np.int64)
    labels[inside] = lesions[ijk[inside, 2], ijk[inside, 1], ijk[inside, 0]]
    return labels


def line_on_lesion(lesions: np.ndarray, geometry: Geometry, lesion_id: int, ends: np.ndarray) -> bool:
    """Whether the line ``ends`` lies on lesion ``lesion_id`` of the instance map ``lesions`` [k, j, i]."""
    midpoint = _label_at(lesions, geometry, ends.mean(axis=0))[0]
    if midpoint:
        return bool(midpoint == lesion_id)
    step = min(geometry.spacing_mm) / 4.0
    count = int(np.ceil(np.linalg.norm(ends[1] - ends[0]) / step)) + 1
    samples = ends[0] + np.linspace(0.0, 1.0, count)[:, None] * (ends[1] - ends[0])
    crossed = set(_label_at(lesions, geometry, samples).tolist()) - {0}
    return crossed == {lesion_id}


def check_manual_axes(axes: ManualAxes, lesions: np.ndarray, geometry: Geometry, option: str = "--manual-axes") -> None:
    """Refuse (InputError) lines of a lesion id that does not exist, outside the image, or not on their lesion."""
    count = int(lesions.max()) if lesions.size else 0
    for lesion_id, lines in axes.items():
        if not 1 <= lesion_id <= count:
            raise InputError(
                f"{option}: lesion {lesion_id} does not exist (the labelmap has {count} lesion(s), ids 1..{count}); "
                "use the ids of report.json"
            )
        for axis, ends in lines.items():
            if not _inside(geometry, ends):
                raise InputError(
                    f"{option}: lesion {lesion_id} {axis} axis end points {ends.tolist()} (LPS mm) are not all "
                    "inside the image; give points on the CT"
                )
            if not line_on_lesion(lesions, geometry, lesion_id, ends):
                raise InputError(
                    f"{option}: the lesion {lesion_id} {axis} axis does not lie on lesion {lesion_id} (its midpoint "
                    "is in another lesion or it crosses another one); check the lesion id against report.json"
                )


def _storage_slice(ends: np.ndarray, geometry: Geometry) -> int | None:
    """The stored slice k the line lies on, when the stored slices are axial; else None (drawn on a plane)."""
    from SmoothSegNetLib.report.recist import TILT_LIMIT_DEG

    direction_k = geometry.direction_array[:, 2]
    if np.degrees(np.arccos(min(abs(float(direction_k[2])), 1.0))) > TILT_LIMIT_DEG:
        return None
    k = geometry.lps_to_index(ends)[:, 2]
    nearest = int(np.rint(k[0]))
    if np.all(np.abs(k - nearest) <= _ON_SLICE_TOLERANCE) and 0 <= nearest < geometry.shape_kji[0]:
        return nearest
    return None


def apply_manual_axes(
    entries: list[dict[str, Any]], lesions: np.ndarray, geometry: Geometry, axes: Mapping[int, Mapping[str, Any]]
) -> list[str]:
    """Put the hand-drawn lines into the lesion entries of a report; returns the warnings to add.

    Every entry gets ``long_axis_source`` and ``short_axis_source`` (``automatic`` / ``manual``). A manual axis
    sets ``<axis>_axis_mm`` (the line's length, mm) and ``<axis>_axis_ends_lps_mm``; a manual long axis also
    replaces the fragments (the user measured the lesion as one), the size categories and ``long_axis_slice_k``
    (the stored slice the line lies on, or None). Lines not on their lesion are dropped (a warning says so).
    """
    from SmoothSegNetLib.report.categories import size_categories

    by_id: dict[int, dict[str, Any]] = {int(e["id"]): e for e in entries}
    for each in entries:
        each["long_axis_source"] = each["short_axis_source"] = AUTOMATIC
    manual, dropped = [], []
    for lesion_id, lines in sorted(axes.items()):
        entry = by_id.get(int(lesion_id))
        for axis in AXES:
            if axis not in lines:
                continue
            ends = np.round(np.asarray(lines[axis], dtype=float), _DIGITS)
            if entry is None or not line_on_lesion(lesions, geometry, int(lesion_id), ends):
                dropped.append(f"{lesion_id} ({axis})")
                continue
            entry[f"{axis}_axis_mm"] = round(float(np.linalg.norm(ends[1] - ends[0])), _DIGITS)
            entry[f"{axis}_axis_ends_lps_mm"] = ends.tolist()
            entry[f"{axis}_axis_source"] = MANUAL
            if axis == "long":
                entry["fragments"], entry["fragmented"] = [], False
                entry["categories"] = size_categories(entry["long_axis_mm"])
                entry["long_axis_slice_k"] = _storage_slice(ends, geometry)
            if int(lesion_id) not in manual:
                manual.append(int(lesion_id))
    warnings = []
    if manual:
        warnings.append(f"lesion(s) {', '.join(map(str, manual))}: RECIST axes measured by hand (manual lines)")
    if dropped:
        warnings.append(
            f"manual RECIST line(s) of lesion(s) {', '.join(dropped)} were dropped: they no longer lie on that lesion "
            "(it was edited, deleted or renumbered since); the measured axes are shown, draw the lines again"
        )
    return warnings
