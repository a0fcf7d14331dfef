"""GUI MOCK test of the panel's "Add lesion at point" (issue 15): SmoothSegNet.py runs with stand-in Qt widgets
(Testing/_slicer_gui_mock.py: the timers are stand-ins fired by the test; markups place mode, GUI interaction, is
recorded and the click is the point the test adds to the list) on a REAL MRML scene (slicer-core), with the
engine's real PointSegmenter (the bundled demo tumor card). The CT and the result are those of
test_slicer_add_at_point.py: lesion 1 segmented, a second lesion missed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _slicer_gui_mock import open_panel
from test_slicer_add_at_point import GEOMETRIES, MISSED_KJI, _ras, write_case

from SmoothSegNetLib import mrml
from SmoothSegNetLib.evaluation.add_lesion_eval import dice


@pytest.fixture
def panel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    geometry = GEOMETRIES["mirrored in-plane"]
    folder = tmp_path / "out"
    arrays = write_case(folder, geometry)
    opened = open_panel(monkeypatch, tmp_path, arrays["ct"], geometry)
    widget = opened["widget"]
    node, _table, _report = widget.logic.importResult(folder, opened["volume"])
    widget._parameterNode.outputSegmentation = node
    widget._showResult(node)
    widget._updateView()
    yield {**opened, "node": node, "geometry": geometry, "missed": arrays["missed"]}
    widget.cleanup()


def test_guimock_add_lesion_at_point_adds_a_measured_row(panel: dict[str, Any]) -> None:
    from SmoothSegNetSlicerLib.review_section import ADD_POINT_NODE_NAME

    widget, ui, scene = panel["widget"], panel["widget"].ui, panel["scene"]
    assert ui.addLesionButton.enabled and len(ui.lesionTableWidget.rows) == 1
    ui.addLesionButton.emit("clicked(bool)", False)
    assert ui.statusLabel.text == "Click inside the missed lesion in a slice view"
    points = scene.GetFirstNodeByName(ADD_POINT_NODE_NAME)
    assert panel["dialogs"].place_mode == [("active", points), ("place", False)]
    import vtk

    points.AddControlPoint(vtk.vtkVector3d(*_ras(panel["geometry"], MISSED_KJI)))  # the user's click
    widget._adder.wait(60)  # the search runs in the worker thread; its result is applied here
    assert ui.statusLabel.text.startswith("Lesion added (") and points.GetNumberOfControlPoints() == 0
    arrays = mrml.labelmap_from_segmentation(panel["node"], panel["volume"])
    assert dice(arrays.lesions == 2, panel["missed"]) >= 0.9
    timer = widget._live._timer  # the live table saw the new segment
    assert timer.active
    timer.active = False
    timer.slot()
    widget._live.wait(60)
    table = ui.lesionTableWidget
    assert [table.cell(r, "ID") for r in range(2)] == ["1", "2"] and table.cell(1, "Edited") == "yes"
    assert panel["dialogs"].errors == []
    # A second click, outside the liver: refused, said, nothing added.
    points.AddControlPoint(vtk.vtkVector3d(*_ras(panel["geometry"], (20, 60, 2))))
    widget._adder.wait(60)
    assert "outside the liver" in ui.statusLabel.text
    assert int(mrml.labelmap_from_segmentation(panel["node"], panel["volume"]).lesions.max()) == 2
    widget.cleanup()  # the point list goes with the panel
    assert scene.GetFirstNodeByName(ADD_POINT_NODE_NAME) is None


def test_guimock_add_lesion_needs_a_result(panel: dict[str, Any]) -> None:
    widget = panel["widget"]
    widget._parameterNode.outputSegmentation = None
    widget.onAddLesionButton()
    assert widget.ui.statusLabel.text == "Segment the CT first (or choose its segmentation)"
    assert panel["dialogs"].place_mode == []


def test_guimock_point_placed_after_the_segmentation_was_chosen_away(panel: dict[str, Any]) -> None:
    """Place mode started, then the output segmentation deselected before the click: the click is dropped with a
    message, no search starts, and the segments are unchanged."""
    import vtk
    from SmoothSegNetSlicerLib.review_section import ADD_POINT_NODE_NAME

    widget, scene = panel["widget"], panel["scene"]
    before = mrml.labelmap_from_segmentation(panel["node"], panel["volume"]).lesions.copy()
    widget.ui.addLesionButton.emit("clicked(bool)", False)
    points = scene.GetFirstNodeByName(ADD_POINT_NODE_NAME)
    widget._parameterNode.outputSegmentation = None
    points.AddControlPoint(vtk.vtkVector3d(*_ras(panel["geometry"], MISSED_KJI)))
    assert widget.ui.statusLabel.text == "Segment the CT first (or choose its segmentation): nothing was added"
    assert widget._adder is None and points.GetNumberOfControlPoints() == 0
    assert (mrml.labelmap_from_segmentation(panel["node"], panel["volume"]).lesions == before).all()
