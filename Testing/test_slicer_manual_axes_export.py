"""Hand-moved RECIST lines reach every output of the panel: on a REAL slicer-core scene, a CT loaded from a real
DICOM series, the logic's "Recompute report" and export (the export job in a child process, DICOM SR by the
engine's ``export``) show the lines' lengths: 50.0 mm and 10.0 mm (test_manual_axes's hand-computed lines).
No stand-in: the scripted path (``waitForCompletion``) needs no Qt."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _mrml_helpers import add_volume
from test_manual_axes import LONG, SHORT, case
from test_manual_axes_cli import LONG_AXIS, SHORT_AXIS, _sr_axes

from SmoothSegNetLib import mrml
from SmoothSegNetLib.io import read_volume, write_ct_series
from SmoothSegNetLib.io.writers import write_labelmap
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.report.overview import overview_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SmoothSegNet"))
from SmoothSegNetSlicerLib.corrections import ManualAxesWatcher, lpsToRas, showRecistLines
from SmoothSegNetSlicerLib.logic import SmoothSegNetRunner


@pytest.fixture
def opened(tmp_path: Path) -> dict[str, Any]:
    ct, labels, lesions = case()
    write_ct_series(ct, tmp_path / "series")
    series = read_volume(tmp_path / "series")  # head first: k reversed
    assert series.dicom is not None
    labels, lesions = labels[::-1], lesions[::-1]
    folder = tmp_path / "segment-out"
    folder.mkdir()
    write_labelmap(folder / "segmentation.nrrd", labels, series.geometry)
    write_labelmap(folder / "lesions.nrrd", lesions, series.geometry)
    report = measure(series, labels, lesions, confidence={1: 0.9, 2: 0.8})
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    headless = mrml.create_headless_scene()
    volume = add_volume(headless.scene, series.array, series.geometry)
    runner = SmoothSegNetRunner(headless.scene, pythonExecutable=sys.executable)
    node, _table, report = runner.importResult(folder, volume)
    files = [str(s.path) for s in series.dicom.slices]
    return {"scene": headless.scene, "runner": runner, "volume": volume, "node": node, "report": report, "files": files}


def _draw(opened: dict[str, Any]) -> ManualAxesWatcher:
    """Lesion 1's RECIST lines shown, then both moved by hand onto the hand-computed lines (LPS -> RAS)."""
    lines = showRecistLines(opened["scene"], opened["node"], opened["report"], 1)
    watcher = ManualAxesWatcher(opened["node"], lines)
    for axis, ends in (("long", LONG), ("short", SHORT)):
        for n, end in enumerate(ends):
            lines[axis].SetNthControlPointPosition(n, *lpsToRas(end))
    return watcher


def test_recompute_and_export_carry_the_hand_moved_lines(opened: dict[str, Any], tmp_path: Path) -> None:
    runner, volume, node = opened["runner"], opened["volume"], opened["node"]
    assert opened["report"]["lesions"][0]["long_axis_mm"] != 50.0  # the measured axis is another number
    watcher = _draw(opened)
    report, table, _edited = runner.recomputeReport(volume, node, timeoutS=300)
    one = report["lesions"][0]
    assert (one["long_axis_mm"], one["short_axis_mm"]) == (50.0, 10.0)
    assert (one["long_axis_source"], one["short_axis_source"]) == ("manual", "manual")
    assert table.GetTable().GetValueByName(0, "Long axis").ToDouble() == 50.0
    assert table.GetTable().GetValueByName(0, "Edited").ToString() == "manual axes"

    out = tmp_path / "export"
    runner.exportResults(volume, node, out, picture=True, dicomSeriesFiles=opened["files"], timeoutS=300)
    exported = json.loads((out / "report.json").read_text(encoding="utf-8"))
    one = exported["lesions"][0]
    assert (one["long_axis_mm"], one["short_axis_mm"]) == (50.0, 10.0)
    assert one["long_axis_ends_lps_mm"] == LONG and one["short_axis_ends_lps_mm"] == SHORT
    with (out / "report.csv").open(newline="", encoding="utf-8") as stream:
        row = next(csv.DictReader(stream))
    assert (row["long_axis_mm"], row["short_axis_mm"], row["long_axis_source"]) == ("50.0", "10.0", "manual")
    assert _sr_axes(out / "sr.dcm")["Lesion 1"] == {LONG_AXIS: (50.0, "Manual"), SHORT_AXIS: (10.0, "Manual")}
    headers, rows = overview_table(exported)
    assert dict(zip(headers, rows[0]))["Long mm"] == "50.0" and (out / "overview.png").is_file()
    assert exported["lesions"][1]["long_axis_source"] == "automatic"
    watcher.stop()


def test_lines_of_a_deleted_lesion_reach_no_output(opened: dict[str, Any], tmp_path: Path) -> None:
    """Lesion 1 deleted after its lines were moved: the former lesion 2 (now 1) keeps its measured axes."""
    from SmoothSegNetSlicerLib.corrections import deleteLesion

    runner, volume, node = opened["runner"], opened["volume"], opened["node"]
    _draw(opened).stop()
    deleteLesion(node, volume, 1)
    out = tmp_path / "export"
    runner.exportResults(volume, node, out, picture=False, timeoutS=300)
    (only,) = json.loads((out / "report.json").read_text(encoding="utf-8"))["lesions"]
    assert only["voxel_count"] == 27 and only["long_axis_source"] == "automatic"
    assert only["long_axis_mm"] == pytest.approx(opened["report"]["lesions"][1]["long_axis_mm"], abs=0)
    assert np.isfinite(only["short_axis_mm"])
