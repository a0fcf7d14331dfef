"""Candidates to review: tumor components under the lesion floors, as hidden segments to accept or reject.

``segment`` writes them to ``candidates.nrrd`` (candidate k = value k, as report.json ``candidates[]``). They
are imported as segments "Candidate k", hidden in the views, tagged so the report ignores them (their voxels
are liver in the result). Accepting one makes it the next lesion (the live table measures it); rejecting one
removes its segment. MRML only, no Qt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TAG_CANDIDATE_ID = "SmoothSegNet.CandidateId"
#: Value of the label tag on candidate segments: not a digit, so ``mrml`` counts them as neither liver nor tumor.
CANDIDATE_LABEL = "candidate"
CANDIDATES_FILE = "candidates.nrrd"


def candidateSegmentIds(segmentationNode: Any) -> dict[int, str]:
    """Candidate id -> segment id of the candidates still in the segmentation."""
    from SmoothSegNetLib import mrml

    segmentation = segmentationNode.GetSegmentation()
    found = {}
    for index in range(segmentation.GetNumberOfSegments()):
        tag = mrml._tag(segmentation.GetNthSegment(index), TAG_CANDIDATE_ID)
        if tag is not None and tag.isdigit():
            found[int(tag)] = str(segmentation.GetNthSegmentID(index))
    return found


def importCandidates(segmentationNode: Any, inputVolume: Any, outputDir: Path, report: dict[str, Any] | None) -> int:
    """Add the candidates of ``outputDir/candidates.nrrd`` listed in ``report`` as hidden segments.

    Returns how many were added (0 when the folder has no candidates file, e.g. from an older run).
    Raises InputError when the file is not on the input volume's grid.
    """
    from scipy import ndimage

    from SmoothSegNetLib import mrml
    from SmoothSegNetLib.slicer_support.masks import BoxMask
    from SmoothSegNetLib.terminology import segment_for_label

    path = Path(outputDir) / CANDIDATES_FILE
    listed = [int(c["id"]) for c in (report or {}).get("candidates", [])]
    if not path.is_file() or not listed:
        return 0
    reference = mrml.geometry_from_node(inputVolume)
    instances, geometry = mrml._read_labelmap(path)
    mrml._check_same_grid(geometry, reference, CANDIDATES_FILE)
    style = segment_for_label(mrml.TUMOR_LABEL)
    display = segmentationNode.GetDisplayNode()
    boxes = ndimage.find_objects(instances.astype(int), max_label=max(listed))
    for candidateId in listed:
        box = boxes[candidateId - 1]
        if box is None:
            continue
        segmentId = f"candidate_{candidateId}"
        mask = BoxMask.from_region(reference.shape_kji, [b.start for b in box], instances[box] == candidateId)
        mrml._add_segment(segmentationNode, segmentId, f"Candidate {candidateId}", style, mask, reference)
        segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
        segment.SetTag(mrml.TAG_LABEL, CANDIDATE_LABEL)
        segment.SetTag(TAG_CANDIDATE_ID, str(candidateId))
        segment.SetColor(1.0, 0.85, 0.0)  # yellow: not a lesion (yet)
        if display is not None:
            display.SetSegmentVisibility(segmentId, False)  # hidden until the user looks at it
    return len(listed)


def _segmentOf(segmentationNode: Any, candidateId: int) -> str:
    segmentId = candidateSegmentIds(segmentationNode).get(candidateId)
    if segmentId is None:
        raise ValueError(f"candidate {candidateId} is not in {segmentationNode.GetName()!r} (accepted or rejected?)")
    return segmentId


def acceptCandidate(segmentationNode: Any, candidateId: int) -> str:
    """Candidate ``candidateId`` becomes the next lesion (shown; the live table numbers and measures it).

    Returns its segment id. Raises ValueError when there is no such candidate.
    """
    from SmoothSegNetLib import mrml

    segmentId = _segmentOf(segmentationNode, candidateId)
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    segment.RemoveTag(TAG_CANDIDATE_ID)
    segment.RemoveTag(mrml.TAG_LABEL)  # a hand-added lesion: named, coloured and tagged by the renumbering
    segment.RemoveTag(mrml.TAG_DIGEST)  # not the network's lesion: marked edited (by hand) in every output
    segment.SetName("Lesion")
    display = segmentationNode.GetDisplayNode()
    if display is not None:
        display.SetSegmentVisibility(segmentId, True)
    segmentationNode.GetSegmentation().Modified()
    return segmentId


def rejectCandidate(segmentationNode: Any, candidateId: int) -> None:
    """Remove candidate ``candidateId`` (its voxels stay liver). Raises ValueError when there is none."""
    segmentationNode.GetSegmentation().RemoveSegment(_segmentOf(segmentationNode, candidateId))


def candidateRows(report: dict[str, Any] | None, segmentationNode: Any) -> list[dict[str, Any]]:
    """The report's ``candidates[]`` entries still waiting for review (in report order)."""
    waiting = candidateSegmentIds(segmentationNode) if segmentationNode is not None else {}
    return [c for c in (report or {}).get("candidates", []) if int(c["id"]) in waiting]
