"""GUI MOCK test of the module's widget: SmoothSegNet.py's panel code runs with stand-in Qt widgets
(Testing/_slicer_gui_mock.py) on a REAL MRML scene (slicer-core) and the REAL engine in a child process.
Only Slicer's GUI classes are mocked, because Slicer's GUI cannot run here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _slicer_gui_mock import open_panel, poll_until_done

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
    opened = open_panel(monkeypatch, tmp_path, a, geometry)
    yield opened
    opened["widget"].cleanup()  # as Slicer does when the module is closed: stops observing the scene


def test_guimock_module_description(panel: dict[str, Any]) -> None:
    descriptor = panel["descriptor"]
    assert descriptor.title == "SmoothSegNet" and descriptor.categories == ["Segmentation"]
    assert "synthetic phantoms only" in descriptor.helpText


def test_guimock_defaults_and_disabled_reason(panel: dict[str, Any]) -> None:
    widget = panel["widget"]
    ui = widget.ui
    assert widget._parameterNode.inputVolume is panel["volume"]  # the most recent CT, not the labelmap
    assert ui.applyButton.text == "Segment Liver && Tumors" and ui.applyButton.enabled
    assert not ui.recomputeButton.enabled and not ui.exportDicomButton.enabled
    assert ui.lesionTableWidget.headers[:3] == ["ID", "Segment", "Volume (ml)"]
    assert 1 in ui.lesionTableWidget.hidden  # the segment-name column is hidden
    widget._parameterNode.inputVolume = None
    assert not ui.applyButton.enabled
    assert ui.applyButton.toolTip.startswith("Select an input CT volume")


def test_guimock_segment_table_click_recompute(panel: dict[str, Any]) -> None:
    widget, dialogs = panel["widget"], panel["dialogs"]
    ui = widget.ui
    widget.onApplyButton()
    assert widget._state.state == State.RUNNING
    assert ui.applyButton.text == "Cancel" and ui.progressBar.visible and not ui.inputVolumeSelector.enabled
    poll_until_done(widget)
    assert dialogs.errors == [] and dialogs.questions == []  # all dependencies present: nothing asked
    assert widget._state.state == State.IDLE
    assert ui.progressBar.value == 100 and ui.statusLabel.text.startswith("Done.")
    node = widget._parameterNode.outputSegmentation
    assert node is not None and node.GetSegmentation().GetNumberOfSegments() == 3
    table = ui.lesionTableWidget
    assert [table.cell(r, "ID") for r in range(len(table.rows))] == ["1", "2"]
    assert table.cell(0, "Volume (ml)") == f"{48 * 0.9 * 0.9 * 2.0 / 1000:.1f}"
    assert ui.summaryLabel.text.startswith("Liver ")
    assert ui.recomputeButton.enabled and ui.exportReportButton.enabled
    assert not ui.exportDicomButton.enabled  # not loaded from DICOM

    table.selected = [1]
    widget.onLesionSelected()
    left, posterior, superior = widget._report["lesions"][1]["centroid_lps_mm"]
    assert dialogs.jumps == [(-left, -posterior, superior, True)]

    arrays = mrml.labelmap_from_segmentation(node, panel["volume"])
    grown = arrays.lesions == 2
    grown[7:9, 9:11, 13] = True  # 4 voxels painted in Segment Editor
    import slicer

    geometry = mrml.geometry_from_node(panel["volume"])
    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        mrml._oriented_image(grown, geometry), node, "lesion_2"
    )
    timer = widget._live._timer  # the live table's debounce timer (a stand-in QTimer: the test fires it)
    assert timer.active and timer.interval == 500 and table.cell(1, "Edited") == ""
    timer.active = False
    timer.slot()
    widget._live.wait(60)  # the measurement runs in the worker thread; its result is applied here
    assert table.cell(1, "Edited") == "yes" and table.cell(0, "Edited") == ""
    assert table.cell(1, "Volume (ml)") == f"{12 * 0.9 * 0.9 * 2.0 / 1000:.1f}"  # 8 + 4 painted voxels
    assert ui.statusLabel.text == "Table updated after the edit; edited lesions: 2"
    widget.onRecomputeButton()  # the button stays (scripts): the same numbers from the engine's child
    assert widget._state.state == State.RUNNING  # measured in the engine's child, not on the GUI thread
    poll_until_done(widget)
    assert dialogs.errors == [] and widget._state.state == State.IDLE
    assert table.cell(1, "Edited") == "yes" and table.cell(0, "Edited") == ""
    assert ui.statusLabel.text == "Report recomputed; edited lesions: 2"


def test_guimock_cancel(panel: dict[str, Any]) -> None:
    widget = panel["widget"]
    widget.onApplyButton()
    widget.onApplyButton()  # the same button is Cancel now
    assert widget._state.state == State.CANCELLING and not widget.ui.applyButton.enabled
    poll_until_done(widget)
    assert widget._state.state == State.IDLE and widget.ui.statusLabel.text == "Cancelled"
    assert widget._parameterNode.outputSegmentation is None  # nothing imported
    assert panel["dialogs"].errors == []


def test_guimock_bad_input_is_shown_by_the_widget(panel: dict[str, Any]) -> None:
    widget, dialogs = panel["widget"], panel["dialogs"]
    transform = panel["scene"].AddNewNodeByClass("vtkMRMLLinearTransformNode", "Registration")
    panel["volume"].SetAndObserveTransformNodeID(transform.GetID())
    widget._updateView()  # inside Slicer the transform change reaches the panel through the parameter node
    assert not widget.ui.applyButton.enabled and "under a transform" in widget.ui.applyButton.toolTip
    widget.onApplyButton()  # a script may still call it: the logic refuses with a clear message
    assert widget._state.state == State.FAILED
    assert len(dialogs.errors) == 1 and "Harden transform" in dialogs.errors[0]
    assert not widget.ui.applyButton.enabled  # still under the transform
    panel["volume"].SetAndObserveTransformNodeID(None)
    widget._updateView()
    assert widget.ui.applyButton.enabled and widget.ui.applyButton.toolTip.startswith("Last run failed:")


def test_guimock_the_plausibility_check_guards_the_run(panel: dict[str, Any]) -> None:
    """Issue 17: by default the engine refuses an image that is not a CT of a body (this 16 x 14 mm synthetic
    one), and the panel says how to override it; the checkbox passes the override to the engine."""
    widget, dialogs = panel["widget"], panel["dialogs"]
    assert widget.ui.skipPlausibilityCheckBox is not None
    widget._parameterNode.skipPlausibilityCheck = False  # the module's default
    widget.onApplyButton()
    poll_until_done(widget)
    assert widget._state.state == State.FAILED and widget._parameterNode.outputSegmentation is None
    assert len(dialogs.errors) == 1 and "does not look like a CT of a body" in dialogs.errors[0]
    widget._parameterNode.skipPlausibilityCheck = True
    widget.onApplyButton()
    poll_until_done(widget)
    assert widget._state.state == State.IDLE and len(dialogs.errors) == 1
    report = widget._report
    assert report is not None and any("plausibility check" in w for w in report["warnings"])


def test_guimock_runtime_choice_reaches_the_engine(panel: dict[str, Any]) -> None:
    """Issue 14: the panel's Runtime choice is the engine's --runtime. The test models have no ONNX graph, so
    'onnx' is refused by the engine with its own message, and 'torch' runs them."""
    widget, dialogs = panel["widget"], panel["dialogs"]
    assert widget._parameterNode.runtime == "auto"
    widget._parameterNode.runtime = "onnx"
    widget.onApplyButton()
    poll_until_done(widget)
    assert widget._state.state == State.FAILED
    assert len(dialogs.errors) == 1 and "has no ONNX graph" in dialogs.errors[0]
    widget._parameterNode.runtime = "torch"
    widget.onApplyButton()
    poll_until_done(widget)
    assert widget._state.state == State.IDLE and len(dialogs.errors) == 1


def test_guimock_download_failure_is_shown_and_the_panel_recovers(panel: dict[str, Any]) -> None:
    widget, dialogs = panel["widget"], panel["dialogs"]
    ui = widget.ui
    widget.onDownloadModelsButton()
    assert ui.modelProgressBar.visible and not ui.downloadModelsButton.enabled
    assert not ui.applyButton.enabled and ui.applyButton.toolTip == "Wait until the model download has finished"
    poll_until_done(widget)
    # The paper-configuration cards carry no URL (their weights are not public): one clear error, then idle.
    assert (
        len(dialogs.errors) == 1 and "has no weights.url" in dialogs.errors[0] and "models install" in dialogs.errors[0]
    )
    assert ui.downloadModelsButton.enabled and not ui.modelProgressBar.visible and ui.applyButton.enabled


def test_guimock_the_slicer_selftest_passes(panel: dict[str, Any]) -> None:
    """The module's own self-test (meant for Slicer) run here on the stand-ins: its code is at least sound."""
    test = panel["module"].SmoothSegNetTest()
    test.runTest()
    assert test.messages[-1] == "Self-test passed"


def test_guimock_export_folder_from_a_volume_name_with_a_slash_and_colon(panel: dict[str, Any], tmp_path: Path) -> None:
    """Issue 12 item 9: the export folder is one folder whatever the volume is called."""
    widget, dialogs = panel["widget"], panel["dialogs"]
    widget.onApplyButton()
    poll_until_done(widget)
    panel["volume"].SetName("6: Abdomen 1/2")
    widget.ui.exportDirectoryButton.directory = str(tmp_path / "exports")
    widget.onExportReportButton()
    poll_until_done(widget)
    assert dialogs.errors == []
    assert [p.name for p in (tmp_path / "exports").iterdir()] == ["6_ Abdomen 1_2-SmoothSegNet"]
    assert (tmp_path / "exports" / "6_ Abdomen 1_2-SmoothSegNet" / "report.json").is_file()


def test_guimock_failure_details_reach_the_error_dialog(panel: dict[str, Any], tmp_path: Path) -> None:
    """Issue 12 item 9: what the engine said (its log) is in the dialog's details, not dropped by the cleanup."""
    import functools

    widget, dialogs = panel["widget"], panel["dialogs"]
    missing = tmp_path / "no-such-card.json"
    widget.logic.process = functools.partial(widget.logic.process, tumorModel=str(missing))
    widget.onApplyButton()
    poll_until_done(widget)
    assert widget._state.state == State.FAILED
    assert len(dialogs.errors) == 1 and "bad input" in dialogs.errors[0]
    assert dialogs.details[0] is not None and "error:" in dialogs.details[0] and str(missing) in dialogs.details[0]


def test_guimock_export_runs_off_the_gui_thread_with_progress(panel: dict[str, Any], tmp_path: Path) -> None:
    """Issue 15 "never freeze": the button returns at once; measuring and writing run in the engine's child."""
    widget, dialogs = panel["widget"], panel["dialogs"]
    ui = widget.ui
    widget.onApplyButton()
    poll_until_done(widget)
    ui.exportDirectoryButton.directory = str(tmp_path / "exports")
    widget.onExportReportButton()
    outdir = tmp_path / "exports" / "CT abdomen-SmoothSegNet"
    assert widget._state.state == State.RUNNING and widget.logic.isRunning  # not done on this thread
    assert ui.applyButton.text == "Cancel" and ui.applyButton.toolTip == "Stop the export (kills the worker process)"
    assert not ui.exportReportButton.enabled and not ui.recomputeButton.enabled
    assert not outdir.exists()
    poll_until_done(widget)
    assert dialogs.errors == [] and widget._state.state == State.IDLE
    assert ui.statusLabel.text == f"Wrote 5 files into {outdir}" and ui.progressBar.value == 100
    assert sorted(p.name for p in outdir.iterdir()) == [
        "lesions.nrrd",
        "overview.png",
        "report.csv",
        "report.json",
        "segmentation.nrrd",
    ]


def test_guimock_cancel_an_export_leaves_nothing(panel: dict[str, Any], tmp_path: Path) -> None:
    widget, dialogs = panel["widget"], panel["dialogs"]
    widget.onApplyButton()
    poll_until_done(widget)
    widget.ui.exportDirectoryButton.directory = str(tmp_path / "exports")
    widget.onExportReportButton()
    widget.onApplyButton()  # Cancel
    assert widget._state.state == State.CANCELLING
    poll_until_done(widget)
    assert widget._state.state == State.IDLE and widget.ui.statusLabel.text == "Cancelled"
    assert dialogs.errors == [] and not (tmp_path / "exports").exists()


def test_guimock_input_ct_is_written_uncompressed_by_a_worker_thread(
    panel: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child's input CT: gzip NRRD on the GUI thread took 3.7 s for 400 slices."""
    import threading

    from SmoothSegNetLib.io import writers

    calls: list[tuple[str, bool]] = []
    real = writers.write_volume

    def recording(path: Any, ct: Any, protect: Any = (), **kwargs: Any) -> Any:
        calls.append((threading.current_thread().name, kwargs.get("compress", True)))
        written = real(path, ct, protect, **kwargs)
        assert b"encoding: raw" in Path(written).read_bytes()[:1000]
        return written

    monkeypatch.setattr(writers, "write_volume", recording)
    widget = panel["widget"]
    widget.onApplyButton()
    poll_until_done(widget)
    assert panel["dialogs"].errors == [] and widget._parameterNode.outputSegmentation is not None
    assert calls == [("SmoothSegNet-prepare", False)]
    assert threading.main_thread().name != "SmoothSegNet-prepare"
