"""Candidates to review (SmoothSegNetSlicerLib.candidates) on a REAL slicer-core scene with exact masks: imported
hidden from candidates.nrrd, ignored by the report until accepted; accept -> the next lesion, measured by the live
table; reject -> gone, its voxels stay liver. The live table's Qt timer is the only stand-in (ManualTimer)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _mrml_helpers import GEOMETRIES, SHAPE_KJI, add_volume, synthetic_arrays, write_segment_folder
from test_slicer_live_table import ManualTimer

from SmoothSegNetLib import mrml
from SmoothSegNetLib.io.writers import write_labelmap
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.report.candidates import Candidates
from SmoothSegNetLib.volume import CTVolume

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SmoothSegNet"))
from SmoothSegNetSlicerLib.candidates import acceptCandidate, candidateRows, candidateSegmentIds, rejectCandidate
from SmoothSegNetSlicerLib.live import LiveReport
from SmoothSegNetSlicerLib.logic import SmoothSegNetRunner

#: Two candidates inside the liver, away from the lesions: 2 voxels (id 1... by volume: 3 voxels is 1).
CANDIDATE_1 = (slice(2, 3), slice(8, 9), slice(4, 7))  # 3 voxels
CANDIDATE_2 = (slice(7, 8), slice(3, 4), slice(13, 15))  # 2 voxels


@pytest.fixture(params=sorted(GEOMETRIES))
def imported(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    geometry = GEOMETRIES[request.param]
    ct, labelmap, lesions = synthetic_arrays()
    instances = np.zeros(SHAPE_KJI, np.uint16)
    instances[CANDIDATE_1], instances[CANDIDATE_2] = 1, 2
    reasons = {1: "below_min_lesion_ml", 2: "below_min_lesion_ml"}
    report = measure(CTVolume(ct, geometry), labelmap, lesions, candidates=Candidates(instances, reasons))
    folder = write_segment_folder(tmp_path / "out", geometry, report)
    write_labelmap(folder / "candidates.nrrd", instances, geometry)
    headless = mrml.create_headless_scene()
    volume = add_volume(headless.scene, ct, geometry)
    runner = SmoothSegNetRunner(headless.scene, pythonExecutable=sys.executable)
    node, _table, stored = runner.importResult(folder, volume)
    timers: list[ManualTimer] = []

    def factory(delay_ms: int, callback: Callable[[], None]) -> ManualTimer:
        timers.append(ManualTimer(delay_ms, callback))
        return timers[-1]

    updates: list[Any] = []
    live = LiveReport(runner, volume, node, lambda r, e: updates.append((r, e)), timerFactory=factory)
    timers[0].after = live.wait  # measured in the worker thread: shown when it is done
    live.start()
    yield {"geometry": request.param, "node": node, "volume": volume, "report": stored, "timer": timers[0],
           "updates": updates, "labelmap": labelmap, "lesions": lesions}  # fmt: skip
    live.stop()


def test_candidates_are_hidden_segments_ignored_by_the_report(imported: dict[str, Any]) -> None:
    node = imported["node"]
    assert candidateSegmentIds(node) == {1: "candidate_1", 2: "candidate_2"}
    display = node.GetDisplayNode()
    assert not display.GetSegmentVisibility("candidate_1") and not display.GetSegmentVisibility("candidate_2")
    assert display.GetSegmentVisibility("lesion_1")
    assert [c["id"] for c in candidateRows(imported["report"], node)] == [1, 2]
    voxel_ml = GEOMETRIES[imported["geometry"]].voxel_volume_mm3 / 1000
    volumes = [c["volume_ml"] for c in candidateRows(imported["report"], node)]
    assert volumes == [pytest.approx(3 * voxel_ml, abs=1e-3), pytest.approx(2 * voxel_ml, abs=1e-3)]
    arrays = mrml.labelmap_from_segmentation(node, imported["volume"])
    assert np.array_equal(arrays.labelmap, imported["labelmap"]) and np.array_equal(arrays.lesions, imported["lesions"])


def test_accept_makes_the_candidate_the_next_lesion_measured(imported: dict[str, Any]) -> None:
    node, timer = imported["node"], imported["timer"]
    segment_id = acceptCandidate(node, 1)
    assert node.GetDisplayNode().GetSegmentVisibility(segment_id)
    timer.fire()
    report, edited = imported["updates"][-1]
    assert [lesion["voxel_count"] for lesion in report["lesions"]] == [27, 8, 3]
    assert edited == (3,)  # accepted by hand: marked
    assert node.GetSegmentation().GetSegment(segment_id).GetName() == "Lesion 3"
    arrays = mrml.labelmap_from_segmentation(node, imported["volume"])
    expected = imported["lesions"].copy()
    expected[CANDIDATE_1] = 3
    assert np.array_equal(arrays.lesions, expected)
    assert (arrays.labelmap[CANDIDATE_1] == 2).all()
    assert [c["id"] for c in candidateRows(imported["report"], node)] == [2]
    with pytest.raises(ValueError, match="candidate 1 is not in"):
        acceptCandidate(node, 1)


def test_reject_removes_the_candidate_and_leaves_the_liver(imported: dict[str, Any]) -> None:
    node = imported["node"]
    rejectCandidate(node, 2)
    assert candidateSegmentIds(node) == {1: "candidate_1"}
    arrays = mrml.labelmap_from_segmentation(node, imported["volume"])
    assert np.array_equal(arrays.labelmap, imported["labelmap"]) and (arrays.labelmap[CANDIDATE_2] == 1).all()
    assert json.dumps([c["id"] for c in candidateRows(imported["report"], node)]) == "[1]"
