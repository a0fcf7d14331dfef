"""Adding a lesion to a ``segment`` output folder: every file re-made from the new labelmap, all or nothing.

The folder's CT is the one ``report.json`` names (``input.source``) unless another path is given; its
``segmentation.nrrd`` and ``lesions.nrrd`` must lie on that CT's grid. The new lesion gets the next id; the
other lesions keep their ids, confidences and marks. ``segmentation.nrrd``, ``lesions.nrrd``,
``segmentation.seg.nrrd``, ``report.json``, ``report.csv``, ``overview.png`` (and ``candidates.nrrd``,
``seg.dcm`` / ``sr.dcm`` if the folder has them; the run's lesion floors are stated again) are written to a
staging folder and renamed into place only when all are complete; every check (and the search for the
lesion) happens before anything is written, so a refused point leaves the folder byte for byte as it was.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.case_outputs import write_case_outputs
from SmoothSegNetLib.correction.add_lesion import AddedLesion, PointSegmenter
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.outputs import StagedOutputDir
from SmoothSegNetLib.report.candidates import Candidates, carry_candidates, thresholds_from_report
from SmoothSegNetLib.report.manual_axes import manual_axes_of_report
from SmoothSegNetLib.volume import CTVolume

#: The per-lesion marks carried from the old report to the new one (lesion ids do not change).
CARRIED_FIELDS = ("source", "added_at_lps_mm")
#: Inference warnings that an added lesion makes untrue.
STALE_WARNING_PREFIXES = ("no tumor found in the liver",)


@dataclass(frozen=True)
class CaseFolder:
    """What ``add-lesion`` reads from an output folder."""

    outdir: Path
    ct: CTVolume
    ct_path: Path
    labelmap: np.ndarray
    lesions: np.ndarray
    report: dict[str, Any]
    lesions_kept: bool


def read_case_folder(outdir: str | Path, image: str | Path | None = None) -> CaseFolder:
    """Read an output folder of ``segment`` (and its CT), checking everything ``add-lesion`` relies on."""
    from SmoothSegNetLib.io import read_volume
    from SmoothSegNetLib.report import label_lesions
    from SmoothSegNetLib.report.inputs import read_labelmap, require_same_grid
    from SmoothSegNetLib.report.measure import TUMOR_LABEL, check_labelmap

    folder = Path(outdir)
    if not folder.is_dir():
        raise InputError(f"OUTDIR {folder} is not a folder: give a folder written by 'smoothsegnet segment'")
    report = _read_report(folder / "report.json")
    seg_path = folder / "segmentation.nrrd"
    if not seg_path.is_file():
        raise InputError(f"OUTDIR {folder} holds no segmentation.nrrd: give a folder written by 'smoothsegnet segment'")
    source = image if image is not None else report.get("input", {}).get("source")
    if not source or not Path(str(source)).exists():
        raise InputError(
            f"the CT of {folder} ({source!r} in report.json input.source) cannot be found: give it with --image CT"
        )
    ct = read_volume(str(source))
    labels, geometry = read_labelmap(seg_path, "segmentation.nrrd")
    require_same_grid(geometry, ct, "segmentation.nrrd")
    labels = check_labelmap(labels, ct.geometry, "segmentation.nrrd").astype(np.uint8)
    tumor = labels == TUMOR_LABEL
    lesions, kept = None, False
    lesion_path = folder / "lesions.nrrd"
    if lesion_path.is_file():
        stored, lesion_geometry = read_labelmap(lesion_path, "lesions.nrrd")
        # The stored numbering (and with it the report's per-lesion marks) holds only if it still covers exactly
        # the tumor: after a hand correction of segmentation.nrrd the lesions are found again.
        if lesion_geometry.same_grid(ct.geometry, atol=1e-3) and np.array_equal(stored > 0, tumor):
            lesions, kept = stored.astype(np.uint16), True
    if lesions is None:
        lesions = label_lesions(tumor, ct.geometry)
    return CaseFolder(folder, ct, Path(str(source)), labels, lesions, report, kept)


def _read_report(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path.parent} holds no report.json: give a folder written by 'smoothsegnet segment'")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}): run segment (or report) again") from exc
    if not isinstance(report, dict) or not isinstance(report.get("lesions"), list):
        raise InputError(f"{path} is not a SmoothSegNet report (no lesions list): run segment (or report) again")
    return report


def tumor_model_of(report: dict[str, Any]) -> tuple[str, str | None]:
    """``(id, sha256)`` of the tumor model that made the report, else InputError."""
    for model in report.get("models", []):
        if isinstance(model, dict) and model.get("task") == "tumor" and "id" in model:
            return str(model["id"]), model.get("sha256")
    raise InputError(
        "report.json names no tumor model (segmented with --liver-only, or made by 'report'): "
        "give the tumor model with --tumor-model"
    )


def updated_report(case: CaseFolder, added: AddedLesion, labels: np.ndarray, lesions: np.ndarray) -> dict[str, Any]:
    """The folder's report measured again with the added lesion, its marks and the other lesions' carried."""
    from SmoothSegNetLib.report import measure

    entries = [e for e in case.report["lesions"] if isinstance(e, dict) and isinstance(e.get("id"), int)]
    old: dict[int, dict[str, Any]] = {int(e["id"]): e for e in entries} if case.lesions_kept else {}
    confidence = {i: float(e["confidence"]) for i, e in old.items() if e.get("confidence") is not None}
    confidence[added.lesion_id] = added.confidence
    warnings = [
        w for w in case.report.get("warnings", []) if isinstance(w, str) and not w.startswith(STALE_WARNING_PREFIXES)
    ]
    edited = [i for i, e in old.items() if e.get("edited")] + [added.lesion_id]  # a click is a hand correction
    report = measure(
        case.ct,
        labels,
        lesions,
        confidence=confidence,
        models=case.report.get("models", []),
        warnings=warnings,
        edited=edited,
        thresholds=thresholds_from_report(case.report),
        candidates=_carried_candidates(case, labels),
        # Hand-drawn RECIST lines stay on their lesion (dropped with a warning if it is no longer under them).
        manual_axes=manual_axes_of_report(case.report),
    )
    for entry in report["lesions"]:
        previous = old.get(entry["id"], {})
        entry.update({k: previous[k] for k in CARRIED_FIELDS if k in previous})
        if entry["id"] == added.lesion_id:
            entry["source"] = "added_at_point"
            entry["added_at_lps_mm"] = [round(float(v), 3) for v in added.point_lps_mm]
    report["corrections"] = [*case.report.get("corrections", []), _correction(added)]
    return report


def _carried_candidates(case: CaseFolder, labels: np.ndarray) -> Candidates | None:
    """The folder's candidates (candidates.nrrd), minus any the added lesion took in."""
    from SmoothSegNetLib.report.inputs import read_labelmap
    from SmoothSegNetLib.report.measure import TUMOR_LABEL

    path = case.outdir / "candidates.nrrd"
    if not path.is_file():
        return None
    stored, geometry = read_labelmap(path, "candidates.nrrd")
    if not geometry.same_grid(case.ct.geometry, atol=1e-3):
        return None
    return carry_candidates(case.report, stored.astype(np.uint16), labels == TUMOR_LABEL)


def _correction(added: AddedLesion) -> dict[str, Any]:
    return {
        "action": "add_lesion",
        "lesion_id": added.lesion_id,
        "at_lps_mm": [round(float(v), 3) for v in added.point_lps_mm],
        "method": added.method,
        "threshold": added.threshold,
        "network_spacing_mm": added.fine_network_spacing_mm,
        "searched_from_lps_mm": list(added.searched_from_lps_mm) if added.searched_from_lps_mm else None,
        "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_case_folder(case: CaseFolder, labels: np.ndarray, lesions: np.ndarray, report: dict[str, Any]) -> None:
    """Replace the folder's outputs (staged, renamed into place when all are written)."""
    from SmoothSegNetLib.io.writers import write_labelmap, write_seg_nrrd
    from SmoothSegNetLib.terminology import output_segments

    geometry = case.ct.geometry
    dicom_seg = (case.outdir / "seg.dcm").is_file()
    dicom_sr = (case.outdir / "sr.dcm").is_file()
    with StagedOutputDir(case.outdir, protect=[case.ct_path]) as stage:
        write_labelmap(stage.path("segmentation.nrrd"), labels, geometry)
        write_labelmap(stage.path("lesions.nrrd"), lesions, geometry)
        write_seg_nrrd(stage.path("segmentation.seg.nrrd"), labels, geometry, output_segments())
        write_case_outputs(stage, case.ct, labels, lesions, report, dicom_seg=dicom_seg, dicom_sr=dicom_sr)
        carried = _carried_candidates(case, labels)  # numbered as report["candidates"]
        if carried is not None:
            write_labelmap(stage.path("candidates.nrrd"), carried.instances, geometry)


def add_lesion_to_folder(
    outdir: str | Path,
    point_lps_mm: tuple[float, float, float],
    *,
    image: str | Path | None = None,
    tumor_model: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> tuple[AddedLesion, dict[str, Any]]:
    """Add the lesion at ``point_lps_mm`` to the folder ``outdir`` and re-measure it; returns it and the report.

    Raises:
        InputError: a bad folder, a CT that does not match, or a point where no lesion can be added (outside
            the image or the liver, on a lesion, nothing lesion-like); the folder is then unchanged.
    """
    case = read_case_folder(outdir, image)
    model_id, sha256 = tumor_model_of(case.report) if tumor_model is None else (tumor_model, None)
    segmenter = PointSegmenter(model_id, sha256=sha256, device=device, threads=threads)
    added = segmenter(case.ct, case.labelmap, case.lesions, point_lps_mm)
    labels, lesions = added.apply(case.labelmap, case.lesions)
    report = updated_report(case, added, labels, lesions)
    write_case_folder(case, labels, lesions, report)
    return added, report
