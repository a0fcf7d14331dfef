"""Row actions of the lesion table (SmoothSegNetSlicerLib.corrections) on a REAL slicer-core scene:
RECIST lines as markups line nodes (LPS -> RAS), a moved end point as a manual measurement, delete a lesion.
The live table's Qt timer is the only stand-in (``ManualTimer`` of test_slicer_live_table)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _mrml_helpers import LESION_1, LESION_2, LIVER, SHAPE_KJI
from test_slicer_live_table import scene  # noqa: F401  (the fixture: a real scene with the live table on)

from SmoothSegNetLib import mrml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SmoothSegNet"))
from SmoothSegNetSlicerLib.corrections import (
    ManualAxesWatcher,
    addLesionSegment,
    deleteLesion,
    lpsToRas,
    showRecistLines,
)
from SmoothSegNetSlicerLib.live import TAG_MANUAL_AXES


def _current_report(opened: dict[str, Any]) -> dict[str, Any]:
    return opened["runner"].storedReport(opened["runner"].tableFor(opened["node"]))  # type: ignore[no-any-return]


def test_lps_to_ras_flips_first_two_axes() -> None:
    assert lpsToRas([1.5, -2.0, 3.25]) == [-1.5, 2.0, 3.25]


def test_recist_lines_are_line_nodes_at_the_report_end_points_in_ras(scene: dict[str, Any]) -> None:  # noqa: F811
    import slicer

    report = _current_report(scene)
    lines = showRecistLines(scene["headless"].scene, scene["node"], report, 1)
    assert set(lines) == {"long", "short"}
    lesion = report["lesions"][0]
    for axis, node in lines.items():
        assert isinstance(node, slicer.vtkMRMLMarkupsLineNode) and node.GetName() == f"Lesion 1 {axis} axis"
        for n, (left, posterior, superior) in enumerate(lesion[f"{axis}_axis_ends_lps_mm"]):
            assert node.GetNthControlPointPosition(n) == pytest.approx((-left, -posterior, superior), abs=1e-9)
        length = np.linalg.norm(np.subtract(*_ends(node)))
        assert length == pytest.approx(lesion[f"{axis}_axis_mm"], abs=2e-3)  # report rounds to 3 decimals
    again = showRecistLines(scene["headless"].scene, scene["node"], report, 1)  # no second set of nodes
    assert again == lines and scene["headless"].scene.GetNumberOfNodesByClass("vtkMRMLMarkupsLineNode") == 2


def _ends(node: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.array(node.GetNthControlPointPosition(0)), np.array(node.GetNthControlPointPosition(1))


def _centre_ras(report: dict[str, Any], lesion_id: int) -> np.ndarray:
    return np.array(lpsToRas(report["lesions"][lesion_id - 1]["centroid_lps_mm"]))


def test_moving_an_end_point_makes_a_manual_measurement(scene: dict[str, Any]) -> None:  # noqa: F811
    timer, node = scene["timer"], scene["node"]
    before = _current_report(scene)
    lines = showRecistLines(scene["headless"].scene, node, before, 2)
    watcher = ManualAxesWatcher(node, lines)
    centre = _centre_ras(before, 2)  # a 10 mm line through lesion 2's centre: it lies on lesion 2
    lines["long"].SetNthControlPointPosition(0, *(centre - np.array([3.0, 4.0, 0.0])))
    lines["long"].SetNthControlPointPosition(1, *(centre + np.array([3.0, 4.0, 0.0])))
    tag = json.loads(mrml._tag(node.GetSegmentation().GetSegment("lesion_2"), TAG_MANUAL_AXES) or "{}")
    step = np.array([3.0, 4.0, 0.0])
    expected_lps = [lpsToRas(centre - step), lpsToRas(centre + step)]  # RAS -> LPS
    np.testing.assert_allclose(tag["long"], expected_lps, atol=1e-9)
    assert timer.active  # the tag write is an edit of the lesion: the live table re-measures
    timer.fire()
    report, _edited = scene["updates"][-1]
    lesion = report["lesions"][1]
    assert lesion["long_axis_mm"] == 10.0 and lesion["long_axis_source"] == "manual"
    assert lesion["short_axis_mm"] == pytest.approx(np.linalg.norm(np.subtract(*_ends(lines["short"]))), abs=1e-4)
    assert lesion["short_axis_source"] == "manual"
    assert report["lesions"][0]["long_axis_source"] == "automatic" and report["lesions"][0]["long_axis_mm"] > 0
    table = scene["runner"].tableFor(node).GetTable()
    assert table.GetValue(1, 3).ToDouble() == 10.0  # long axis column
    assert table.GetValue(1, 8).ToString() == "manual axes" and table.GetValue(0, 8).ToString() == ""
    assert report["tumor_burden"]["largest_long_axis_mm"] == max(x["long_axis_mm"] for x in report["lesions"])
    # The line dragged onto lesion 1: it is not lesion 2's any more; dropped with a warning, never moved to 1.
    centre_1 = _centre_ras(before, 1)
    lines["long"].SetNthControlPointPosition(0, *(centre_1 - np.array([0.2, 0.1, 0.0])))
    lines["long"].SetNthControlPointPosition(1, *(centre_1 + np.array([0.2, 0.1, 0.0])))
    timer.fire()
    report, _edited = scene["updates"][-1]
    assert report["lesions"][1]["long_axis_source"] == "automatic"
    assert report["lesions"][1]["long_axis_mm"] == before["lesions"][1]["long_axis_mm"]
    assert report["lesions"][0]["long_axis_source"] == "automatic"
    assert any("manual RECIST line(s) of lesion(s) 2 (long) were dropped" in w for w in report["warnings"])
    watcher.stop()


def test_delete_lesion_gives_voxels_to_liver_and_closes_the_gap(scene: dict[str, Any]) -> None:  # noqa: F811
    timer, node, volume = scene["timer"], scene["node"], scene["volume"]
    before = _current_report(scene)
    showRecistLines(scene["headless"].scene, node, before, 1)
    deleteLesion(node, volume, 1)
    assert scene["headless"].scene.GetNumberOfNodesByClass("vtkMRMLMarkupsLineNode") == 0  # its lines went too
    timer.fire()
    arrays = mrml.labelmap_from_segmentation(node, volume)
    expected_labelmap = np.zeros(SHAPE_KJI, np.uint8)
    expected_labelmap[LIVER] = 1
    expected_labelmap[LESION_2] = 2
    expected_lesions = np.zeros(SHAPE_KJI, np.uint16)
    expected_lesions[LESION_2] = 1  # the former lesion 2 is lesion 1 now
    assert np.array_equal(arrays.labelmap, expected_labelmap) and np.array_equal(arrays.lesions, expected_lesions)
    assert arrays.labelmap[LESION_1].tolist() == np.ones((3, 3, 3)).tolist()  # lesion 1's voxels are liver
    report, _edited = scene["updates"][-1]
    assert report["tumor_burden"]["count"] == 1 and report["lesions"][0]["voxel_count"] == 8
    assert report["liver"]["volume_ml"] == before["liver"]["volume_ml"]  # liver volume includes tumor
    assert node.GetSegmentation().GetSegment("lesion_2").GetName() == "Lesion 1"
    with pytest.raises(ValueError, match="lesion 5 has no segment"):
        deleteLesion(node, volume, 5)


def test_add_lesion_hook_adds_the_next_lesion_measured(scene: dict[str, Any]) -> None:  # noqa: F811
    timer, node, volume = scene["timer"], scene["node"], scene["volume"]
    mask = np.zeros(SHAPE_KJI, bool)
    mask[2:4, 8:10, 4:6] = True  # 8 voxels in the liver, touching no lesion
    segment_id = addLesionSegment(node, volume, mask)
    timer.fire()
    report, edited = scene["updates"][-1]
    assert [lesion["voxel_count"] for lesion in report["lesions"]] == [27, 8, 8] and edited == (3,)
    assert node.GetSegmentation().GetSegment(segment_id).GetName() == "Lesion 3"
    assert np.array_equal(mrml.labelmap_from_segmentation(node, volume).lesions == 3, mask)
    with pytest.raises(ValueError, match="holds no voxel"):
        addLesionSegment(node, volume, np.zeros(SHAPE_KJI, bool))
