"""Row actions of the lesion table: RECIST lines as markups, manual axes, delete a lesion.

Everything here works on MRML nodes only (no Qt), so it runs in Slicer and on slicer-core in the tests.
The live table (:mod:`SmoothSegNetSlicerLib.live`) re-measures after each of these changes: deleting a
lesion removes its segment (SegmentRemoved), moving a RECIST end point writes the lesion segment's
manual-axes tag (SegmentModified): the lines' end points in LPS, which the live table, "Recompute report" and the
export give the engine's ``measure`` (``manual_axes``), so every output shows the same hand-measured numbers.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from SmoothSegNetSlicerLib.live import TAG_MANUAL_AXES
from SmoothSegNetSlicerLib.logic import segmentIdOfLesion

#: Attributes of the RECIST line nodes: the lesion's segment id and which axis ("long" / "short").
ATTRIBUTE_SEGMENT = "SmoothSegNet.LesionSegment"
ATTRIBUTE_AXIS = "SmoothSegNet.RecistAxis"
AXES = ("long", "short")


def lpsToRas(point: Any) -> list[float]:
    """LPS (report.json) to RAS (Slicer): the first two coordinates change sign."""
    x, y, z = (float(v) for v in point)
    return [-x, -y, z]


def _lesion(report: dict[str, Any], lesionId: int) -> dict[str, Any]:
    for lesion in report.get("lesions", []):
        if int(lesion["id"]) == lesionId:
            return lesion  # type: ignore[no-any-return]
    raise ValueError(f"lesionId {lesionId} is not in the report (lesions: {[x['id'] for x in report['lesions']]})")


def recistLineNodes(scene: Any, segmentId: str) -> dict[str, Any]:
    """The RECIST line nodes of a lesion segment, by axis ("long", "short"); missing axes are absent."""
    found = {}
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLMarkupsLineNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLMarkupsLineNode")
        if node.GetAttribute(ATTRIBUTE_SEGMENT) == segmentId:
            found[node.GetAttribute(ATTRIBUTE_AXIS)] = node
    return found


def showRecistLines(scene: Any, segmentationNode: Any, report: dict[str, Any], lesionId: int) -> dict[str, Any]:
    """Line nodes ("Lesion N long axis", "... short axis") from the report's end points, in RAS.

    Existing lines of the lesion are moved back to the measured end points. Returns them by axis.
    Raises ValueError when the lesion is not in the report or has no segment.
    """
    lesion = _lesion(report, lesionId)
    segmentId = segmentIdOfLesion(segmentationNode, lesionId)
    if segmentId is None:
        raise ValueError(f"lesion {lesionId} has no segment in {segmentationNode.GetName()!r}")
    lines = recistLineNodes(scene, segmentId)
    for axis in AXES:
        ends = lesion.get(f"{axis}_axis_ends_lps_mm")
        if not ends:
            continue
        node = lines.get(axis)
        if node is None:
            node = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode")
            node.SetAttribute(ATTRIBUTE_SEGMENT, segmentId)
            node.SetAttribute(ATTRIBUTE_AXIS, axis)
            node.CreateDefaultDisplayNodes()
            lines[axis] = node
        node.SetName(f"Lesion {lesionId} {axis} axis")
        node.RemoveAllControlPoints()
        for end in ends:
            node.AddControlPoint(*lpsToRas(end))
    return lines


def lineLengthMm(node: Any) -> float:
    """Distance between the line's two control points (mm)."""
    points = [np.array(node.GetNthControlPointPosition(i)) for i in range(2)]
    return float(np.linalg.norm(points[1] - points[0]))


def rasToLps(point: Any) -> list[float]:
    """RAS (Slicer) to LPS (the engine): the first two coordinates change sign."""
    return lpsToRas(point)


def setManualAxes(segmentationNode: Any, lineNodes: dict[str, Any]) -> dict[str, float]:
    """Write the lines as the lesion's manual RECIST axes: the segment tag :data:`TAG_MANUAL_AXES` holds their end
    points in LPS (``{"long": [[L,P,S],[L,P,S]], "short": ...}``), which the live table, "Recompute report" and
    the export give the engine. Returns the lines' lengths (mm) by axis."""
    segmentId = next(iter(lineNodes.values())).GetAttribute(ATTRIBUTE_SEGMENT)
    ends = {axis: [rasToLps(node.GetNthControlPointPosition(n)) for n in range(2)] for axis, node in lineNodes.items()}
    segmentationNode.GetSegmentation().GetSegment(segmentId).SetTag(TAG_MANUAL_AXES, json.dumps(ends))
    return {axis: lineLengthMm(node) for axis, node in lineNodes.items()}


class ManualAxesWatcher:
    """Moving an end point of a lesion's RECIST line makes the lines' lengths that lesion's manual axes."""

    def __init__(self, segmentationNode: Any, lineNodes: dict[str, Any]) -> None:
        import slicer

        self.segmentationNode = segmentationNode
        self.lineNodes = dict(lineNodes)
        event = slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent, slicer.vtkMRMLMarkupsNode.PointModifiedEvent
        self._tags = [(node, node.AddObserver(e, self.onMoved)) for node in self.lineNodes.values() for e in event]

    def onMoved(self, *args: Any) -> None:
        if all(node.GetNumberOfControlPoints() == 2 for node in self.lineNodes.values()):
            setManualAxes(self.segmentationNode, self.lineNodes)

    def stop(self) -> None:
        for node, tag in self._tags:
            node.RemoveObserver(tag)
        self._tags = []


def deleteLesion(segmentationNode: Any, inputVolume: Any, lesionId: int) -> None:
    """Remove lesion ``lesionId``: its voxels go back to the liver segment, its segment and lines go.

    The live table (or Recompute report) then renumbers the lesions without a gap.
    Raises ValueError when the lesion has no segment, or there is no liver segment to give the voxels to.
    """
    from SmoothSegNetLib import mrml

    segmentId = segmentIdOfLesion(segmentationNode, lesionId)
    if segmentId is None:
        raise ValueError(f"lesion {lesionId} has no segment in {segmentationNode.GetName()!r}")
    segmentation = segmentationNode.GetSegmentation()
    liverIds = [
        segmentation.GetNthSegmentID(i)
        for i in range(segmentation.GetNumberOfSegments())
        if mrml._segment_role(segmentation.GetNthSegment(i)) == mrml.LIVER_LABEL
    ]
    if not liverIds:
        raise ValueError("the segmentation has no liver segment to give the lesion's voxels back to")
    arrays = mrml.labelmap_from_segmentation(segmentationNode, inputVolume)
    liver = (arrays.labelmap == mrml.LIVER_LABEL) | (arrays.lesions == lesionId)
    mrml.set_segment_mask(segmentationNode, liverIds[0], liver, inputVolume)
    scene = segmentationNode.GetScene()
    for node in recistLineNodes(scene, segmentId).values():
        scene.RemoveNode(node)
    segmentation.RemoveSegment(segmentId)


def addLesionSegment(segmentationNode: Any, inputVolume: Any, maskKji: np.ndarray) -> str:
    """Hook for "Add lesion at point" (the engine's ``add-lesion`` gives the mask): add it as the next lesion.

    ``maskKji`` is bool on the input volume's grid. The segment is hand-added (no digest tag), so it is marked
    edited; the live table numbers, names and measures it. Returns the new segment id.
    Raises ValueError for an empty mask.
    """
    from SmoothSegNetLib import mrml
    from SmoothSegNetLib.slicer_support.masks import BoxMask
    from SmoothSegNetLib.terminology import segment_for_label

    mask = BoxMask.from_full(np.asarray(maskKji, dtype=bool))
    if not mask.any():
        raise ValueError("maskKji holds no voxel: nothing to add as a lesion")
    segmentation = segmentationNode.GetSegmentation()
    segmentId = segmentation.GenerateUniqueSegmentID("lesion_added")
    mrml._add_segment(
        segmentationNode, segmentId, "Lesion", segment_for_label(mrml.TUMOR_LABEL), mask,
        mrml.geometry_from_node(inputVolume),
    )  # fmt: skip
    segmentation.GetSegment(segmentId).RemoveTag(mrml.TAG_DIGEST)
    return str(segmentId)
