"""DICOM-SEG (highdicom) of a labelmap on a CT read from a DICOM series.

A BINARY SEG whose segments may overlap: ``Liver`` (label 1), ``Tumor`` or ``Lesion n``, and ``Liver including
tumors`` (labels 1 and 2), so that each liver volume of the report has a segment whose voxels give exactly it.
Segments are passed to highdicom as one binary plane each, on the slices that hold labels only: memory is
(slices with labels) x rows x columns x (segments) bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from SmoothSegNetLib.dicom_export.common import (
    CHARACTER_SET,
    MANUFACTURER,
    MODEL_NAME,
    check_slices_match_grid,
    is_multiframe,
    model_summary,
    read_source_datasets,
    require_dicom_source,
    software_versions,
    to_source_order,
)
from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.report.measure import LIVER_LABEL, TUMOR_LABEL
from SmoothSegNetLib.terminology import Code, SegmentSpec, lesion_segments, output_segments
from SmoothSegNetLib.volume import CTVolume

SEG_SERIES_NUMBER = 901


def _code(code: Code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning)


#: Label of the SEG segment holding the whole liver (labels 1 and 2): the volume report.json calls liver.volume_ml.
WHOLE_LIVER_LABEL = "Liver including tumors"


@dataclass(frozen=True)
class PlannedSegment:
    """One SEG segment: its label (also the SR's tracking identifier), codes, maker and the labels it holds.

    Attributes:
        label: SegmentLabel, e.g. ``Liver``, ``Lesion 2``, ``Liver including tumors``.
        spec: codes and colour from the label table.
        task: which model made it (``liver`` / ``tumor``).
        labels: labelmap values the segment holds (ignored when ``lesion_id`` is set).
        lesion_id: the lesion of the lesion map it holds, for one segment per lesion.
        edited: changed by hand after the network result (SEMIAUTOMATIC, the algorithm still named).
    """

    label: str
    spec: SegmentSpec
    task: str
    labels: tuple[int, ...] = ()
    lesion_id: int | None = None
    edited: bool = False

    def mask(self, labelmap: np.ndarray, lesions: np.ndarray) -> np.ndarray:
        """The segment's voxels (same shape as the inputs)."""
        return lesions == self.lesion_id if self.lesion_id is not None else np.isin(labelmap, self.labels)


def _description(number: int, planned: PlannedSegment, models: Sequence[dict[str, Any]]) -> hd.seg.SegmentDescription:
    summary = model_summary(models, planned.task)
    if summary is None:
        # No model made it (a labelmap drawn or corrected by hand, measured with `smoothsegnet report`).
        algorithm: dict[str, Any] = {"algorithm_type": hd.seg.SegmentAlgorithmTypeValues.MANUAL}
    else:
        name, version, parameters = summary
        kind = hd.seg.SegmentAlgorithmTypeValues
        algorithm = {
            # A network result corrected by hand: semi-automatic, and the network is still named.
            "algorithm_type": kind.SEMIAUTOMATIC if planned.edited else kind.AUTOMATIC,
            "algorithm_identification": hd.AlgorithmIdentificationSequence(
                name=name, family=codes.cid7162.ArtificialIntelligence, version=version, parameters=parameters
            ),
        }
    spec = planned.spec
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=planned.label,
        segmented_property_category=_code(spec.category),
        segmented_property_type=_code(spec.type),
        anatomic_regions=[_code(spec.anatomic_region)] if spec.anatomic_region else None,
        tracking_uid=generate_uid(),
        tracking_id=planned.label,
        display_color=hd.color.CIELabColor.from_rgb(*spec.color_rgb),
        **algorithm,
    )


def plan_segments(
    labelmap: np.ndarray, lesions: np.ndarray, report: dict[str, Any], per_lesion: bool
) -> list[PlannedSegment]:
    """The non-empty segments, in order: ``Liver`` (label 1), ``Tumor`` (label 2) or ``Lesion n`` (lesion n of
    the lesion map), then ``Liver including tumors`` (labels 1 and 2; a BINARY SEG lets it overlap the others).

    Each liver quantity of the report has a segment whose voxels give exactly that volume:
    ``liver.parenchyma_volume_ml`` is ``Liver``, ``liver.volume_ml`` is ``Liver including tumors``.
    """
    liver_spec, tumor_spec = output_segments()
    edited = {int(e["id"]) for e in report.get("lesions", []) if e.get("edited")}
    liver_edited = bool(report.get("liver", {}).get("edited"))
    planned: list[PlannedSegment] = []
    if np.any(labelmap == LIVER_LABEL):
        planned.append(PlannedSegment("Liver", liver_spec, "liver", (LIVER_LABEL,), edited=liver_edited))
    if per_lesion:
        if np.any((labelmap == TUMOR_LABEL) & (lesions == 0)):
            raise ExportError("some tumor voxels belong to no lesion: remake the lesion map from the labelmap")
        count = int(lesions.max()) if lesions.size else 0
        for n, spec in enumerate(lesion_segments(count), start=1):
            planned.append(PlannedSegment(spec.name, spec, "tumor", lesion_id=n, edited=n in edited))
    elif np.any(labelmap == TUMOR_LABEL):
        planned.append(PlannedSegment(tumor_spec.name, tumor_spec, "tumor", (TUMOR_LABEL,), edited=bool(edited)))
    if planned:
        whole = PlannedSegment(WHOLE_LIVER_LABEL, liver_spec, "liver", (LIVER_LABEL, TUMOR_LABEL), edited=liver_edited)
        planned.append(whole)
    return planned


def _slab(labelmap: np.ndarray) -> slice:
    """The slices (k) that hold any label: only they can hold SEG frames."""
    ks = np.flatnonzero(labelmap.reshape(labelmap.shape[0], -1).any(axis=1))
    return slice(int(ks[0]), int(ks[-1]) + 1)


def make_seg(
    ct: CTVolume,
    labelmap: np.ndarray,
    lesions: np.ndarray,
    report: dict[str, Any],
    *,
    per_lesion_segments: bool = False,
    source_datasets: Sequence[Dataset] | None = None,
) -> hd.seg.Segmentation:
    """A BINARY DICOM Segmentation whose frames are the source slices (matched by position, in k order).

    Args:
        report: the case's report (``models``; ``edited`` flags of lesions and liver).

    Raises:
        ExportError: no DICOM source, the volume is not on the source slices, or nothing to export.
    """
    source = require_dicom_source(ct, "DICOM-SEG")
    check_slices_match_grid(ct, source)
    datasets = list(source_datasets) if source_datasets is not None else read_source_datasets(source)
    planned = plan_segments(labelmap, lesions, report, per_lesion_segments)
    if not planned:
        raise ExportError("the labelmap is empty (no liver, no tumor): there is nothing to put in a DICOM-SEG")
    # Segments overlap (the whole liver holds the others), so highdicom gets one binary plane per segment
    # [k, j, i, segment], only on the slices that hold labels (empty frames are omitted anyway).
    # An Enhanced source keeps every frame: highdicom matches the planes to its frames by index.
    multiframe = is_multiframe(source)
    slab = slice(None) if multiframe else _slab(labelmap)
    masks = np.zeros((*labelmap[slab].shape, len(planned)), dtype=bool)
    for index, segment in enumerate(planned):
        masks[..., index] = segment.mask(labelmap[slab], lesions[slab])
    models = report.get("models", [])
    return hd.seg.Segmentation(
        source_images=datasets if multiframe else datasets[slab],
        pixel_array=to_source_order(source, masks),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description(n, segment, models) for n, segment in enumerate(planned, start=1)],
        series_instance_uid=generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        specific_character_set=CHARACTER_SET,
        manufacturer_model_name=MODEL_NAME,
        software_versions=software_versions(),
        device_serial_number="0",
        content_label="SMOOTHSEGNET",
        content_description="Liver and liver tumor segmentation",
        series_description="SmoothSegNet segmentation",
        omit_empty_frames=True,
    )
