"""The Slicer module's path end to end without Qt: the REAL ``segment`` CLI in a child process (tiny
threshold models with exact answers), its jsonl progress parsed, cancel, and the result imported into a
REAL MRML scene (slicer-core) with the bridge."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from _model_helpers import write_threshold_model
from _mrml_helpers import add_volume

from SmoothSegNetLib import mrml
from SmoothSegNetLib.io.writers import write_volume
from SmoothSegNetLib.slicer_support.process import ChildProcess, SegmentRequest, segment_command
from SmoothSegNetLib.volume import CTVolume, Geometry


def _ct() -> CTVolume:
    """Body -500 HU, 'liver' box 100 HU, two 'tumors' 200 HU (48 and 8 voxels), anisotropic, axes permuted and
    reflected (the engine's exact reorientation path; oblique grids are resampled, so not exact voxel for voxel)."""
    a = np.full((14, 20, 24), -500, np.int16)
    a[2:12, 3:17, 3:21] = 100
    a[4:7, 5:9, 5:9] = 200  # 3 x 4 x 4 = 48 voxels: lesion 1
    a[8:10, 12:14, 14:16] = 200  # 2 x 2 x 2 = 8 voxels: lesion 2
    geometry = Geometry.create(a.shape, (0.9, 0.8, 2.0), (-20.0, 35.5, 80.0), [[0, -1, 0], [1, 0, 0], [0, 0, -1]])
    return CTVolume(a, geometry)


def _models(folder: Path) -> tuple[str, str]:
    liver = write_threshold_model(folder, "liver", threshold_hu=50, spacing_mm=None, orientation="PLI")
    tumor = write_threshold_model(folder, "tumor", threshold_hu=150, spacing_mm=None)
    return str(liver), str(tumor)


def test_segment_child_process_streams_progress_and_imports_exactly(tmp_path: Path) -> None:
    ct = _ct()
    source = write_volume(tmp_path / "ct.nrrd", ct)
    liver, tumor = _models(tmp_path / "models")
    request = SegmentRequest(
        source, tmp_path / "out", device="cpu", liver_model=liver, tumor_model=tumor, skip_plausibility_check=True
    )  # a tiny synthetic CT (22 x 16 mm), not a body
    child = ChildProcess(segment_command(request))
    events, finished = child.wait(timeout_s=300)
    assert finished.returncode == 0, finished.message
    assert events and events[-1].fraction == 1.0
    assert {"liver", "tumor"} <= {e.stage for e in events}
    assert all(0.0 <= e.fraction <= 1.0 for e in events)
    assert [e.elapsed_s for e in events] == sorted(e.elapsed_s for e in events)

    headless = mrml.create_headless_scene()
    volume = add_volume(headless.scene, ct.array, ct.geometry)
    node = mrml.import_result(headless.scene, request.output_dir, volume)
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["Liver", "Lesion 1", "Lesion 2"]
    arrays = mrml.labelmap_from_segmentation(node, volume)
    expected = np.zeros(ct.array.shape, np.uint8)
    expected[ct.array > 50] = 1
    expected[ct.array > 150] = 2
    np.testing.assert_array_equal(arrays.labelmap, expected)
    assert int((arrays.lesions == 1).sum()) == 48 and int((arrays.lesions == 2).sum()) == 8
    report = mrml.table_from_report(
        headless.scene, __import__("json").loads((request.output_dir / "report.json").read_text())
    )
    assert report.GetTable().GetNumberOfRows() == 2


def test_segment_child_process_failure_is_one_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-ct.nrrd"
    bad.write_bytes(b"NRRD0004\ngarbage\n")
    liver, tumor = _models(tmp_path / "models")
    request = SegmentRequest(bad, tmp_path / "out", device="cpu", liver_model=liver, tumor_model=tumor)
    _, finished = ChildProcess(segment_command(request)).wait(timeout_s=300)
    assert finished.returncode == 2
    assert finished.message.startswith("Segmentation failed (bad input): ")
    assert "not-a-ct.nrrd" in finished.message
    assert not (tmp_path / "out").exists()


def test_cancel_stops_the_real_cli_and_leaves_nothing(tmp_path: Path) -> None:
    # A larger CT and 8-voxel sliding windows: thousands of windows, so the run is still busy when cancelled.
    a = np.full((64, 96, 96), -500, np.int16)
    a[8:56, 10:86, 10:86] = 100
    ct = CTVolume(a, Geometry.create(a.shape, (1.0, 1.0, 1.0)))
    source = write_volume(tmp_path / "ct.nrrd", ct)
    liver = write_threshold_model(tmp_path / "m", "liver", threshold_hu=50, spacing_mm=None, mode="sliding")
    tumor = write_threshold_model(tmp_path / "m", "tumor", threshold_hu=150, spacing_mm=None, mode="sliding")
    out = tmp_path / "out"
    request = SegmentRequest(
        source, out, device="cpu", liver_model=str(liver), tumor_model=str(tumor), skip_plausibility_check=True
    )  # no air, no fat: not a body
    child = ChildProcess(segment_command(request))
    deadline = time.monotonic() + 120
    seen = []
    while not any(e.stage == "liver" for e in seen) and time.monotonic() < deadline:
        new, finished = child.poll()
        seen += new
        assert finished is None, f"finished before it could be cancelled: {finished}"
        time.sleep(0.02)
    child.cancel(grace_s=20.0)
    _, finished = child.wait(timeout_s=60)
    assert finished.message == "cancelled by the user"
    assert finished.returncode in (130, -9), child.reader.log_lines[-3:]
    leftovers = [p.name for p in out.rglob("*")] if out.exists() else []
    assert leftovers == []
