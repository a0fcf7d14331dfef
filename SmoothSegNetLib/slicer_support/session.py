"""What the Slicer logic does with a (possibly hand-corrected) result, without touching Slicer.

The logic exports the segments with :func:`SmoothSegNetLib.mrml.labelmap_from_segmentation`, then
calls these functions: recompute the report, write the export folder, and build the command lines
of the engine sub-commands it runs in a child process (DICOM export, PACS send, model install).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.volume import CTVolume, Geometry

#: Segment ids :func:`SmoothSegNetLib.mrml.import_result` gives lesions: ``lesion_<id in the network's report>``.
LESION_SEGMENT_PREFIX = "lesion_"
#: Segment id of the single tumor segment (import without one segment per lesion).
TUMOR_SEGMENT_ID = "tumor"


@dataclass(frozen=True)
class EditedResult:
    """The result as it is now in the scene, on the CT grid (arrays ``[k, j, i]``).

    Attributes:
        labelmap: uint8, 1 liver, 2 tumor.
        lesions: uint16 instances 1..n (no gaps).
        lesion_ids: lesion id -> segment id.
        edited_lesion_ids: lesions changed by hand since the network result.
    """

    labelmap: np.ndarray
    lesions: np.ndarray
    lesion_ids: dict[int, str]
    edited_lesion_ids: tuple[int, ...]


def carried_confidence(previous_report: dict[str, Any] | None, result: EditedResult) -> dict[int, float]:
    """Network confidence of the lesions that were NOT edited, under their current ids.

    An edited or hand-drawn lesion has no network confidence any more (shown as a dash).
    """
    if not previous_report:
        return {}
    by_original_id = {
        int(lesion["id"]): float(lesion["confidence"])
        for lesion in previous_report.get("lesions", [])
        if lesion.get("confidence") is not None
    }
    carried = {}
    for lesion_id, segment_id in result.lesion_ids.items():
        if lesion_id in result.edited_lesion_ids or not segment_id.startswith(LESION_SEGMENT_PREFIX):
            continue
        original = segment_id[len(LESION_SEGMENT_PREFIX) :]
        if original.isdigit() and int(original) in by_original_id:
            carried[lesion_id] = by_original_id[int(original)]
    return carried


def with_lesions_split(ct: CTVolume, result: EditedResult) -> EditedResult:
    """When the result holds one "Tumor" segment (not one per lesion), split it into lesions again.

    Its connected components become lesions 1..n by decreasing volume (``label_lesions``), as ``segment``
    numbers them; otherwise the result is returned unchanged.
    """
    if TUMOR_SEGMENT_ID not in result.lesion_ids.values():
        return result
    from SmoothSegNetLib.report import label_lesions

    lesions = label_lesions(result.labelmap == 2, ct.geometry)
    count = int(lesions.max()) if lesions.size else 0
    return EditedResult(result.labelmap, lesions, {n: TUMOR_SEGMENT_ID for n in range(1, count + 1)}, ())


def recompute_report(
    ct: CTVolume,
    result: EditedResult,
    previous_report: dict[str, Any] | None,
    manual_axes: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report of the current segments: ``measure`` with carried confidences, models and a note.

    ``manual_axes``: the RECIST lines drawn by hand, by current lesion id (``measure``'s ``manual_axes``).
    """
    from SmoothSegNetLib.report import measure

    tumor_segment_edited = TUMOR_SEGMENT_ID in result.lesion_ids.values() and bool(result.edited_lesion_ids)
    result = with_lesions_split(ct, result)

    models = (previous_report or {}).get("models", [])
    report = measure(
        ct,
        result.labelmap,
        result.lesions,
        confidence=carried_confidence(previous_report, result),
        models=[m for m in models if isinstance(m, dict)],
        edited=_still_edited(previous_report, result),
        manual_axes=manual_axes,
    )
    if tumor_segment_edited:
        report["warnings"].append("the tumor segment was edited by hand after the network result")
    return report


def _still_edited(previous_report: dict[str, Any] | None, result: EditedResult) -> tuple[int, ...]:
    """Lesions edited now, and lesions not touched now whose earlier report already said edited."""
    earlier = {
        int(e["id"]) for e in (previous_report or {}).get("lesions", []) if isinstance(e, dict) and e.get("edited")
    }
    edited = set(result.edited_lesion_ids)
    for lesion_id, segment_id in result.lesion_ids.items():
        original = segment_id[len(LESION_SEGMENT_PREFIX) :] if segment_id.startswith(LESION_SEGMENT_PREFIX) else ""
        if original.isdigit() and int(original) in earlier:
            edited.add(lesion_id)
    return tuple(sorted(edited))


def recompute_report_in_box(
    ct: CTVolume,
    result: EditedResult,
    previous_report: dict[str, Any] | None,
    manual_axes: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """:func:`recompute_report` measured on the labels' bounding box (plus one voxel): the same report, faster.

    Every number is measured on the same voxels (a lesion's face ring included: the box has a one-voxel
    margin, as ``measure`` pads each lesion), positions through the cropped grid's geometry (its origin is the
    box's first voxel), and grid indices (``long_axis_slice_k``) and the ``input`` entry are those of the full
    grid. The live table uses it: on a 512x512x300 CT the liver box is a small part of the grid.
    """
    import dataclasses

    from SmoothSegNetLib.report.measure import _input_entry

    labelled = np.flatnonzero(result.labelmap.any(axis=(1, 2)))
    if labelled.size == 0:
        return recompute_report(ct, result, previous_report, manual_axes)
    bounds = [np.flatnonzero(result.labelmap.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1))]
    box = tuple(slice(max(int(b[0]) - 1, 0), min(int(b[-1]) + 2, n)) for b, n in zip(bounds, ct.array.shape))
    corner_ijk = np.array([b.start for b in box][::-1], dtype=float)
    g = ct.geometry
    geometry = Geometry.create(ct.array[box].shape, g.spacing_mm, g.index_to_lps(corner_ijk), g.direction_array)
    crop = dataclasses.replace(ct, array=ct.array[box], geometry=geometry)
    cropped = dataclasses.replace(result, labelmap=result.labelmap[box], lesions=result.lesions[box])
    report = recompute_report(crop, cropped, previous_report, manual_axes)
    report["input"] = _input_entry(ct)
    for lesion in report["lesions"]:
        if lesion.get("long_axis_slice_k") is not None:
            lesion["long_axis_slice_k"] += box[0].start
    return report


def write_export(
    outdir: Path, ct: CTVolume, result: EditedResult, report: dict[str, Any], *, picture: bool = True
) -> list[Path]:
    """Write segmentation.nrrd, lesions.nrrd, report.json, report.csv (and overview.png) into ``outdir``.

    All files appear together or none (staged); ``outdir`` can then be given to ``export`` for DICOM.
    """
    from SmoothSegNetLib.case_outputs import write_case_outputs
    from SmoothSegNetLib.io.writers import write_labelmap
    from SmoothSegNetLib.outputs import StagedOutputDir

    result = with_lesions_split(ct, result)

    with StagedOutputDir(outdir) as stage:
        write_labelmap(stage.path("segmentation.nrrd"), result.labelmap, ct.geometry)
        write_labelmap(stage.path("lesions.nrrd"), result.lesions, ct.geometry)
        write_case_outputs(stage, ct, result.labelmap, result.lesions, report, overview=picture)
    return stage.committed


def _engine(python_executable: str | None) -> list[str]:
    return [python_executable or sys.executable, "-m", "SmoothSegNetLib"]


def dicom_export_command(
    outdir: Path, dicom_dir: Path, *, per_lesion: bool = True, python_executable: str | None = None
) -> list[str]:
    """``export``: seg.dcm + sr.dcm of the folder :func:`write_export` wrote, against the source series."""
    command = [*_engine(python_executable), "export", str(outdir), "--dicom", str(dicom_dir)]
    return [*command, "--per-lesion-segments"] if per_lesion else command


def send_command(
    outdir: Path, host: str, port: int, called_aet: str, python_executable: str | None = None
) -> list[str]:
    """``send``: C-STORE seg.dcm / sr.dcm of ``outdir`` to a PACS."""
    if not host or not 0 < int(port) < 65536 or not called_aet:
        raise ValueError(
            f"PACS settings incomplete: host {host!r}, port {port!r}, AE title {called_aet!r}; "
            "set them in the module's PACS section"
        )
    return [*_engine(python_executable), "send", str(outdir), "--dicom", f"{host}:{int(port)}", "--aet", called_aet]


def install_model_command(path: Path, python_executable: str | None = None) -> list[str]:
    """``models install``: add a weights file (or a card with its weights beside it) to the registry."""
    return [*_engine(python_executable), "models", "install", str(path)]


def summary_text(report: dict[str, Any]) -> str:
    """One line for the panel: liver volume, lesion count, tumor volume and TLVR."""
    liver = report.get("liver", {}).get("volume_ml")
    burden = report.get("tumor_burden", {})
    tlvr = burden.get("tlvr")
    parts = [
        f"Liver {liver:.1f} ml" if liver is not None else "Liver —",
        f"{burden.get('count', 0)} lesion(s), {burden.get('total_volume_ml', 0.0):.1f} ml",
        f"TLVR {100 * tlvr:.2f} %" if tlvr is not None else "TLVR —",
    ]
    return " · ".join(parts)


def previous_report_from_text(text: str | None) -> dict[str, Any] | None:
    """The report kept on a node attribute, or ``None`` when absent or unreadable."""
    if not text:
        return None
    try:
        report = json.loads(text)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def lesion_centre_ras(report: dict[str, Any], lesion_id: int) -> tuple[float, float, float] | None:
    """RAS position (mm) of a lesion's centroid, to centre the slice views on it."""
    for lesion in report.get("lesions", []):
        if int(lesion["id"]) == lesion_id and lesion.get("centroid_lps_mm") is not None:
            left, posterior, superior = (float(v) for v in lesion["centroid_lps_mm"])
            return (-left, -posterior, superior)
    return None


#: Characters no folder name may hold on Windows (plus the control characters), and '/' on every system.
_FORBIDDEN_IN_FOLDER_NAMES = frozenset('<>:"/\\|?*') | frozenset(chr(c) for c in range(32))
#: Longest volume-name part of an export folder name (Windows paths are limited to 260 characters).
EXPORT_NAME_MAX_CHARS = 100


def export_folder_name(volume_name: str) -> str:
    """``<volume name>-SmoothSegNet``, made one valid folder name on Windows, macOS and Linux.

    Slicer names volumes after the DICOM series description ("6: Abdomen 1/2"): ``<>:"/\\|?*`` and control
    characters become ``_``, leading and trailing spaces and dots go, the name is cut to
    :data:`EXPORT_NAME_MAX_CHARS`; an empty result becomes ``CT``.
    """
    cleaned = "".join("_" if c in _FORBIDDEN_IN_FOLDER_NAMES else c for c in volume_name)
    cleaned = cleaned[:EXPORT_NAME_MAX_CHARS].strip(" .")
    return f"{cleaned or 'CT'}-SmoothSegNet"


def same_grid(a: Geometry, b: Geometry) -> bool:
    """Whether two grids coincide to 1 µm (used before reusing a result on another volume)."""
    return a.same_grid(b, atol=1e-3)


def dicom_folder_from_files(files: Sequence[Path], folder: Path) -> Path:
    """A folder holding (links to) exactly ``files``: a series folder for ``export`` from Slicer's database."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, source in enumerate(files):
        target = folder / f"{n:05d}.dcm"
        try:
            target.symlink_to(Path(source).resolve())
        except OSError:  # no symlinks (Windows without privilege): copy
            import shutil

            shutil.copyfile(source, target)
    return folder
