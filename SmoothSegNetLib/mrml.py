"""The MRML bridge: Slicer nodes <-> engine objects (the only engine module that touches ``slicer``).

``slicer`` and ``vtk`` are imported lazily inside the functions, so importing this module (and the
rest of the engine) works without Slicer. The functions run the same inside Slicer and against the
``slicer-core`` wheel (a real MRML scene without Qt, see :func:`create_headless_scene`).

Geometry rules. A volume node is converted with its IJK-to-RAS matrix (exact: RAS <-> LPS is a sign
flip of the first two axes). A volume under a *parent transform* is refused: the networks must see the
patient in the scanner's orientation and the result must land on the volume's own voxels, so the user
hardens (or removes) the transform first. Results of ``segment`` are imported only when their grid is
the reference volume's grid; segments are exported back onto exactly that grid.

Segment tags written here (read back by :func:`labelmap_from_segmentation`):
``SmoothSegNet.Label`` ("1" liver, "2" tumor), ``SmoothSegNet.LesionId`` (report lesion id) and
``SmoothSegNet.MaskDigest`` (digest of the mask as imported, to tell which segments were edited: ``v2:`` and
a sha1 of its bounding box and bits; tags of older scenes, a sha1 of the full grid's bits, are still read).

Speed: segments are read from Slicer's shared labelmap layers and kept as their bounding boxes
(:mod:`SmoothSegNetLib.slicer_support.masks`), so re-measuring costs about one export of all segments, not
one full-grid export per segment (bench/slicer_bridge.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.slicer_support.lesion_table import LesionTableColumn, lesion_table_columns, lesion_table_rows
from SmoothSegNetLib.slicer_support.masks import BoxMask, SegmentMask, assemble
from SmoothSegNetLib.terminology import SegmentSpec, segment_for_label
from SmoothSegNetLib.volume import CTVolume, Geometry

log = logging.getLogger(__name__)

TAG_LABEL = "SmoothSegNet.Label"
TAG_LESION_ID = "SmoothSegNet.LesionId"
TAG_DIGEST = "SmoothSegNet.MaskDigest"
#: Node attribute holding the report.json text on the table node (for exports and recompute).
ATTRIBUTE_REPORT = "SmoothSegNet.Report"

LIVER_LABEL = 1
TUMOR_LABEL = 2
#: Tolerance (mm) when checking that a result lies on the reference volume's grid.
GRID_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class HeadlessScene:
    """A real MRML scene with the module logics Slicer would register (for scripts and tests).

    The logic objects are kept here so they stay alive as long as the scene is used.
    """

    scene: Any
    application_logic: Any
    segmentations_logic: Any
    subject_hierarchy_logic: Any


@dataclass(frozen=True)
class SegmentationArrays:
    """Segments exported back onto a reference volume's grid (arrays indexed ``[k, j, i]``).

    Attributes:
        labelmap: uint8, 0 background, 1 liver, 2 tumor (tumor wins where segments overlap).
        lesions: uint16 instances, value = the segment's lesion id (0 none); where lesion segments
            overlap the lower id wins. A lesion segment added by hand gets the next free id.
        lesion_ids: lesion id -> segment id.
        edited_lesion_ids: ids of lesion segments whose mask differs from the imported one
            (hand-added lesions included).
        liver_edited: whether the liver segment differs from the imported one.
        geometry: the reference grid.
    """

    labelmap: np.ndarray
    lesions: np.ndarray
    lesion_ids: dict[int, str]
    edited_lesion_ids: tuple[int, ...]
    liver_edited: bool
    geometry: Geometry


def _slicer() -> Any:
    import slicer

    return slicer


def create_headless_scene() -> HeadlessScene:
    """A new MRML scene with application, segmentations and subject hierarchy logic (no Qt needed)."""
    slicer = _slicer()
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    app_logic.GetColorLogic().SetMRMLScene(scene)
    app_logic.GetColorLogic().AddDefaultColorNodes()
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(scene)
    segmentations.SetMRMLApplicationLogic(app_logic)
    app_logic.SetModuleLogic("Segmentations", segmentations)
    hierarchy = slicer.vtkSlicerSubjectHierarchyModuleLogic()
    hierarchy.SetMRMLScene(scene)
    hierarchy.SetMRMLApplicationLogic(app_logic)
    return HeadlessScene(scene, app_logic, segmentations, hierarchy)


# -- volumes ---------------------------------------------------------------------------------------
def _matrix_to_numpy(matrix: Any) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def _numpy_to_matrix(array: np.ndarray) -> Any:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _check_volume_node(volume_node: Any, argument: str) -> None:
    if volume_node is None or not volume_node.IsA("vtkMRMLScalarVolumeNode"):
        kind = "nothing" if volume_node is None else volume_node.GetClassName()
        raise InputError(f"{argument} must be a scalar volume node (a CT), got {kind}: select a CT volume")
    if volume_node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"{argument} '{volume_node.GetName()}' is a labelmap, not a CT: select the CT volume")
    image = volume_node.GetImageData()
    if image is None or image.GetNumberOfPoints() == 0:
        raise InputError(f"{argument} '{volume_node.GetName()}' has no voxels: load the CT again")
    if image.GetNumberOfScalarComponents() != 1:
        raise InputError(
            f"{argument} '{volume_node.GetName()}' has {image.GetNumberOfScalarComponents()} components per voxel; "
            "a CT has one: select a grey-level CT volume"
        )
    transform = volume_node.GetParentTransformNode()
    if transform is not None:
        raise InputError(
            f"{argument} '{volume_node.GetName()}' is under the transform '{transform.GetName()}'; the networks "
            "need the CT in scanner coordinates: harden the transform (Data module, right-click the volume, "
            "'Harden transform') or remove it, then run again"
        )


def geometry_from_node(volume_node: Any) -> Geometry:
    """The engine geometry (LPS) of a volume node, from its IJK-to-RAS matrix and dimensions."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    i, j, k = volume_node.GetImageData().GetDimensions()
    return Geometry.from_ijk_to_ras(_matrix_to_numpy(matrix), (k, j, i))


def volume_from_node(volume_node: Any) -> CTVolume:
    """The engine CT volume of a Slicer scalar volume node (voxels copied, geometry exact).

    Raises:
        InputError: not a single-component scalar volume, no voxels, or under a parent transform.
    """
    _check_volume_node(volume_node, "volume_node")
    slicer = _slicer()
    array = np.array(slicer.util.arrayFromVolume(volume_node), copy=True)
    return CTVolume(array, geometry_from_node(volume_node), source=f"slicer:{volume_node.GetName()}")


def dicom_instance_uids(volume_node: Any) -> list[str]:
    """SOP instance UIDs of the DICOM slices a volume was loaded from (empty if not from DICOM)."""
    value = volume_node.GetAttribute("DICOM.instanceUIDs") if volume_node is not None else None
    return value.split() if value else []


# -- result -> segmentation node ---------------------------------------------------------------------
def _read_labelmap(path: Path) -> tuple[np.ndarray, Geometry]:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read {path.name} in {path.parent}: {exc}; run 'segment' again") from exc
    return sitk.GetArrayFromImage(image), Geometry.from_sitk(image)


def _oriented_image(mask: np.ndarray, geometry: Geometry) -> Any:
    """A vtkOrientedImageData (uint8, 0/1) holding ``mask`` ([k, j, i]) on ``geometry``.

    Only the bounding box of the mask is stored (its VTK extent places it on the grid), so small
    lesions in a large CT stay cheap; an empty mask gives a one-voxel image of 0.
    """
    return _oriented_image_of(BoxMask.from_full(mask), geometry)


def _oriented_image_of(mask: BoxMask, geometry: Geometry) -> Any:
    """:func:`_oriented_image` of a mask already cut to its bounding box."""
    import vtk
    from vtk.util import numpy_support

    slicer = _slicer()
    low, high, voxels = [0, 0, 0], [0, 0, 0], np.zeros(1, np.uint8)
    if mask.box is not None and mask.mask is not None:
        low = [int(b.start) for b in mask.box]
        high = [int(b.stop) - 1 for b in mask.box]
        voxels = mask.mask.astype(np.uint8).ravel()
    image = slicer.vtkOrientedImageData()
    image.SetExtent(low[2], high[2], low[1], high[1], low[0], high[0])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = voxels
    image.SetImageToWorldMatrix(_numpy_to_matrix(geometry.ijk_to_ras()))
    return image


def _set_terminology(segment: Any, entry: str) -> None:
    if hasattr(segment, "SetTerminology"):
        segment.SetTerminology(entry)
    else:  # Slicer before 5.7 kept the terminology in a tag
        segment.SetTag(_slicer().vtkSegment.GetTerminologyEntryTagName(), entry)


def _add_segment(node: Any, segment_id: str, name: str, style: SegmentSpec, mask: BoxMask, geometry: Geometry) -> None:
    slicer = _slicer()
    segmentation = node.GetSegmentation()
    segmentation.AddEmptySegment(segment_id, name, [c / 255.0 for c in style.color_rgb])
    segment = segmentation.GetSegment(segment_id)
    _set_terminology(segment, style.slicer_terminology_entry())  # the same entry as in segmentation.seg.nrrd
    segment.SetTag(TAG_LABEL, str(style.label))
    segment.SetTag(TAG_DIGEST, mask.digest())
    ok = slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        _oriented_image_of(mask, geometry), node, segment_id
    )
    if not ok:
        raise RuntimeError(f"Slicer refused the labelmap of segment {name!r}")


def _check_same_grid(geometry: Geometry, reference: Geometry, what: str) -> None:
    if not geometry.same_grid(reference, atol=GRID_TOLERANCE_MM):
        raise InputError(
            f"{what} is not on the grid of the reference volume (shape {geometry.shape_kji} vs "
            f"{reference.shape_kji}, or different spacing/origin/direction): import it with the CT it was made from"
        )


def _read_report(output_dir: Path) -> dict[str, Any] | None:
    path = output_dir / "report.json"
    if not path.is_file():
        return None
    try:
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"output_dir {output_dir}: report.json is unreadable ({exc}); run 'segment' again") from exc
    return report


def _lesion_name(lesion_id: int, style: SegmentSpec) -> str:
    return (style.lesion_name_format or "Lesion {id}").format(id=lesion_id)


def import_result(
    scene: Any,
    output_dir: str | Path,
    reference_volume_node: Any,
    per_lesion: bool = True,
    segmentation_node: Any = None,
) -> Any:
    """Import a ``segment`` output folder as one segmentation node on the reference volume.

    Segments: "Liver", then one segment per lesion ("Lesion 1", ... in the numbering of
    ``lesions.nrrd`` and the report, i.e. by decreasing volume) when ``per_lesion``, else one
    "Tumor". Names, colours and SNOMED terminology come from ``Resources/Terminology/segments.json``.

    Args:
        scene: the MRML scene (``slicer.mrmlScene`` inside Slicer).
        output_dir: folder holding ``segmentation.nrrd`` (and ``lesions.nrrd`` when ``per_lesion``).
        reference_volume_node: the CT the result was computed from; sets the reference geometry and
            the place in the subject hierarchy (same parent, i.e. the same study).
        per_lesion: one segment per lesion instead of one tumor segment.
        segmentation_node: a node to fill (its segments are replaced); a new one when ``None``.

    Returns:
        The ``vtkMRMLSegmentationNode``.

    Raises:
        InputError: missing or unreadable files, or a result that is not on the reference grid.
    """
    folder = Path(output_dir)
    _check_volume_node(reference_volume_node, "reference_volume_node")
    reference = geometry_from_node(reference_volume_node)
    labels_path = folder / "segmentation.nrrd"
    lesions_path = folder / "lesions.nrrd"
    needed = [labels_path, lesions_path] if per_lesion else [labels_path]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise InputError(
            f"output_dir {folder} lacks {', '.join(missing)}: give the folder written by 'smoothsegnet segment'"
        )
    labelmap, geometry = _read_labelmap(labels_path)
    _check_same_grid(geometry, reference, "segmentation.nrrd")
    lesions = None
    if per_lesion:
        lesions, lesion_geometry = _read_labelmap(lesions_path)
        _check_same_grid(lesion_geometry, reference, "lesions.nrrd")
    report = _read_report(folder)
    if lesions is not None:
        _lesion_ids(lesions, report)  # refuse a folder that mixes two runs before touching the scene

    created = segmentation_node is None
    if segmentation_node is None:
        segmentation_node = scene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", f"{reference_volume_node.GetName()} liver and tumors"
        )
    try:
        _fill_segments(segmentation_node, reference_volume_node, reference, labelmap, lesions)
    except Exception:
        if created:  # leave no half-filled node behind
            scene.RemoveNode(segmentation_node)
        raise
    if report is not None:
        segmentation_node.SetAttribute(ATTRIBUTE_REPORT, json.dumps(report))
    place_beside(segmentation_node, reference_volume_node)
    return segmentation_node


def _fill_segments(
    node: Any, reference_node: Any, reference: Geometry, labelmap: np.ndarray, lesions: np.ndarray | None
) -> None:
    node.GetSegmentation().RemoveAllSegments()
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    from scipy import ndimage

    liver = segment_for_label(LIVER_LABEL)
    _add_segment(node, "liver", liver.name, liver, BoxMask.from_full(labelmap == LIVER_LABEL), reference)
    tumor = segment_for_label(TUMOR_LABEL)
    if lesions is None:
        _add_segment(node, "tumor", tumor.name, tumor, BoxMask.from_full(labelmap == TUMOR_LABEL), reference)
        return
    # One pass for every lesion's box, then each lesion inside its box: not one full-grid mask per lesion.
    for lesion_id, box in enumerate(ndimage.find_objects(lesions), start=1):
        if box is None:
            continue
        segment_id = f"lesion_{lesion_id}"
        mask = BoxMask.from_region(reference.shape_kji, [b.start for b in box], lesions[box] == lesion_id)
        _add_segment(node, segment_id, _lesion_name(lesion_id, tumor), tumor, mask, reference)
        node.GetSegmentation().GetSegment(segment_id).SetTag(TAG_LESION_ID, str(lesion_id))


def _lesion_ids(lesions: np.ndarray, report: dict[str, Any] | None) -> list[int]:
    present = sorted(int(v) for v in np.unique(lesions) if v != 0)
    if report is not None:
        reported = sorted(int(lesion["id"]) for lesion in report.get("lesions", []))
        if reported != present:
            raise InputError(
                f"lesions.nrrd holds lesions {present} but report.json lists {reported}: the folder mixes two "
                "runs; run 'segment' again into an empty folder"
            )
    return present


def place_beside(node: Any, reference_node: Any) -> None:
    """Put ``node`` under the same subject hierarchy parent (e.g. the study) as ``reference_node``."""
    slicer = _slicer()
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(reference_node.GetScene())
    if hierarchy is None:
        return
    reference_item = hierarchy.GetItemByDataNode(reference_node)
    if not reference_item:
        return
    parent = hierarchy.GetItemParent(reference_item)
    item = hierarchy.GetItemByDataNode(node)
    if item:
        hierarchy.SetItemParent(item, parent)
    else:  # without Slicer's GUI plugins nothing creates items for new nodes
        hierarchy.CreateItem(parent, node)


# -- segmentation node -> arrays (recompute after manual edits) -----------------------------------
def _export_segment(
    segmentation_node: Any, segment_id: str, reference_volume_node: Any, reference: Geometry
) -> np.ndarray:
    slicer = _slicer()
    scene = segmentation_node.GetScene()
    temporary = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__SmoothSegNet_export__")
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node,
            [segment_id],
            temporary,
            reference_volume_node,
            slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
        )
        if not ok:
            raise RuntimeError(f"Slicer could not export segment {segment_id!r}")
        _check_same_grid(geometry_from_node(temporary), reference, f"exported segment {segment_id!r}")
        return np.array(slicer.util.arrayFromVolume(temporary)) != 0
    finally:
        display = temporary.GetDisplayNode()
        if (
            display is not None
            and display.GetColorNode() is not None
            and display.GetColorNode().GetName().startswith("__SmoothSegNet_export__")
        ):
            scene.RemoveNode(display.GetColorNode())
        scene.RemoveNode(temporary)


def _segment_role(segment: Any) -> int | None:
    """1 liver, 2 tumor/lesion, None unknown: from our tag, else the name (segments added by hand)."""
    tag = _tag(segment, TAG_LABEL)
    if tag is not None and tag.isdigit():
        return int(tag)
    name = segment.GetName().strip().lower()
    if name == segment_for_label(LIVER_LABEL).name.lower():
        return LIVER_LABEL
    if name == segment_for_label(TUMOR_LABEL).name.lower() or name.startswith("lesion"):
        return TUMOR_LABEL
    return None


def _tag(segment: Any, name: str) -> str | None:
    import vtk

    value = vtk.reference("")
    return str(value) if segment.GetTag(name, value) and str(value) else None


def lesion_id_of_segment(segment: Any) -> int | None:
    """The lesion id tagged on a segment by :func:`import_result` / :func:`rename_lesion_segments`, else None."""
    tag = _tag(segment, TAG_LESION_ID)
    return int(tag) if tag is not None and tag.isdigit() else None


def _lesion_order(segment: Any) -> tuple[int, int]:
    tag = _tag(segment, TAG_LESION_ID)
    return (0, int(tag)) if tag is not None and tag.isdigit() else (1, 0)


def _on_grid_layer_array(image: Any, reference_ijk_to_ras: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """A shared labelmap layer's voxels ``[k, j, i]`` and its first voxel's index on the reference grid.

    ``None`` when the layer is not an integer labelmap whose voxels are the reference grid's voxels (then
    its segments go through Slicer's export, which resamples).
    """
    import vtk
    from vtk.util import numpy_support

    if image is None or not image.IsA("vtkOrientedImageData") or image.GetNumberOfScalarComponents() != 1:
        return None
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    layer = _matrix_to_numpy(matrix)
    if not np.allclose(layer[:3, :3], reference_ijk_to_ras[:3, :3], rtol=0.0, atol=1e-6):
        return None
    # The layer may start elsewhere (Slicer grows layers): a whole number of voxels away keeps the voxels.
    shift_ijk = np.linalg.solve(reference_ijk_to_ras[:3, :3], layer[:3, 3] - reference_ijk_to_ras[:3, 3])
    if not np.allclose(shift_ijk, np.round(shift_ijk), rtol=0.0, atol=1e-4):
        return None
    x0, x1, y0, y1, z0, z1 = image.GetExtent()
    di, dj, dk = (int(v) for v in np.round(shift_ijk))
    first_kji = (z0 + dk, y0 + dj, x0 + di)
    if x1 < x0 or y1 < y0 or z1 < z0 or image.GetPointData().GetScalars() is None:
        return np.zeros((0, 0, 0), np.uint8), first_kji
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    if array.dtype.kind not in "ui":
        return None
    return array.reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1), first_kji


def _masks_from_layers(
    segmentation: Any, reference_ijk_to_ras: np.ndarray, shape_kji: tuple[int, int, int]
) -> dict[str, BoxMask]:
    """Segment id -> :class:`BoxMask` for every segment held in a layer on the reference grid.

    One pass over each layer (``find_objects`` gives every label's box), then each segment is compared
    inside its own box only: no full-grid array per segment, unlike one export per segment.
    """
    from scipy import ndimage

    masks: dict[str, BoxMask] = {}
    source = getattr(segmentation, "GetSourceRepresentationName", None) or segmentation.GetMasterRepresentationName
    if source() != _slicer().vtkSegmentationConverter.GetBinaryLabelmapRepresentationName():
        return masks  # closed surfaces first: Slicer converts them
    for layer in range(segmentation.GetNumberOfLayers()):
        found = _on_grid_layer_array(segmentation.GetLayerDataObject(layer), reference_ijk_to_ras)
        if found is None:
            continue
        array, offset = found
        low = [max(0, -o) for o in offset]  # clip the layer to the reference grid
        high = [min(n, size - o) for n, size, o in zip(array.shape, shape_kji, offset)]
        region = array[tuple(slice(a, max(a, b)) for a, b in zip(low, high))]
        origin = [o + a for o, a in zip(offset, low)]
        boxes = ndimage.find_objects(region) if region.size else []
        for segment_id in segmentation.GetSegmentIDsForLayer(layer):
            value = int(segmentation.GetSegment(segment_id).GetLabelValue())
            box = boxes[value - 1] if 0 < value <= len(boxes) else None
            if box is None:
                masks[segment_id] = BoxMask.from_region(shape_kji, origin, np.zeros((0, 0, 0), bool))
                continue
            start = [o + b.start for o, b in zip(origin, box)]
            masks[segment_id] = BoxMask.from_region(shape_kji, start, region[box] == value)
    return masks


def labelmap_from_segmentation(segmentation_node: Any, reference_volume_node: Any) -> SegmentationArrays:
    """Export the (possibly hand-edited) segments back onto the reference volume's grid.

    Segments are recognised by the tags :func:`import_result` wrote, or by name for segments added by
    hand ("Liver"; "Tumor" or "Lesion ..."); other segments are ignored (logged). Lesions keep their
    order (imported ones by their id, then hand-added ones in segment order) and are numbered 1..n
    without gaps: a lesion segment that was deleted or emptied closes its gap, as ``measure`` requires.
    Call :func:`rename_lesion_segments` to make the segment names follow.

    Segments in a labelmap layer on the reference grid (the usual case: the import and Segment Editor
    keep that geometry) are read from the layer directly; any other segment is exported by Slicer
    (``ExportSegmentsToLabelmapNode``) onto the reference grid. Both give the same voxels.
    """
    _check_volume_node(reference_volume_node, "reference_volume_node")
    reference = geometry_from_node(reference_volume_node)
    segmentation = segmentation_node.GetSegmentation()
    on_grid = _masks_from_layers(segmentation, reference.ijk_to_ras(), reference.shape_kji)
    items = []
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segment_id)
        role = _segment_role(segment)
        if role is None:
            log.info("segment %r is neither liver nor tumor; ignored in the report", segment.GetName())
            continue
        mask = on_grid.get(segment_id)
        if mask is None:
            mask = BoxMask.from_full(_export_segment(segmentation_node, segment_id, reference_volume_node, reference))
        items.append(SegmentMask(segment_id, role, _lesion_order(segment), _tag(segment, TAG_DIGEST), mask))
    labelmap, lesions, lesion_ids, edited, liver_edited = assemble(reference.shape_kji, items)
    return SegmentationArrays(labelmap, lesions, lesion_ids, edited, liver_edited, reference)


def rename_lesion_segments(segmentation_node: Any, lesion_ids: dict[int, str]) -> None:
    """Name and tag lesion segments by their (new) lesion ids: "Lesion 1", "Lesion 2", ...

    Only segments whose id changed, or that were added by hand, are touched; colour and terminology
    of hand-added segments are set to the tumor's.
    """
    tumor = segment_for_label(TUMOR_LABEL)
    segmentation = segmentation_node.GetSegmentation()
    for lesion_id, segment_id in lesion_ids.items():
        segment = segmentation.GetSegment(segment_id)
        if _tag(segment, TAG_LESION_ID) == str(lesion_id):
            continue
        if _tag(segment, TAG_LABEL) is None:
            segment.SetColor(*tumor.color_float)
            _set_terminology(segment, tumor.slicer_terminology_entry())
            segment.SetTag(TAG_LABEL, str(TUMOR_LABEL))
        segment.SetName(_lesion_name(lesion_id, tumor))
        segment.SetTag(TAG_LESION_ID, str(lesion_id))


# -- report -> table node ---------------------------------------------------------------------------
def _new_column(table: Any, column: LesionTableColumn) -> Any:
    import vtk

    array = vtk.vtkDoubleArray() if column.kind == "number" else vtk.vtkStringArray()
    if column.kind == "integer":
        array = vtk.vtkIntArray()
    array.SetName(column.title)
    table.AddColumn(array)
    if column.unit:
        table.SetColumnUnitLabel(column.title, column.unit)
    table.SetColumnDescription(column.title, column.description)
    return array


def table_from_report(
    scene: Any, report: dict[str, Any], table_node: Any = None, edited_lesion_ids: tuple[int, ...] = ()
) -> Any:
    """A ``vtkMRMLTableNode`` with one row per lesion of ``report`` (columns: Resources/Slicer/lesion_table.json).

    Values are stored unrounded (display rounding is the view's job); a missing value is NaN.
    The full report JSON is kept in the node attribute :data:`ATTRIBUTE_REPORT`.
    """
    if not isinstance(report, dict) or not isinstance(report.get("lesions"), list):
        raise InputError("report must be a report.json dictionary with a 'lesions' list (from 'measure' or 'segment')")
    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", "SmoothSegNet lesions")
    table_node.RemoveAllColumns()
    columns = lesion_table_columns()
    arrays = [_new_column(table_node, column) for column in columns]
    name_format = segment_for_label(TUMOR_LABEL).lesion_name_format or "Lesion {id}"
    for row in lesion_table_rows(report, edited_lesion_ids, name_format):
        for column, array, value in zip(columns, arrays, row):
            if column.kind == "text":
                array.InsertNextValue(str(value))
            elif column.kind == "integer":
                array.InsertNextValue(int(value))
            else:
                array.InsertNextValue(float("nan") if value is None else float(value))
    table_node.SetUseColumnTitleAsColumnHeader(True)
    table_node.SetAttribute(ATTRIBUTE_REPORT, json.dumps(report))
    table_node.Modified()
    return table_node
