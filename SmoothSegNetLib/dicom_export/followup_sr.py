"""The follow-up DICOM SR (TID 1500): a visit's lesion measurements, tracked with the baseline's UIDs.

Each lesion of the follow-up gets a volumetric measurement group (TID 1411) referencing its segment of the
follow-up's ``seg.dcm`` (one segment per lesion, as ``report --dicom-sr`` writes it). A lesion matched to a
baseline lesion reuses that lesion's Tracking Unique Identifier from the baseline's ``sr.dcm``, so a viewer
links the two measurements; a new lesion gets a new UID. Each RECIST 1.1 target lesion carries the visit's
response as a qualitative evaluation (DCM 112048 "Current Response" = Target Lesion CR/PR/SD/PD, DCM
112041-112044); an NE response is not coded (there is no such DCM code).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from SmoothSegNetLib.dicom_export.sr import (
    LESION_MEASUREMENTS,
    _measurement,
    _segment_number,
    measurement_sr,
    referenced_segment,
)
from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.report.codes import measurement_codes

FOLLOWUP_SR_SERIES_NUMBER = 903
RESPONSE_CODES = {
    "CR": ("112041", "Target Lesion Complete Response"),
    "PR": ("112042", "Target Lesion Partial Response"),
    "PD": ("112043", "Target Lesion Progressive Disease"),
    "SD": ("112044", "Target Lesion Stable Disease"),
}


def baseline_tracking_uids(sr_path: Path) -> dict[int, str]:
    """Baseline lesion id -> Tracking Unique Identifier, read from the baseline's ``sr.dcm``.

    Raises:
        ExportError: the file is missing or not a SmoothSegNet measurement report.
    """
    if not sr_path.is_file():
        raise ExportError(f"--dicom-sr needs the baseline's sr.dcm ({sr_path}): run the baseline with --dicom-sr")
    try:
        sr = hd.sr.srread(str(sr_path))
        groups = sr.content.get_volumetric_roi_measurement_groups()  # type: ignore[attr-defined]
    except (ValueError, AttributeError, KeyError) as exc:
        raise ExportError(f"cannot read the measurement groups of {sr_path}: {exc}") from exc
    out: dict[int, str] = {}
    for group in groups:
        identifier = str(group.tracking_identifier)
        if identifier.startswith("Lesion "):
            out[int(identifier.split()[1])] = str(group.tracking_uid)
    return out


def _response(code: str) -> hd.sr.QualitativeEvaluation:
    value, meaning = RESPONSE_CODES[code]
    return hd.sr.QualitativeEvaluation(
        name=hd.sr.CodedConcept("112048", "DCM", "Current Response"),
        value=hd.sr.CodedConcept(value, "DCM", meaning),
    )


def make_followup_sr(
    seg: hd.seg.Segmentation,
    source_datasets: Sequence[Dataset],
    report: dict[str, Any],
    tracking: dict[int, str],
    targets: dict[int, str],
) -> Dataset:
    """The follow-up SR.

    Args:
        seg: the follow-up's SEG (one segment per lesion, labelled ``Lesion k``).
        source_datasets: the follow-up CT slices.
        report: the follow-up's report.json.
        tracking: follow-up lesion id -> baseline Tracking UID (matched lesions only).
        targets: follow-up lesion id -> RECIST 1.1 response of the visit (target lesions only).
    """
    table = measurement_codes()
    groups = []
    for lesion in report["lesions"]:
        label = f"Lesion {lesion['id']}"
        evaluations = [_response(targets[lesion["id"]])] if targets.get(lesion["id"]) in RESPONSE_CODES else None
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=tracking.get(lesion["id"], generate_uid()), identifier=label
                ),
                referenced_segment=referenced_segment(seg, _segment_number(seg, label)),
                finding_type=codes.SCT.Neoplasm,
                finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Liver)],
                measurements=[_measurement(key, lesion[key], table) for key in LESION_MEASUREMENTS],
                qualitative_evaluations=evaluations,
            )
        )
    return measurement_sr(
        seg, source_datasets, groups, FOLLOWUP_SR_SERIES_NUMBER, "SmoothSegNet follow-up measurements"
    )


def write_followup_sr(path: Path, visit_folder: Path, ct: Any, report: dict, tracking: dict, targets: dict) -> None:
    """Write the SR of one follow-up visit (its folder must hold seg.dcm with one segment per lesion)."""
    from SmoothSegNetLib.dicom_export.common import read_source_datasets, require_dicom_source

    source = require_dicom_source(ct, "the follow-up DICOM SR")
    seg_path = visit_folder / "seg.dcm"
    if not seg_path.is_file():
        raise ExportError(f"--dicom-sr needs {seg_path}: run that visit with --dicom-sr (one segment per lesion)")
    seg = hd.seg.segread(str(seg_path))
    make_followup_sr(seg, read_source_datasets(source), report, tracking, targets).save_as(
        str(path), enforce_file_format=True
    )
