"""The MRML bridge against a REAL MRML scene from the slicer-core wheel (no Qt, no mocks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _mrml_helpers import (
    GEOMETRIES,
    LESION_2,
    SHAPE_KJI,
    add_volume,
    measured_report,
    synthetic_arrays,
    write_segment_folder,
)

from SmoothSegNetLib import mrml
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.volume import Geometry


@pytest.fixture
def headless() -> mrml.HeadlessScene:
    return mrml.create_headless_scene()


def _segment_names(node: Any) -> list[str]:
    segmentation = node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_volume_from_node_keeps_voxels_and_geometry(headless: mrml.HeadlessScene, name: str) -> None:
    geometry = GEOMETRIES[name]
    ct, _, _ = synthetic_arrays()
    node = add_volume(headless.scene, ct, geometry)
    volume = mrml.volume_from_node(node)
    np.testing.assert_array_equal(volume.array, ct)
    assert volume.geometry.same_grid(geometry, atol=1e-9)
    np.testing.assert_allclose(volume.geometry.ijk_to_ras(), geometry.ijk_to_ras(), atol=1e-12)
    # The LPS position of one asymmetric voxel, computed by hand from the geometry.
    expected = np.asarray(geometry.origin_lps_mm) + geometry.direction_array @ (
        np.array([4, 3, 2]) * geometry.spacing_mm
    )
    np.testing.assert_allclose(volume.geometry.index_to_lps([4, 3, 2]), expected, atol=1e-9)
    # A copy: editing the Slicer volume afterwards does not change the engine's array.
    import slicer

    slicer.util.arrayFromVolume(node)[0, 0, 0] = 999
    assert volume.array[0, 0, 0] == -100


def test_volume_under_a_transform_is_refused(headless: mrml.HeadlessScene) -> None:
    ct, _, _ = synthetic_arrays()
    node = add_volume(headless.scene, ct, GEOMETRIES["oblique"])
    transform = headless.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Registration")
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(InputError, match=r"under the transform 'Registration'.*Harden transform"):
        mrml.volume_from_node(node)


def test_labelmap_node_is_refused(headless: mrml.HeadlessScene) -> None:
    node = headless.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    with pytest.raises(InputError, match="volume_node 'labels' is a labelmap"):
        mrml.volume_from_node(node)
    with pytest.raises(InputError, match=r"volume_node must be a scalar volume node.*got nothing"):
        mrml.volume_from_node(None)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_import_result_exports_back_voxel_for_voxel(headless: mrml.HeadlessScene, tmp_path: Path, name: str) -> None:
    geometry = GEOMETRIES[name]
    ct, labelmap, lesions = synthetic_arrays()
    volume = add_volume(headless.scene, ct, geometry)
    node = mrml.import_result(headless.scene, write_segment_folder(tmp_path / "out", geometry), volume)
    assert _segment_names(node) == ["Liver", "Lesion 1", "Lesion 2"]
    arrays = mrml.labelmap_from_segmentation(node, volume)
    np.testing.assert_array_equal(arrays.labelmap, labelmap)
    np.testing.assert_array_equal(arrays.lesions, lesions)
    assert arrays.lesion_ids == {1: "lesion_1", 2: "lesion_2"}
    assert arrays.edited_lesion_ids == ()
    assert not arrays.liver_edited
    reference = node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())
    assert reference is volume


def test_import_result_names_colours_and_terminology(headless: mrml.HeadlessScene, tmp_path: Path) -> None:
    geometry = GEOMETRIES["oblique"]
    volume = add_volume(headless.scene, synthetic_arrays()[0], geometry)
    node = mrml.import_result(headless.scene, write_segment_folder(tmp_path / "out", geometry), volume)
    segmentation = node.GetSegmentation()
    liver = segmentation.GetSegment("liver")
    lesion = segmentation.GetSegment("lesion_2")
    np.testing.assert_allclose(liver.GetColor(), np.array([221, 130, 101]) / 255.0)
    np.testing.assert_allclose(lesion.GetColor(), np.array([255, 210, 0]) / 255.0)
    assert liver.GetTerminology() == (
        "Segmentation category and type - DICOM master list~SCT^123037004^Anatomical Structure"
        "~SCT^10200004^Liver~^^~~^^~^^"
    )
    assert lesion.GetTerminology() == (
        "Segmentation category and type - DICOM master list~SCT^49755003^Morphologically Altered Structure"
        "~SCT^108369006^Neoplasm~^^~Anatomic codes - DICOM master list~SCT^10200004^Liver~^^"
    )
    # Slicer itself reads the entry back into the same codes.
    import slicer

    entry = slicer.vtkSlicerTerminologyEntry()
    assert slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(lesion.GetTerminology(), entry)
    assert (entry.GetTypeObject().GetCodeValue(), entry.GetCategoryObject().GetCodeValue()) == ("108369006", "49755003")
    assert mrml._tag(lesion, mrml.TAG_LESION_ID) == "2"
    assert mrml._tag(liver, mrml.TAG_LABEL) == "1"


def test_import_result_single_tumor_segment(headless: mrml.HeadlessScene, tmp_path: Path) -> None:
    geometry = GEOMETRIES["anisotropic-flipped"]
    _, labelmap, _ = synthetic_arrays()
    volume = add_volume(headless.scene, synthetic_arrays()[0], geometry)
    folder = write_segment_folder(tmp_path / "out", geometry)
    (folder / "lesions.nrrd").unlink()  # not needed for one tumor segment
    node = mrml.import_result(headless.scene, folder, volume, per_lesion=False)
    assert _segment_names(node) == ["Liver", "Tumor"]
    arrays = mrml.labelmap_from_segmentation(node, volume)
    np.testing.assert_array_equal(arrays.labelmap, labelmap)
    # One tumor segment without a lesion id: all tumor voxels become lesion 1.
    np.testing.assert_array_equal(arrays.lesions, (labelmap == 2).astype(np.uint16))


def test_import_result_refuses_another_grid(headless: mrml.HeadlessScene, tmp_path: Path) -> None:
    geometry = GEOMETRIES["oblique"]
    shifted = Geometry.create(SHAPE_KJI, geometry.spacing_mm, (0.0, 0.0, 0.0), geometry.direction)
    volume = add_volume(headless.scene, synthetic_arrays()[0], shifted)
    with pytest.raises(InputError, match=r"segmentation\.nrrd is not on the grid of the reference volume"):
        mrml.import_result(headless.scene, write_segment_folder(tmp_path / "out", geometry), volume)


def test_import_result_refuses_missing_files_and_mixed_runs(headless: mrml.HeadlessScene, tmp_path: Path) -> None:
    geometry = GEOMETRIES["oblique"]
    volume = add_volume(headless.scene, synthetic_arrays()[0], geometry)
    with pytest.raises(InputError, match=r"lacks segmentation.nrrd, lesions.nrrd: give the folder written by"):
        mrml.import_result(headless.scene, tmp_path / "empty", volume)
    report = measured_report(geometry)
    report["lesions"] = report["lesions"][:1]
    folder = write_segment_folder(tmp_path / "mixed", geometry, report)
    with pytest.raises(InputError, match=r"lesions.nrrd holds lesions \[1, 2\] but report.json lists \[1\]"):
        mrml.import_result(headless.scene, folder, volume)
    assert headless.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0  # nothing half-imported


def test_import_result_goes_under_the_input_study(headless: mrml.HeadlessScene, tmp_path: Path) -> None:
    import slicer

    geometry = GEOMETRIES["oblique"]
    volume = add_volume(headless.scene, synthetic_arrays()[0], geometry)
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(headless.scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Anonymous")
    study = hierarchy.CreateStudyItem(patient, "CT abdomen")
    hierarchy.CreateItem(study, volume)  # done by Slicer's GUI plugins when a DICOM study is loaded
    node = mrml.import_result(headless.scene, write_segment_folder(tmp_path / "out", geometry), volume)
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study
    table = mrml.table_from_report(headless.scene, measured_report(geometry))
    mrml.place_beside(table, volume)
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(table)) == study


def test_table_from_report_equals_report(headless: mrml.HeadlessScene) -> None:
    import json

    report = measured_report(GEOMETRIES["oblique"])
    table = mrml.table_from_report(headless.scene, report, edited_lesion_ids=(2,))
    vtable = table.GetTable()
    assert vtable.GetNumberOfRows() == 2
    headers = [vtable.GetColumnName(c) for c in range(vtable.GetNumberOfColumns())]
    assert headers[:9] == [
        "ID",
        "Segment",
        "Volume",
        "Long axis",
        "Short axis",
        "3D diameter",
        "Mean HU",
        "Confidence",
        "Edited",
    ]
    assert table.GetColumnUnitLabel("Volume") == "ml"
    for row, lesion in enumerate(report["lesions"]):
        cell = {name: vtable.GetValueByName(row, name) for name in headers}
        assert cell["ID"].ToInt() == lesion["id"]
        assert cell["Segment"].ToString() == f"Lesion {lesion['id']}"
        for title, key in (
            ("Volume", "volume_ml"),
            ("Long axis", "long_axis_mm"),
            ("Short axis", "short_axis_mm"),
            ("3D diameter", "max_diameter_3d_mm"),
            ("Mean HU", "mean_hu"),
        ):
            assert cell[title].ToDouble() == lesion[key]
        for axis, title in enumerate(("Centroid L", "Centroid P", "Centroid S")):
            assert cell[title].ToDouble() == lesion["centroid_lps_mm"][axis]
    assert vtable.GetValueByName(0, "Confidence").ToDouble() == 0.75
    assert np.isnan(vtable.GetValueByName(1, "Confidence").ToDouble())
    assert [vtable.GetValueByName(r, "Edited").ToString() for r in range(2)] == ["", "yes"]
    assert json.loads(table.GetAttribute(mrml.ATTRIBUTE_REPORT)) == report


def test_table_from_report_refuses_a_non_report(headless: mrml.HeadlessScene) -> None:
    with pytest.raises(InputError, match=r"report must be a report\.json dictionary with a 'lesions' list"):
        mrml.table_from_report(headless.scene, {"liver": {}})


def _set_mask(node: Any, segment_id: str, mask: np.ndarray, geometry: Geometry) -> None:
    """Replace a segment's labelmap, as a Segment Editor paint stroke would."""
    import slicer

    image = mrml._oriented_image(mask, geometry)
    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(image, node, segment_id)


def test_manual_edit_changes_the_recomputed_report(headless: mrml.HeadlessScene, tmp_path: Path) -> None:
    geometry = GEOMETRIES["oblique"]
    ct, _, lesions = synthetic_arrays()
    volume = add_volume(headless.scene, ct, geometry)
    node = mrml.import_result(headless.scene, write_segment_folder(tmp_path / "out", geometry), volume)
    before = measured_report(geometry)
    grown = lesions == 2
    grown[LESION_2[0], LESION_2[1], 12] = True  # 2 x 2 = 4 voxels painted next to lesion 2
    _set_mask(node, "lesion_2", grown, geometry)
    arrays = mrml.labelmap_from_segmentation(node, volume)
    assert int((arrays.lesions == 2).sum()) == 8 + 4
    assert int((arrays.lesions == 1).sum()) == 27
    assert arrays.edited_lesion_ids == (2,)
    assert not arrays.liver_edited
    after = measure(mrml.volume_from_node(volume), arrays.labelmap, arrays.lesions)
    voxel_ml = geometry.voxel_volume_mm3 / 1000.0
    assert after["lesions"][1]["volume_ml"] == pytest.approx(before["lesions"][1]["volume_ml"] + 4 * voxel_ml, abs=1e-4)
    assert after["lesions"][0]["volume_ml"] == before["lesions"][0]["volume_ml"]
    assert after["tumor_burden"]["total_volume_ml"] == pytest.approx(35 * voxel_ml + 4 * voxel_ml, abs=1e-4)
    # The painted voxels were liver (60 HU): the mean HU of lesion 2 drops from 140 to (8*140 + 4*60) / 12.
    assert after["lesions"][1]["mean_hu"] == pytest.approx((8 * 140 + 4 * 60) / 12, abs=1e-4)
    table = mrml.table_from_report(headless.scene, after, edited_lesion_ids=arrays.edited_lesion_ids)
    assert table.GetTable().GetValueByName(1, "Edited").ToString() == "yes"
    assert table.GetTable().GetValueByName(1, "Volume").ToDouble() == after["lesions"][1]["volume_ml"]


def test_deleted_and_hand_added_lesions_are_renumbered(headless: mrml.HeadlessScene, tmp_path: Path) -> None:
    geometry = GEOMETRIES["anisotropic-flipped"]
    volume = add_volume(headless.scene, synthetic_arrays()[0], geometry)
    node = mrml.import_result(headless.scene, write_segment_folder(tmp_path / "out", geometry), volume)
    node.GetSegmentation().RemoveSegment("lesion_1")
    node.GetSegmentation().AddEmptySegment("hand", "Lesion", [1.0, 0.0, 0.0])
    extra = np.zeros(SHAPE_KJI, dtype=bool)
    extra[2, 4, 4] = True  # one liver voxel painted as a new lesion
    _set_mask(node, "hand", extra, geometry)
    node.GetSegmentation().AddEmptySegment("empty", "Lesion 9", [1.0, 0.0, 0.0])  # empty: not a lesion
    arrays = mrml.labelmap_from_segmentation(node, volume)
    assert arrays.lesion_ids == {1: "lesion_2", 2: "hand"}
    assert arrays.edited_lesion_ids == (2,)  # lesion 2 (ex 2) unchanged; the hand-painted one is new
    assert int((arrays.lesions == 1).sum()) == 8 and int((arrays.lesions == 2).sum()) == 1
    assert arrays.labelmap[2, 4, 4] == 2 and int((arrays.labelmap == 2).sum()) == 9
    report = measure(mrml.volume_from_node(volume), arrays.labelmap, arrays.lesions)
    assert [lesion["id"] for lesion in report["lesions"]] == [1, 2]
    mrml.rename_lesion_segments(node, arrays.lesion_ids)
    segmentation = node.GetSegmentation()
    assert segmentation.GetSegment("lesion_2").GetName() == "Lesion 1"
    assert segmentation.GetSegment("hand").GetName() == "Lesion 2"
    np.testing.assert_allclose(segmentation.GetSegment("hand").GetColor(), np.array([255, 210, 0]) / 255.0)
    # Renaming is stable: exporting again gives the same numbering.
    assert mrml.labelmap_from_segmentation(node, volume).lesion_ids == {1: "lesion_2", 2: "hand"}


def test_import_into_an_existing_node_replaces_its_segments(headless: mrml.HeadlessScene, tmp_path: Path) -> None:
    geometry = GEOMETRIES["oblique"]
    volume = add_volume(headless.scene, synthetic_arrays()[0], geometry)
    folder = write_segment_folder(tmp_path / "out", geometry)
    node = mrml.import_result(headless.scene, folder, volume)
    node.GetSegmentation().AddEmptySegment("extra", "Some other segment", [0.0, 1.0, 0.0])
    again = mrml.import_result(headless.scene, folder, volume, per_lesion=False, segmentation_node=node)
    assert again is node
    assert _segment_names(node) == ["Liver", "Tumor"]
    assert headless.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
    assert mrml.lesion_id_of_segment(node.GetSegmentation().GetSegment("tumor")) is None
