"""DICOM SR (TID 1500 Measurement Report, highdicom Comprehensive 3D SR) of the report's measurements.

One volumetric measurement group (TID 1411) per segment of the SEG: the liver (volume) and every lesion
(volume, long axis, short axis, maximum 3D diameter, mean and standard deviation of HU), each referencing its
SEG segment, which in turn references the source CT images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from SmoothSegNetLib.dicom_export.common import MANUFACTURER, MODEL_NAME, software_versions
from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.report.codes import measurement_codes

SR_SERIES_NUMBER = 902
#: Lesion measurements written to the SR, in this order (keys of report.json lesions and measurement codes).
LESION_MEASUREMENTS = ("volume_ml", "long_axis_mm", "short_axis_mm", "max_diameter_3d_mm", "mean_hu", "std_hu")


def _concept(code: dict[str, str]) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=code["value"], scheme_designator=code["scheme"], meaning=code["meaning"])


def _measurement(key: str, value: float, table: dict[str, Any]) -> hd.sr.Measurement:
    entry = table[key]
    return hd.sr.Measurement(name=_concept(entry["quantity"]), value=float(value), unit=_concept(entry["unit"]))


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


def _group(
    seg: hd.seg.Segmentation,
    segment_label: str,
    finding: hd.sr.CodedConcept,
    measurements: list[hd.sr.Measurement],
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=segment_label),
        referenced_segment=referenced_segment(seg, _segment_number(seg, segment_label)),
        finding_type=finding,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Liver)],
        measurements=measurements,
    )


def make_sr(seg: hd.seg.Segmentation, source_datasets: Sequence[Dataset], report: dict[str, Any]) -> Dataset:
    """A Comprehensive 3D SR holding the report's measurements; ``seg`` must have one segment per lesion."""
    table = measurement_codes()
    groups = []
    if report["liver"]["volume_ml"] > 0:
        groups.append(
            _group(seg, "Liver", codes.SCT.Liver, [_measurement("volume_ml", report["liver"]["volume_ml"], table)])
        )
    for lesion in report["lesions"]:
        label = f"Lesion {lesion['id']}"
        values = [_measurement(key, lesion[key], table) for key in LESION_MEASUREMENTS]
        groups.append(_group(seg, label, codes.SCT.Neoplasm, values))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=MODEL_NAME, manufacturer_name=MANUFACTURER, model_name=software_versions()
        ),
    )
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[seg, *source_datasets],
        content=content[0],
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="SmoothSegNet measurements",
    )
