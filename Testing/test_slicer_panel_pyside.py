"""The panel itself, outside Slicer: the REAL .ui (SmoothSegNet/Resources/UI/SmoothSegNet.ui) loaded by PySide6's
QUiLoader under the offscreen Qt platform, real Qt widgets and a real Qt event loop (the jobs' poll timer and the
live table's 500 ms debounce are real QTimers). Only the CTK/qMRML widgets, slicer.app's dialogs and QSettings are
stand-ins (Testing/_slicer_pyside.py, Testing/_slicer_gui_mock.py). A REAL MRML scene (slicer-core) and the REAL
engine in a child process: segment -> edit (the live table follows) -> export, then a screenshot of the panel.

Set SMOOTHSEGNET_PANEL_PNG=docs/panel.png to keep the screenshot (that is how docs/panel.png is made)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PySide6.QtUiTools", reason="PySide6-Essentials is in the test extra")
from _slicer_gui_mock import open_panel
from _slicer_pyside import process_events, pyside_gui

from SmoothSegNetLib import mrml
from SmoothSegNetLib.slicer_support.state import State
from SmoothSegNetLib.volume import Geometry


@pytest.fixture
def panel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    a = np.full((12, 16, 18), -500, np.int16)
    a[2:10, 3:13, 3:15] = 100
    a[3:6, 4:8, 4:8] = 200  # lesion 1: 48 voxels
    a[7:9, 9:11, 11:13] = 200  # lesion 2: 8 voxels
    geometry = Geometry.create(a.shape, (0.9, 0.9, 2.0), (10.0, -20.0, 40.0))
    opened = open_panel(monkeypatch, tmp_path, a, geometry, gui=pyside_gui())
    yield opened
    opened["widget"].cleanup()


def _wait(widget: Any, timeout_s: float = 300) -> None:
    for _ in range(int(timeout_s / 0.2)):
        if not widget.logic.isRunning:
            return
        process_events(0.2)  # the jobs' real QTimer polls the child
    raise AssertionError("the engine did not finish")


def _cell(table: Any, row: int, header: str) -> str:
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    return str(table.item(row, headers.index(header)).text())


def test_panel_segment_edit_export_and_screenshot(panel: dict[str, Any], tmp_path: Path) -> None:
    widget, dialogs = panel["widget"], panel["dialogs"]
    ui = widget.ui
    assert type(ui.resultsCollapsibleButton.widget).__name__ == "ctkCollapsibleButton"  # the stand-in, by name
    assert ui.applyButton.text == "Segment Liver && Tumors" and ui.applyButton.enabled
    widget.onApplyButton()
    assert ui.applyButton.text == "Cancel"
    _wait(widget)
    assert dialogs.errors == [] and widget._state.state == State.IDLE
    table = ui.lesionTableWidget.widget
    assert table.rowCount() == 2 and _cell(table, 1, "Volume (ml)") == f"{8 * 0.9 * 0.9 * 2.0 / 1000:.1f}"

    # An edit as Segment Editor makes it: 4 voxels painted on lesion 2; the live table follows by itself.
    node = widget._parameterNode.outputSegmentation
    grown = mrml.labelmap_from_segmentation(node, panel["volume"]).lesions == 2
    grown[7:9, 9:11, 13] = True
    mrml.set_segment_mask(node, "lesion_2", grown, panel["volume"])
    process_events(1.5)  # past the 500 ms debounce; then the worker thread measures, a Qt timer polls it
    for _ in range(100):
        if widget._live.measureCount:
            break
        process_events(0.1)
    assert widget._live.measureCount == 1
    assert _cell(table, 1, "Edited") == "yes" and _cell(table, 1, "Volume (ml)") == f"{12 * 1.62 / 1000:.1f}"
    assert ui.statusLabel.text == "Table updated after the edit; edited lesions: 2"

    ui.exportDirectoryButton.directory = str(tmp_path / "exports")
    widget.onExportReportButton()
    _wait(widget)
    assert dialogs.errors == [] and widget._state.state == State.IDLE
    exported = widget._exportDirectory()
    assert exported.parent == tmp_path / "exports"
    assert {"report.json", "lesions.nrrd", "segmentation.nrrd"} <= {p.name for p in exported.iterdir()}
    ui.lesionTableWidget.widget.selectRow(1)
    ui.inputVolumeSelector.widget.showNode(panel["volume"])  # the node selectors are stand-ins: show the names
    ui.outputSegmentationSelector.widget.showNode(node)

    root = ui.applyButton.widget.window()
    root.resize(620, 1000)
    root.show()
    process_events(0.3)
    picture = root.grab()
    assert (picture.width(), picture.height()) == (root.width(), root.height()) and root.width() >= 620
    image = picture.toImage()
    colours = {image.pixel(x, y) for x in range(0, root.width(), 7) for y in range(0, root.height(), 7)}
    assert len(colours) > 20  # text and widgets were drawn, not a blank panel
    path = Path(os.environ.get("SMOOTHSEGNET_PANEL_PNG") or tmp_path / "panel.png")
    assert picture.save(str(path))
