"""GUI MOCK test of the panel's correction tools (issue 15): the candidates table (accept / reject), RECIST lines
and delete on the lesion table, the live table after each. SmoothSegNet.py runs with stand-in Qt widgets
(Testing/_slicer_gui_mock.py; the live table's QTimer is the stand-in ``FakeTimer``, fired by the test) on a REAL
MRML scene (slicer-core). The result is imported from a ``segment``-like folder with candidates.nrrd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _mrml_helpers import GEOMETRIES, SHAPE_KJI, synthetic_arrays, write_segment_folder
from _slicer_gui_mock import open_panel
from test_slicer_candidates import CANDIDATE_1, CANDIDATE_2

from SmoothSegNetLib.io.writers import write_labelmap
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.report.candidates import Candidates
from SmoothSegNetLib.volume import CTVolume


@pytest.fixture
def reviewed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    geometry = GEOMETRIES["oblique"]
    ct, labelmap, lesions = synthetic_arrays()
    opened = open_panel(monkeypatch, tmp_path, ct, geometry)
    instances = np.zeros(SHAPE_KJI, np.uint16)
    instances[CANDIDATE_1], instances[CANDIDATE_2] = 1, 2
    reasons = {1: "below_min_lesion_confidence", 2: "below_min_lesion_ml"}
    report = measure(CTVolume(ct, geometry), labelmap, lesions, candidates=Candidates(instances, reasons, {1: 0.61}))
    folder = write_segment_folder(tmp_path / "out", geometry, report)
    write_labelmap(folder / "candidates.nrrd", instances, geometry)
    widget = opened["widget"]
    node, _table, _report = widget.logic.importResult(folder, opened["volume"])
    widget._parameterNode.outputSegmentation = node
    widget._showResult(node)
    widget._updateView()
    yield {**opened, "node": node}
    widget.cleanup()


def _fire_live_timer(widget: Any) -> None:
    timer = widget._live._timer
    assert timer.active, "no edit was seen"
    timer.active = False
    timer.slot()
    widget._live.wait(60)  # the measurement runs in the worker thread; its result is applied here


def test_guimock_candidates_accept_and_reject(reviewed: dict[str, Any]) -> None:
    widget, ui = reviewed["widget"], reviewed["widget"].ui
    candidates, lesions = ui.candidateTableWidget, ui.lesionTableWidget
    assert ui.candidatesLabel.text == "Candidates to review: 2" and ui.acceptCandidateButton.enabled
    assert [candidates.cell(r, "ID") for r in range(2)] == ["1", "2"]
    assert candidates.cell(0, "Confidence") == "0.61" and candidates.cell(1, "Confidence") == "—"
    assert candidates.cell(0, "Reason") == "network confidence under the floor"
    assert candidates.cell(1, "Reason") == "under the size floor"
    assert len(lesions.rows) == 2
    candidates.selected = [0]
    widget._reviewCandidate(accept=True)
    assert ui.statusLabel.text == "Candidate 1 accepted as a lesion"
    _fire_live_timer(widget)
    assert [lesions.cell(r, "ID") for r in range(3)] == ["1", "2", "3"]
    assert lesions.cell(2, "Edited") == "yes"
    assert ui.candidatesLabel.text == "Candidates to review: 1" and candidates.cell(0, "ID") == "2"
    candidates.selected = [0]
    widget._reviewCandidate(accept=False)
    assert ui.candidatesLabel.text == "Candidates to review: none" and candidates.rows == []
    assert reviewed["dialogs"].errors == []


def test_guimock_recist_lines_and_delete(reviewed: dict[str, Any]) -> None:
    widget, ui, scene = reviewed["widget"], reviewed["widget"].ui, reviewed["scene"]
    lesions = ui.lesionTableWidget
    lesions.selected = [0]
    widget.onShowRecistButton()
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsLineNode") == 2
    widget.onDeleteLesionButton()
    assert ui.statusLabel.text == "Lesion 1 deleted; its voxels are liver again"
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsLineNode") == 0
    _fire_live_timer(widget)
    assert [lesions.cell(r, "ID") for r in range(len(lesions.rows))] == ["1"]
    assert lesions.cell(0, "Volume (ml)") == f"{8 * GEOMETRIES['oblique'].voxel_volume_mm3 / 1000:.1f}"
    assert reviewed["dialogs"].errors == []


def test_guimock_moved_recist_line_reaches_table_and_export(reviewed: dict[str, Any], tmp_path: Path) -> None:
    """A RECIST end point moved by hand: the panel's table shows the line's length, and so does the export."""
    import json

    from _slicer_gui_mock import poll_until_done
    from SmoothSegNetSlicerLib.corrections import lpsToRas, recistLineNodes

    widget, ui = reviewed["widget"], reviewed["widget"].ui
    lesions = ui.lesionTableWidget
    lesions.selected = [0]
    widget.onShowRecistButton()
    centre = np.array(lpsToRas(widget._report["lesions"][0]["centroid_lps_mm"]))
    segment_id = reviewed["node"].GetSegmentation().GetSegmentIdBySegmentName("Lesion 1")
    long_line = recistLineNodes(reviewed["scene"], segment_id)["long"]
    half = np.array([1.2, 1.6, 0.0])  # a 4.0 mm line through the centre
    long_line.SetNthControlPointPosition(0, *(centre - half))
    long_line.SetNthControlPointPosition(1, *(centre + half))
    _fire_live_timer(widget)
    assert lesions.cell(0, "Long axis (mm)") == "4.0" and lesions.cell(0, "Edited") == "manual axes"
    ui.exportDirectoryButton.directory = str(tmp_path / "exports")
    widget.onExportReportButton()
    poll_until_done(widget)
    assert reviewed["dialogs"].errors == []
    (folder,) = (tmp_path / "exports").iterdir()
    exported = json.loads((folder / "report.json").read_text(encoding="utf-8"))["lesions"][0]
    assert (exported["long_axis_mm"], exported["long_axis_source"]) == (4.0, "manual")
    assert exported["short_axis_source"] == "manual"  # both lines of the lesion are the user's now
