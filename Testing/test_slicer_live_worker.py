"""The live lesion table measures in a worker thread (issue 15, "never freeze"), on a REAL slicer-core scene.

The GUI thread only reads the segments and applies the result; the engine's measure runs in a real worker thread
whose start the test holds back (``GatedExecutor``), so what the panel shows while the worker measures, and what
happens to a result of segments edited since, are checked deterministically. The Qt timers are the only stand-ins
(``ManualTimer`` of test_slicer_live_table: the test fires debounce and poll where Qt would).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _mrml_helpers import GEOMETRIES, LESION_2, SHAPE_KJI, synthetic_arrays
from test_slicer_live_table import grown_lesion_2, imported_result, manual_timers, paint

from SmoothSegNetLib.report import measure
from SmoothSegNetLib.volume import CTVolume

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SmoothSegNet"))
from SmoothSegNetSlicerLib.live import LIVE_POLL_MS, LiveReport


class GatedExecutor(Executor):
    """One real worker thread; each job waits until the test opens ``gate`` and records the thread it ran in."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.gate = threading.Event()
        self.threads: list[int] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def run() -> Any:
            assert self.gate.wait(60), "the test never opened the gate"
            self.threads.append(threading.get_ident())
            return fn(*args, **kwargs)

        return self.pool.submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.gate.set()
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[dict[str, Any]]:
    geometry = GEOMETRIES["anisotropic-flipped"]
    _headless, volume, runner, node, report = imported_result(tmp_path, geometry)
    timers, factory = manual_timers()
    executor = GatedExecutor()
    updates: list[tuple[dict[str, Any], tuple[int, ...]]] = []
    live = LiveReport(
        runner, volume, node, lambda r, e: updates.append((r, e)), timerFactory=factory, executor=executor
    )
    live.start()
    yield {"live": live, "debounce": timers[0], "poll": timers[1], "executor": executor, "node": node,
           "volume": volume, "runner": runner, "updates": updates, "report": report, "geometry": geometry}  # fmt: skip
    live.stop()
    executor.shutdown()


def _volume_cell(opened: dict[str, Any], row: int) -> float:
    return float(opened["runner"].tableFor(opened["node"]).GetTable().GetValue(row, 2).ToDouble())


def _expected(opened: dict[str, Any], lesion_2: np.ndarray) -> dict[str, Any]:
    ct, labelmap, lesions = synthetic_arrays()
    labelmap[LESION_2], lesions[LESION_2] = 1, 0
    labelmap[lesion_2], lesions[lesion_2] = 2, 2
    return measure(CTVolume(ct, opened["geometry"]), labelmap, lesions, confidence={1: 0.75})


def _wait_for_worker(future: Future[Any]) -> None:
    future.exception(timeout=60)  # the worker has finished (the GUI thread has not looked yet)


def test_the_measure_runs_in_the_worker_and_the_table_changes_only_when_it_is_done(live: dict[str, Any]) -> None:
    opened, lv, poll = live, live["live"], live["poll"]
    before = _volume_cell(opened, 1)
    paint(opened["node"], opened["volume"], 2, grown_lesion_2())
    opened["debounce"].fire()  # the GUI thread reads the segments and hands them to the worker: it returns at once
    assert poll.active and poll.delay_ms == LIVE_POLL_MS and lv.measureCount == 0
    assert _volume_cell(opened, 1) == before and opened["updates"] == []  # nothing shown while measuring
    poll.fire()  # Qt's poll while the worker is still held back: not done, polled again
    assert poll.active and lv.measureCount == 0
    opened["executor"].gate.set()
    pending = lv._pending
    assert pending is not None
    _wait_for_worker(pending.future)
    poll.fire()
    assert not poll.active and lv.measureCount == 1
    assert opened["executor"].threads and opened["executor"].threads[0] != threading.get_ident()
    report, edited = opened["updates"][-1]
    expected = _expected(opened, grown_lesion_2())
    assert edited == (2,) and report["lesions"][1]["voxel_count"] == 12
    assert [e["volume_ml"] for e in report["lesions"]] == [e["volume_ml"] for e in expected["lesions"]]
    assert _volume_cell(opened, 1) == expected["lesions"][1]["volume_ml"]
    assert lv.timings.total_s >= lv.timings.gui_s > 0 and lv.timings.measure_s > 0


def test_a_result_for_edit_n_is_dropped_when_edit_n_plus_1_arrived(live: dict[str, Any]) -> None:
    """Never stale numbers: the worker measured the segments of edit N, but the user made edit N+1 meanwhile."""
    opened, lv, poll = live, live["live"], live["poll"]
    before = _volume_cell(opened, 1)
    paint(opened["node"], opened["volume"], 2, grown_lesion_2())  # edit N: lesion 2 grows to 12 voxels
    opened["debounce"].fire()
    pending = lv._pending
    assert pending is not None
    shrunk = np.zeros(SHAPE_KJI, bool)
    k, j, i = LESION_2
    shrunk[k.start, j, i] = True  # edit N+1, while the worker measures edit N: lesion 2 is 4 voxels
    paint(opened["node"], opened["volume"], 2, shrunk)
    assert opened["debounce"].active
    opened["executor"].gate.set()
    _wait_for_worker(pending.future)
    assert pending.future.result()[0]["lesions"][1]["voxel_count"] == 12  # the worker did measure edit N...
    poll.fire()
    assert lv.discardedCount == 1 and lv.measureCount == 0 and opened["updates"] == []  # ...never shown
    assert _volume_cell(opened, 1) == before
    opened["debounce"].fire()  # the pause after edit N+1: measured and shown
    lv.wait(60)
    report, _edited = opened["updates"][-1]
    assert lv.measureCount == 1 and report["lesions"][1]["voxel_count"] == 4
    assert _volume_cell(opened, 1) == _expected(opened, shrunk)["lesions"][1]["volume_ml"]


def test_stop_drops_a_measurement_in_the_worker(live: dict[str, Any]) -> None:
    opened, lv = live, live["live"]
    paint(opened["node"], opened["volume"], 2, grown_lesion_2())
    opened["debounce"].fire()
    lv.stop()  # e.g. another segmentation selected
    opened["executor"].gate.set()
    assert lv.wait(60) is None and opened["updates"] == [] and not live["poll"].active
