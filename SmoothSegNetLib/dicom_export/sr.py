"""DICOM SR (TID 1500 Measurement Report, highdicom Comprehensive 3D SR) of the report's measurements.

Measurement groups, each with a tracking identifier that names it:

- ``Liver parenchyma`` and ``Liver including tumors`` (TID 1411, volumetric): the two liver volumes of
  report.json (``liver.parenchyma_volume_ml``, ``liver.volume_ml``), each referencing the SEG segment whose
  voxels give exactly that volume (``Liver``, ``Liver including tumors``).
- ``Lesion n`` (TID 1411): volume, maximum 3D diameter, HU statistics (Attenuation Coefficient with derivation
  Mean / Standard Deviation), referencing the lesion's segment; the segmentation method as a qualitative
  evaluation (Artificial Intelligence, plus Manual Processing when the lesion was edited by hand).
- ``Lesion n`` again (TID 1501, same tracking UID): the RECIST 1.1 long and short axes, each inferred from a
  SCOORD3D polyline of its end points (taken from the report's lesion entry, not measured again here), with
  its Measurement Method (CID 7230 Automation of Measurement): Automated, or Manual for a line drawn by hand.
- ``Tumor burden`` (TID 1501): total tumor volume and TLVR (a Volume Ratio, unit 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from SmoothSegNetLib.dicom_export.common import CHARACTER_SET, MANUFACTURER, MODEL_NAME, software_versions
from SmoothSegNetLib.dicom_export.seg import WHOLE_LIVER_LABEL
from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.report.codes import measurement_codes, sr_concepts

SR_SERIES_NUMBER = 902
#: A measurement group of the report: TID 1411 (volumetric, references a SEG segment) or TID 1501.
Group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations
#: Lesion measurements of the volumetric group, in this order (keys of report.json lesions and measurement codes).
LESION_MEASUREMENTS = ("volume_ml", "max_diameter_3d_mm", "mean_hu", "std_hu")
#: RECIST axes: (measurement key, key of its end points in the lesion entry).
RECIST_AXES = (
    ("long_axis_mm", "long_axis_ends_lps_mm", "long_axis_source"),
    ("short_axis_mm", "short_axis_ends_lps_mm", "short_axis_source"),
)


def _concept(code: dict[str, str]) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=code["value"], scheme_designator=code["scheme"], meaning=code["meaning"])


def _measurement(key: str, value: float, table: dict[str, Any], **extra: Any) -> hd.sr.Measurement:
    entry = table[key]
    derivation = _concept(entry["derivation"]) if "derivation" in entry else None
    return hd.sr.Measurement(
        name=_concept(entry["quantity"]),
        value=float(value),
        unit=_concept(entry["unit"]),
        derivation=derivation,
        **extra,
    )


def _segment_number(seg: hd.seg.Segmentation, label: str) -> int:
    for number in seg.get_segment_numbers():
        if seg.get_segment_description(number).segment_label == label:
            return int(number)
    raise ExportError(f"the DICOM-SEG has no segment labelled {label!r}: remake seg.dcm with one segment per lesion")


def referenced_segment(seg: hd.seg.Segmentation, number: int) -> hd.sr.ReferencedSegment:
    """The SEG segment ``number`` and the source images of its frames.

    (highdicom's ``ReferencedSegment.from_segmentation`` expects the segment number in every frame's
    functional groups; a SEG with one segment keeps it in the shared groups instead.)
    """
    shared = seg.SharedFunctionalGroupsSequence[0]
    sources: dict[str, hd.sr.SourceImageForSegmentation] = {}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        ident = frame.get("SegmentIdentificationSequence") or shared.get("SegmentIdentificationSequence")
        if ident is None or int(ident[0].ReferencedSegmentNumber) != number:
            continue
        for derivation in frame.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                uid = str(source.ReferencedSOPInstanceUID)
                sources.setdefault(uid, hd.sr.SourceImageForSegmentation(str(source.ReferencedSOPClassUID), uid))
    if not sources:
        raise ExportError(f"segment {number} of the DICOM-SEG has no frame that references a source image")
    return hd.sr.ReferencedSegment(
        sop_class_uid=str(seg.SOPClassUID),
        sop_instance_uid=str(seg.SOPInstanceUID),
        segment_number=number,
        source_images=list(sources.values()),
    )


def _segmentation_method(models: bool, edited: bool) -> list[hd.sr.QualitativeEvaluation]:
    """How a segment was made: by the network, corrected by hand, or drawn by hand (no model)."""
    concepts = sr_concepts()
    values = (["artificial_intelligence"] if models else []) + (["manual_processing"] if edited or not models else [])
    name = _concept(concepts["segmentation_method"])
    return [hd.sr.QualitativeEvaluation(name=name, value=_concept(concepts[v])) for v in values]


def _volumetric(
    seg: hd.seg.Segmentation,
    tracking: hd.sr.TrackingIdentifier,
    segment_label: str,
    finding: hd.sr.CodedConcept,
    measurements: list[hd.sr.Measurement],
    evaluations: list[hd.sr.QualitativeEvaluation] | None = None,
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        referenced_segment=referenced_segment(seg, _segment_number(seg, segment_label)),
        finding_type=finding,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Liver)],
        measurements=measurements,
        qualitative_evaluations=evaluations or None,
    )


def _axis_coordinates(ends: Any, frame_of_reference_uid: str) -> list[hd.sr.CoordinatesForMeasurement3D]:
    """SCOORD3D polylines of an axis: ``ends`` is [[x, y, z], [x, y, z]] (LPS mm), or one such pair per piece."""
    points = np.asarray(ends, dtype=float)
    pairs = points[None] if points.ndim == 2 else points
    if pairs.ndim != 3 or pairs.shape[1:] != (2, 3):
        raise ExportError(f"axis end points must be pairs of LPS points (mm), got an array of shape {points.shape}")
    return [
        hd.sr.CoordinatesForMeasurement3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
            graphic_data=pair,
            frame_of_reference_uid=frame_of_reference_uid,
        )
        for pair in pairs
    ]


def _lesion_groups(
    seg: hd.seg.Segmentation, lesion: dict[str, Any], models: bool, table: dict[str, Any]
) -> list[Group]:
    label = f"Lesion {lesion['id']}"
    tracking_uid = generate_uid()
    volumetric = _volumetric(
        seg,
        hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=label),
        label,
        codes.SCT.Neoplasm,
        [_measurement(key, lesion[key], table) for key in LESION_MEASUREMENTS],
        _segmentation_method(models, bool(lesion.get("edited"))),
    )
    frame_of_reference = str(seg.FrameOfReferenceUID)
    concepts = sr_concepts()
    axes = [
        _measurement(
            key,
            lesion[key],
            table,
            referenced_coordinates=_axis_coordinates(lesion[ends], frame_of_reference),
            method=_concept(concepts["axis_manual" if lesion.get(source) == "manual" else "axis_automated"]),
        )
        for key, ends, source in RECIST_AXES
    ]
    recist = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=label),
        finding_type=codes.SCT.Neoplasm,
        method=_concept(sr_concepts()["recist"]),
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Liver)],
        measurements=axes,
    )
    return [volumetric, recist]


def _liver_groups(seg: hd.seg.Segmentation, report: dict[str, Any], table: dict[str, Any]) -> list[Group]:
    """One group per liver quantity, referencing the segment whose voxels give exactly that volume."""
    groups: list[Group] = []
    liver = report["liver"]
    for key, value, segment_label in (
        ("liver_parenchyma_volume_ml", liver["parenchyma_volume_ml"], "Liver"),
        ("liver_volume_ml", liver["volume_ml"], WHOLE_LIVER_LABEL),
    ):
        if value > 0:
            tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=table[key]["name"])
            groups.append(_volumetric(seg, tracking, segment_label, codes.SCT.Liver, [_measurement(key, value, table)]))
    return groups


def _burden_group(report: dict[str, Any], table: dict[str, Any]) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    burden = report["tumor_burden"]
    measurements = [_measurement("total_volume_ml", burden["total_volume_ml"], table)]
    if burden["tlvr"] is not None:
        measurements.append(_measurement("tlvr", burden["tlvr"], table))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Tumor burden"),
        finding_type=codes.SCT.Neoplasm,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Liver)],
        measurements=measurements,
    )


def make_sr(seg: hd.seg.Segmentation, source_datasets: Sequence[Dataset], report: dict[str, Any]) -> Dataset:
    """A Comprehensive 3D SR holding the report's measurements; ``seg`` must have one segment per lesion."""
    table = measurement_codes()
    models = bool(report.get("models"))
    groups: list[Group] = _liver_groups(seg, report, table)
    for lesion in report["lesions"]:
        groups += _lesion_groups(seg, lesion, models, table)
    groups.append(_burden_group(report, table))
    return measurement_sr(seg, source_datasets, groups, SR_SERIES_NUMBER, "SmoothSegNet measurements")


def measurement_sr(
    seg: hd.seg.Segmentation,
    source_datasets: Sequence[Dataset],
    groups: Sequence[Any],
    series_number: int,
    series_description: str,
) -> Dataset:
    """A Comprehensive 3D SR (TID 1500, UTF-8) of ``groups``, observed by this software as a device, with ``seg``
    and the source images as evidence (the case's SR and the follow-up SR alike)."""
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=MODEL_NAME, manufacturer_name=MANUFACTURER, model_name=software_versions()
        ),
    )
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=list(groups),
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[seg, *source_datasets],
        content=content[0],
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        specific_character_set=CHARACTER_SET,
        is_complete=True,
        series_description=series_description,
    )
