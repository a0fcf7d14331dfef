"""The live lesion table (SmoothSegNetSlicerLib.live) on a REAL MRML scene from slicer-core.

Edits are made as Segment Editor makes them (the segment's binary labelmap is replaced, which fires the
segmentation node's SegmentModified and Modified events). The only stand-in is the Qt single-shot timer
(``ManualTimer``, a GUI stand-in): the test fires it where the 500 ms would have run out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _mrml_helpers import GEOMETRIES, LESION_2, SHAPE_KJI, add_volume, synthetic_arrays, write_segment_folder

from SmoothSegNetLib import mrml
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.slicer_support.lesion_table import lesion_table_rows
from SmoothSegNetLib.volume import CTVolume

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SmoothSegNet"))
from SmoothSegNetSlicerLib.live import LiveReport
from SmoothSegNetSlicerLib.logic import SmoothSegNetRunner, segmentIdOfLesion


class ManualTimer:
    """GUI STAND-IN for a single-shot ``qt.QTimer``: counts (re)starts; ``fire`` runs the timeout slot, then
    ``after`` (the live table's fixtures join its worker thread there: the poll timer's job, done at once)."""

    def __init__(self, delay_ms: int, callback: Callable[[], None]) -> None:
        self.delay_ms, self.callback = delay_ms, callback
        self.starts = 0
        self.active = False
        self.after: Callable[[], Any] | None = None

    def start(self) -> None:
        self.starts += 1
        self.active = True

    def stop(self) -> None:
        self.active = False

    def fire(self) -> None:
        assert self.active, "the timer was not started: no edit was seen"
        self.active = False
        self.callback()
        if self.after is not None:
            self.after()


def imported_result(tmp_path: Path, geometry: Any) -> tuple[Any, Any, SmoothSegNetRunner, Any, dict[str, Any]]:
    """A headless scene with the synthetic CT on ``geometry`` and a segment folder imported onto it:
    ``(headless, volume, runner, segmentation node, report)``."""
    headless = mrml.create_headless_scene()
    ct, _labelmap, _lesions = synthetic_arrays()
    volume = add_volume(headless.scene, ct, geometry)
    runner = SmoothSegNetRunner(headless.scene, pythonExecutable=sys.executable)
    node, _table, report = runner.importResult(write_segment_folder(tmp_path / "out", geometry), volume)
    return headless, volume, runner, node, report


def manual_timers() -> tuple[list[ManualTimer], Callable[[int, Callable[[], None]], ManualTimer]]:
    """A timer factory for :class:`LiveReport` whose timers fire only when a test says so, and the list of the
    timers it made (in order)."""
    timers: list[ManualTimer] = []

    def factory(delay_ms: int, callback: Callable[[], None]) -> ManualTimer:
        timers.append(ManualTimer(delay_ms, callback))
        return timers[-1]

    return timers, factory


@pytest.fixture(params=sorted(GEOMETRIES))
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    geometry = GEOMETRIES[request.param]
    headless, volume, runner, node, _report = imported_result(tmp_path, geometry)
    timers, factory = manual_timers()

    updates: list[tuple[dict[str, Any], tuple[int, ...]]] = []
    live = LiveReport(runner, volume, node, lambda r, e: updates.append((r, e)), timerFactory=factory)
    timers[0].after = live.wait  # the debounce ran out: measured in the worker thread, shown when it is done
    live.start()
    yield {"headless": headless, "geometry": geometry, "volume": volume, "runner": runner, "node": node,
           "live": live, "timer": timers[0], "updates": updates}  # fmt: skip
    live.stop()


def paint(node: Any, volume: Any, lesion_id: int, mask_kji: np.ndarray) -> None:
    """Replace a lesion segment's voxels, as a Segment Editor stroke does."""
    segment_id = segmentIdOfLesion(node, lesion_id)
    assert segment_id is not None
    mrml.set_segment_mask(node, segment_id, mask_kji, volume)


def grown_lesion_2() -> np.ndarray:
    """Lesion 2 (2x2x2 = 8 voxels) grown by one row in j: 2x3x2 = 12 voxels, still inside the liver."""
    mask = np.zeros(SHAPE_KJI, bool)
    k, j, i = LESION_2
    mask[k, slice(j.start, j.stop + 1), i] = True
    return mask


def test_edit_updates_table_after_debounce_with_exact_numbers(scene: dict[str, Any]) -> None:
    live, timer, node, volume = scene["live"], scene["timer"], scene["node"], scene["volume"]
    assert timer.delay_ms == 500
    paint(node, volume, 2, grown_lesion_2())
    assert timer.active and live.measureCount == 0  # nothing measured before the pause
    timer.fire()
    assert live.measureCount == 1
    # Expected: the engine's measure of the edited labelmap, computed here from plain arrays.
    ct, labelmap, lesions = synthetic_arrays()
    grown = grown_lesion_2()
    labelmap[grown], lesions[grown] = 2, 2
    expected = measure(CTVolume(ct, scene["geometry"]), labelmap, lesions, confidence={1: 0.75})
    report, edited = scene["updates"][-1]
    assert edited == (2,)
    assert report["lesions"][1]["voxel_count"] == 12 and report["lesions"][0]["voxel_count"] == 27
    voxel_ml = scene["geometry"].voxel_volume_mm3 / 1000
    assert report["lesions"][1]["volume_ml"] == pytest.approx(round(12 * voxel_ml, 3), abs=1e-3)
    for got, want in zip(report["lesions"], expected["lesions"]):
        for key in ("voxel_count", "volume_ml", "long_axis_mm", "short_axis_mm", "mean_hu", "centroid_lps_mm"):
            assert got[key] == want[key], key
    assert report["tumor_burden"] == expected["tumor_burden"]
    assert any("lesion(s) 2 were edited" in w for w in report["warnings"])
    # The table node holds exactly the rows of that report, lesion 2 marked edited.
    table = scene["runner"].tableFor(node).GetTable()
    rows = lesion_table_rows(expected, (2,))
    assert table.GetNumberOfRows() == 2
    for r, row in enumerate(rows):
        assert table.GetValue(r, 2).ToDouble() == pytest.approx(row[2], abs=1e-9)  # volume
        assert table.GetValue(r, 3).ToDouble() == pytest.approx(row[3], abs=1e-9)  # long axis
    assert table.GetValue(1, 8).ToString() == "yes" and table.GetValue(0, 8).ToString() == ""


def test_burst_of_edits_measures_once_and_update_does_not_retrigger(scene: dict[str, Any]) -> None:
    live, timer, node, volume = scene["live"], scene["timer"], scene["node"], scene["volume"]
    grown = grown_lesion_2()
    for step in range(5):  # five strokes within the debounce window
        mask = np.zeros(SHAPE_KJI, bool)
        mask[LESION_2] = True
        mask |= grown if step % 2 else False
        paint(node, volume, 2, mask)
    assert timer.starts >= 5 and live.measureCount == 0
    timer.fire()
    assert live.measureCount == 1 and len(scene["updates"]) == 1
    starts = timer.starts
    live.update()  # renaming segments, writing the table: our own events restart nothing
    live.wait()
    assert live.measureCount == 2
    assert timer.starts == starts and not timer.active


def test_stop_stops_observing(scene: dict[str, Any]) -> None:
    live, timer = scene["live"], scene["timer"]
    live.stop()
    paint(scene["node"], scene["volume"], 2, grown_lesion_2())
    assert timer.starts == 0 and not timer.active


def test_removed_segment_closes_gap_and_renaming_does_not_retrigger(scene: dict[str, Any]) -> None:
    timer, node = scene["timer"], scene["node"]
    segmentation = node.GetSegmentation()
    segmentation.RemoveSegment(segmentIdOfLesion(node, 1))
    assert timer.active
    timer.fire()
    starts = timer.starts
    report, _edited = scene["updates"][-1]
    assert [lesion["voxel_count"] for lesion in report["lesions"]] == [8]  # the former lesion 2, now lesion 1
    assert segmentation.GetSegment("lesion_2").GetName() == "Lesion 1"  # renamed by the update itself...
    assert timer.starts == starts and not timer.active  # ...whose own events restart nothing
