"""DICOM-SEG (highdicom) of a labelmap on a CT read from a DICOM series."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from SmoothSegNetLib.dicom_export.common import (
    MANUFACTURER,
    MODEL_NAME,
    check_slices_match_grid,
    model_summary,
    read_source_datasets,
    require_dicom_source,
    software_versions,
    to_source_order,
)
from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.terminology import Code, SegmentSpec, lesion_segments, output_segments
from SmoothSegNetLib.volume import CTVolume

SEG_SERIES_NUMBER = 901


def _code(code: Code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning)


def _description(
    number: int, spec: SegmentSpec, task: str, models: Sequence[dict[str, Any]], tracking_id: str
) -> hd.seg.SegmentDescription:
    summary = model_summary(models, task)
    if summary is None:
        # No model made it (a labelmap drawn or corrected by hand, measured with `smoothsegnet report`).
        algorithm: dict[str, Any] = {"algorithm_type": hd.seg.SegmentAlgorithmTypeValues.MANUAL}
    else:
        name, version, parameters = summary
        algorithm = {
            "algorithm_type": hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            "algorithm_identification": hd.AlgorithmIdentificationSequence(
                name=name, family=codes.cid7162.ArtificialIntelligence, version=version, parameters=parameters
            ),
        }
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=spec.name,
        segmented_property_category=_code(spec.category),
        segmented_property_type=_code(spec.type),
        anatomic_regions=[_code(spec.anatomic_region)] if spec.anatomic_region else None,
        tracking_uid=generate_uid(),
        tracking_id=tracking_id,
        display_color=hd.color.CIELabColor.from_rgb(*spec.color_rgb),
        **algorithm,
    )


def segment_array(
    labelmap: np.ndarray, lesions: np.ndarray, per_lesion: bool
) -> tuple[np.ndarray, list[tuple[int, int | None]]]:
    """Segment numbers per voxel [k, j, i] and the segments present: (segment number, lesion id or None).

    Segment 1 is the liver (label 1); then either segment 2 = all tumor (label 2), or segment ``1 + n`` =
    lesion ``n`` of the lesion map.
    """
    numbers = np.zeros(labelmap.shape, dtype=np.uint16)
    present: list[tuple[int, int | None]] = []
    if np.any(labelmap == 1):
        numbers[labelmap == 1] = 1
        present.append((1, None))
    if per_lesion:
        count = int(lesions.max()) if lesions.size else 0
        for n in range(1, count + 1):
            numbers[lesions == n] = 1 + n
            present.append((1 + n, n))
        if np.any((labelmap == 2) & (lesions == 0)):
            raise ExportError("some tumor voxels belong to no lesion: remake the lesion map from the labelmap")
    elif np.any(labelmap == 2):
        numbers[labelmap == 2] = 2
        present.append((2, 0))
    return numbers, present


def make_seg(
    ct: CTVolume,
    labelmap: np.ndarray,
    lesions: np.ndarray,
    models: Sequence[dict[str, Any]],
    *,
    per_lesion_segments: bool = False,
    source_datasets: Sequence[Dataset] | None = None,
) -> hd.seg.Segmentation:
    """A BINARY DICOM Segmentation whose frames are the source slices (matched by position, in k order).

    Raises:
        ExportError: no DICOM source, the volume is not on the source slices, or nothing to export.
    """
    source = require_dicom_source(ct, "DICOM-SEG")
    check_slices_match_grid(ct, source)
    datasets = list(source_datasets) if source_datasets is not None else read_source_datasets(source)
    numbers, present = segment_array(labelmap, lesions, per_lesion_segments)
    if not present:
        raise ExportError("the labelmap is empty (no liver, no tumor): there is nothing to put in a DICOM-SEG")
    liver_spec, tumor_spec = output_segments()
    lesion_specs = lesion_segments(int(lesions.max()) if per_lesion_segments and lesions.size else 0)
    descriptions = []
    for number, lesion_id in present:
        if lesion_id is None:
            descriptions.append(_description(number, liver_spec, "liver", models, "Liver"))
        elif lesion_id == 0:
            descriptions.append(_description(number, tumor_spec, "tumor", models, "Tumor"))
        else:
            spec = lesion_specs[lesion_id - 1]
            descriptions.append(_description(number, spec, "tumor", models, spec.name))
    # highdicom wants consecutive segment numbers from 1 that match the descriptions.
    if [d.SegmentNumber for d in descriptions] != list(range(1, len(descriptions) + 1)):
        remap = np.zeros(int(numbers.max()) + 1, dtype=np.uint16)
        for new, d in enumerate(descriptions, start=1):
            remap[d.SegmentNumber] = new
            d.SegmentNumber = new
        numbers = remap[numbers]
    return hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=to_source_order(source, numbers),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=software_versions(),
        device_serial_number="0",
        content_label="SMOOTHSEGNET",
        content_description="Liver and liver tumor segmentation",
        series_description="SmoothSegNet segmentation",
        omit_empty_frames=True,
    )
