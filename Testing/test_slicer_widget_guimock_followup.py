"""GUI MOCK test of the "Compare with prior study" section: the panel code (SmoothSegNet.py + followup_panel.py)
runs with stand-in Qt widgets (Testing/_slicer_gui_mock.py) on a REAL MRML scene (slicer-core) holding two
phantom visits of one patient, and the REAL follow-up in a child process. Only Slicer's GUI is mocked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _followup_helpers import GRID, _visit, import_study
from _slicer_gui_mock import open_panel, poll_until_done

from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.phantom.followup import make_followup_phantom
from SmoothSegNetLib.slicer_support.followup import TABLE_COLUMNS
from SmoothSegNetLib.slicer_support.state import State
from SmoothSegNetLib.volume import Geometry


@pytest.fixture
def panel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    a = np.full((6, 8, 8), -500, np.int16)
    opened = open_panel(monkeypatch, tmp_path, a, Geometry.create(a.shape, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0)))
    scene = opened["scene"]
    opened["layout"] = scene.AddNewNodeByClass("vtkMRMLLayoutNode")  # Slicer's application logic has one
    prior = _visit(tmp_path, "prior", make_phantom(6, *GRID, phase="arterial"))
    current = _visit(tmp_path, "current", make_followup_phantom(6, 1, *GRID, phase="arterial"))
    opened["prior"] = import_study(scene, prior, "prior CT")
    opened["current"] = import_study(scene, current, "current CT")
    yield opened
    opened["widget"].cleanup()


def _select_studies(panel: dict[str, Any]) -> None:
    p = panel["widget"]._parameterNode
    p.inputVolume, p.outputSegmentation = panel["current"]
    p.priorVolume, p.priorSegmentation = panel["prior"]
    panel["widget"].ui.phaseComboBox.currentText = "arterial"


def test_guimock_compare_table_click_export(panel: dict[str, Any], tmp_path: Path) -> None:
    widget, dialogs, layout = panel["widget"], panel["dialogs"], panel["layout"]
    ui = widget.ui
    widget._parameterNode.priorVolume = None
    assert not ui.compareButton.enabled
    assert ui.compareButton.toolTip.startswith("Segment the current CT first")
    _select_studies(panel)
    assert ui.compareButton.enabled and not ui.exportFollowupButton.enabled
    widget.followupPanel.onCompareButton()
    assert widget._state.state == State.RUNNING and widget.logic.isRunning  # runs in the child, not here
    assert ui.compareButton.text == "Cancel" and ui.followupProgressBar.visible
    assert ui.applyButton.toolTip == "Stop the follow-up comparison (kills the worker process)"
    assert not ui.recomputeButton.enabled and not ui.exportReportButton.enabled
    poll_until_done(widget)
    assert dialogs.errors == [] and widget._state.state == State.IDLE
    assert ui.compareButton.text == "Compare with prior study" and not ui.followupProgressBar.visible
    assert ui.followupProgressBar.value == 100 and ui.exportFollowupButton.enabled

    result = widget.logic.followupResult
    data = json.loads((result.outputDir / "followup.json").read_text())
    table = ui.followupTableWidget
    assert table.headers == [title for _key, title in TABLE_COLUMNS]
    shown = [[table.item(r, c).text() for c in range(len(TABLE_COLUMNS))] for r in range(len(table.rows))]
    wanted = [
        [
            "" if (v := lesion[key]) is None else f"{v:.1f}" if isinstance(v, float) else str(v)
            for key, _t in TABLE_COLUMNS
        ]
        for lesion in data["lesions"]
    ]
    assert shown == wanted and [row[0] for row in shown] == ["L1", "L2", "L3"]
    recist, mrecist = data["recist"], data["mrecist"]
    change = data["volumetric"]["change_from_baseline_percent"][-1]
    assert ui.responseLabel.text == (
        f"RECIST 1.1: {recist['response']} ({recist['reason']})\n"
        f"mRECIST: {mrecist['response']} ({mrecist['reason']})\n"
        f"Total tumour volume: {change:+.1f} %"
    )
    assert (recist["response"], mrecist["response"]) == ("SD", "PR")

    from SmoothSegNetSlicerLib.followup_logic import LAYOUT_ID, VIEWS

    assert layout.GetViewArrangement() == LAYOUT_ID
    scene = panel["scene"]
    table.selected = [0]
    widget.followupPanel.onTrackedLesionSelected()
    for name, study, _orientation, _label in VIEWS:
        sliceNode = scene.GetSingletonNode(name, "vtkMRMLSliceNode")
        left, posterior, superior = data["lesions"][0][f"{study}_centroid_lps_mm"]
        matrix = sliceNode.GetSliceToRAS()
        assert [matrix.GetElement(i, 3) for i in range(3)] == pytest.approx([-left, -posterior, superior], abs=1e-9)

    ui.followupExportDirectoryButton.directory = str(tmp_path / "exports")
    widget.followupPanel.onExportFollowupButton()
    outdir = tmp_path / "exports" / "current CT-SmoothSegNet-followup"
    assert dialogs.errors == [] and ui.followupStatusLabel.text == f"Wrote 4 files into {outdir}"
    assert sorted(p.name for p in outdir.iterdir()) == ["followup.csv", "followup.json", "followup.png", "transforms"]


def test_guimock_cancel_the_comparison(panel: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    widget = panel["widget"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the job's folders go
    _select_studies(panel)
    widget.followupPanel.onCompareButton()
    widget.followupPanel.onCompareButton()  # the section's button is Cancel now
    assert widget._state.state == State.CANCELLING and not widget.ui.compareButton.enabled
    poll_until_done(widget)
    assert widget._state.state == State.IDLE and widget.ui.followupStatusLabel.text == "Cancelled"
    assert widget.logic.followupResult is None and widget.ui.followupTableWidget.rows == []
    assert panel["dialogs"].errors == [] and widget.ui.compareButton.enabled
    assert list(scratch.iterdir()) == []  # the job folder and any partial follow-up output are gone


def test_guimock_prior_folder_without_report_is_one_error(panel: dict[str, Any], tmp_path: Path) -> None:
    widget, dialogs = panel["widget"], panel["dialogs"]
    _select_studies(panel)
    widget._parameterNode.priorSegmentation = None
    widget.ui.priorFolderLineEdit.text = str(tmp_path)
    widget.followupPanel.updateView()
    assert widget.ui.compareButton.enabled  # a folder stands in for the prior segmentation
    widget.followupPanel.onCompareButton()
    assert widget._state.state == State.FAILED and not widget.logic.isRunning
    assert len(dialogs.errors) == 1 and "has no report.json" in dialogs.errors[0]
    assert widget.ui.followupStatusLabel.text.startswith("Failed: prior output folder")


def test_guimock_cancel_while_the_child_registers(
    panel: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel once the child is at work (SIGTERM to its process tree): no result, no folder left."""
    import tempfile
    import time

    widget = panel["widget"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    _select_studies(panel)
    widget.followupPanel.onCompareButton()
    deadline = time.monotonic() + 120
    while "register" not in widget.ui.followupStatusLabel.text.lower():
        assert time.monotonic() < deadline and widget.logic.isRunning, widget.ui.followupStatusLabel.text
        widget.logic._poll()
        time.sleep(0.05)
    assert widget.logic._child is not None  # the child runs: this cancel kills it
    widget.followupPanel.onCompareButton()
    poll_until_done(widget)
    assert widget._state.state == State.IDLE and widget.ui.followupStatusLabel.text == "Cancelled"
    assert widget.logic.followupResult is None and panel["dialogs"].errors == []
    assert list(scratch.iterdir()) == []
