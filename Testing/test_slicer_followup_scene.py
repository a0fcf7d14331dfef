"""The "Compare with prior study" logic (FollowupJobs of SmoothSegNetRunner) on a REAL MRML scene (slicer-core):
two phantom visits of one patient (the baseline and its ``--followup-of`` visit) imported as CT + segmentation,
the follow-up run in the REAL child process (``waitForCompletion``), then the table, the centres of both
studies on a row click (LPS -> RAS), the responses and the export checked against followup.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _followup_helpers import GRID, _visit, import_study

from SmoothSegNetLib import mrml
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.phantom.followup import make_followup_phantom
from SmoothSegNetLib.slicer_support.followup import TABLE_COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SmoothSegNet"))
from SmoothSegNetSlicerLib.followup_logic import LAYOUT_ID, VIEWS
from SmoothSegNetSlicerLib.logic import SmoothSegNetRunner


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real comparison of two scene studies, shared by the tests of this file (it costs seconds)."""
    root = tmp_path_factory.mktemp("visits")
    prior = _visit(root, "prior", make_phantom(6, *GRID, phase="arterial"))
    current = _visit(root, "current", make_followup_phantom(6, 1, *GRID, phase="arterial"))
    headless = mrml.create_headless_scene()
    scene = headless.scene
    layout = scene.AddNewNodeByClass("vtkMRMLLayoutNode")  # Slicer's application logic has one
    priorVolume, priorSeg = import_study(scene, prior, "prior CT")
    currentVolume, currentSeg = import_study(scene, current, "current CT")
    runner = SmoothSegNetRunner(scene, pythonExecutable=sys.executable)
    events: list[Any] = []
    result = runner.compareWithPrior(
        currentVolume, currentSeg, priorVolume, priorSeg, phase="arterial",
        progressCallback=events.append, waitForCompletion=True, timeoutS=300,
    )  # fmt: skip
    data = json.loads((result.outputDir / "followup.json").read_text())
    return {"headless": headless, "runner": runner, "result": result, "data": data, "events": events,
            "layout": layout, "prior": prior, "current": current, "volumes": (priorVolume, currentVolume),
            "segmentations": (priorSeg, currentSeg)}  # fmt: skip


def test_table_rows_are_followup_json_lesions(compared: dict[str, Any]) -> None:
    data, result = compared["data"], compared["result"]
    assert not compared["runner"].isRunning and result is compared["runner"].followupResult
    stages = [e.stage for e in compared["events"]]
    assert stages[:2] == ["report", "report"] and "register" in stages and compared["events"][-1].fraction == 1.0
    wanted = []
    for lesion in data["lesions"]:  # written out here, not through tracked_lesion_rows
        cells = []
        for key, _title in TABLE_COLUMNS:
            v = lesion[key]
            cells.append("" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v))
        wanted.append(cells)
    assert result.rows() == wanted and len(wanted) == 3
    assert [r[0] for r in wanted] == ["L1", "L2", "L3"] and wanted[0][1] == "matched"
    # The scene studies measured in the child are the visits' own reports: the same lesion sizes.
    prior_report = json.loads((compared["prior"] / "report.json").read_text())
    axes = {e["id"]: e["long_axis_mm"] for e in prior_report["lesions"]}
    for lesion in data["lesions"]:
        if lesion["baseline_id"] is not None:
            assert lesion["baseline_long_axis_mm"] == pytest.approx(axes[lesion["baseline_id"]], abs=1e-6)


def test_responses_shown_equal_followup_json(compared: dict[str, Any]) -> None:
    data = compared["data"]
    lines = compared["result"].summary().splitlines()
    assert (data["recist"]["response"], data["mrecist"]["response"]) == ("SD", "PR")  # the phantom's truth
    assert lines[0] == f"RECIST 1.1: SD ({data['recist']['reason']})"
    assert lines[1] == f"mRECIST: PR ({data['mrecist']['reason']})"
    change = data["volumetric"]["change_from_baseline_percent"][-1]
    assert lines[2] == f"Total tumour volume: {change:+.1f} %"


def test_row_click_centres_both_studies_in_the_compare_layout(compared: dict[str, Any]) -> None:
    runner, result, data = compared["runner"], compared["result"], compared["data"]
    views = runner.showSideBySide(result)
    assert compared["layout"].GetViewArrangement() == LAYOUT_ID
    priorVolume, currentVolume = compared["volumes"]
    assert [c.GetBackgroundVolumeID() for _s, c in views] == [
        priorVolume.GetID(), currentVolume.GetID(), priorVolume.GetID(), currentVolume.GetID(),
    ]  # fmt: skip
    assert [s.GetOrientation() for s, _c in views] == ["Axial", "Axial", "Coronal", "Coronal"]
    priorSeg, currentSeg = compared["segmentations"]
    display = priorSeg.GetDisplayNode()
    prior_views = {views[0][0].GetID(), views[2][0].GetID()}
    current_views = {views[1][0].GetID(), views[3][0].GetID()}
    shown = {display.GetNthViewNodeID(i) for i in range(display.GetNumberOfViewNodeIDs())}
    assert prior_views <= shown and not current_views & shown
    current = currentSeg.GetDisplayNode()
    shown = {current.GetNthViewNodeID(i) for i in range(current.GetNumberOfViewNodeIDs())}
    assert current_views <= shown and not prior_views & shown
    for lesion in data["lesions"]:
        centres = runner.centreOnLesion(result, lesion["tracking_id"])
        for (name, study, _o, _l), (sliceNode, _c) in zip(VIEWS, views):
            lps = lesion[f"{study}_centroid_lps_mm"]
            assert sliceNode.GetLayoutName() == name
            if lps is None:
                assert centres[study] is None
                continue
            ras = [-lps[0], -lps[1], lps[2]]  # LPS -> RAS by hand
            matrix = sliceNode.GetSliceToRAS()
            assert [matrix.GetElement(i, 3) for i in range(3)] == pytest.approx(ras, abs=1e-9)
            assert np.allclose(centres[study], ras)
    matched = next(r for r in data["lesions"] if r["status"] == "matched")
    assert matched["baseline_centroid_lps_mm"] != matched["followup_centroid_lps_mm"]  # the patient moved


def test_export_writes_the_followup_outputs(compared: dict[str, Any], tmp_path: Path) -> None:
    written = compared["runner"].exportFollowup(compared["result"], tmp_path / "export")
    names = sorted(str(p.relative_to(tmp_path / "export")) for p in written)
    assert names == ["followup.csv", "followup.json", "followup.png", "transforms/visit_1.tfm"]
    assert json.loads((tmp_path / "export" / "followup.json").read_text()) == compared["data"]


def test_prior_output_folder_and_bad_input(compared: dict[str, Any]) -> None:
    runner = compared["runner"]
    priorVolume, currentVolume = compared["volumes"]
    _priorSeg, currentSeg = compared["segmentations"]
    with pytest.raises(InputError, match="the prior study needs a CT and its segmentation"):
        runner.compareWithPrior(currentVolume, currentSeg, priorVolume, None, waitForCompletion=True)
    with pytest.raises(InputError, match="the prior CT is the current CT"):
        runner.compareWithPrior(currentVolume, currentSeg, currentVolume, currentSeg, waitForCompletion=True)
    with pytest.raises(InputError, match=r"has no report\.json"):
        runner.compareWithPrior(
            currentVolume, currentSeg, priorFolder=compared["current"].parent, waitForCompletion=True
        )
    assert not runner.isRunning
    before = runner.followupResult
    result = runner.compareWithPrior(
        currentVolume, currentSeg, priorFolder=compared["prior"], phase="arterial", waitForCompletion=True,
        timeoutS=300,
    )  # fmt: skip
    data = json.loads((result.outputDir / "followup.json").read_text())
    assert result.rows() == before.rows()  # the folder is the same study as the scene's prior
    assert data["recist"] == before.data["recist"] and data["mrecist"] == before.data["mrecist"]
    assert not before.outputDir.exists()  # the earlier comparison's folder is removed
    # No prior CT node given: the folder's CT and segmentation were loaded, on the prior CT's exact grid.
    assert result.priorVolume not in (None, priorVolume) and result.priorVolume.GetName() == "Prior CT (prior)"
    assert mrml.geometry_from_node(result.priorVolume) == mrml.geometry_from_node(priorVolume)
    assert np.array_equal(mrml.volume_from_node(result.priorVolume).array, mrml.volume_from_node(priorVolume).array)
    loaded = mrml.labelmap_from_segmentation(result.priorSegmentation, result.priorVolume)
    given = mrml.labelmap_from_segmentation(compared["segmentations"][0], priorVolume)
    assert np.array_equal(loaded.lesions, given.lesions) and np.array_equal(loaded.labelmap, given.labelmap)
    views = runner.showSideBySide(result)
    assert views[0][1].GetBackgroundVolumeID() == result.priorVolume.GetID()


def test_bad_prior_folder_fails_in_the_child_with_one_error_line(
    compared: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's refusal (exit 2, one error: line) reaches the caller as the error; nothing is kept."""
    import shutil
    import tempfile

    runner = compared["runner"]
    broken = tmp_path / "broken"
    shutil.copytree(compared["prior"], broken)
    (broken / "lesions.nrrd").unlink()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    before = runner.followupResult
    _volume, currentSeg = compared["segmentations"]
    with pytest.raises(RuntimeError, match=r"has no lesions\.nrrd") as caught:
        runner.compareWithPrior(compared["volumes"][1], currentSeg, priorFolder=broken, waitForCompletion=True)
    assert "Traceback" not in str(caught.value)
    assert runner.followupResult is before and not runner.isRunning and list(scratch.iterdir()) == []
