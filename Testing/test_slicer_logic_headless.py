"""The module's logic (SmoothSegNetRunner) on a REAL MRML scene from slicer-core, with the REAL engine in a
child process (``waitForCompletion=True``, the scripted path; the Qt timer path needs Slicer's GUI)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _model_helpers import write_threshold_model
from _mrml_helpers import add_volume

from SmoothSegNetLib import mrml
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.volume import CTVolume, Geometry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SmoothSegNet"))
from SmoothSegNetSlicerLib.logic import (
    TABLE_REFERENCE_ROLE,
    SmoothSegNetRunner,
    isCtCandidate,
    mostRecentVolume,
    segmentIdOfLesion,
)


def _ct() -> CTVolume:
    a = np.full((12, 18, 20), -500, np.int16)
    a[2:10, 3:15, 3:17] = 100
    a[3:6, 4:8, 4:8] = 200  # lesion 1: 48 voxels
    a[7:9, 10:12, 12:14] = 200  # lesion 2: 8 voxels
    return CTVolume(
        a, Geometry.create(a.shape, (0.8, 0.7, 2.5), (5.0, -40.0, 60.0), [[1, 0, 0], [0, -1, 0], [0, 0, 1]])
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real run, shared by the tests of this file (the engine start-up costs seconds)."""
    folder = tmp_path_factory.mktemp("models")
    liver = write_threshold_model(folder, "liver", threshold_hu=50, spacing_mm=None)
    tumor = write_threshold_model(folder, "tumor", threshold_hu=150, spacing_mm=None)
    headless = mrml.create_headless_scene()
    ct = _ct()
    volume = add_volume(headless.scene, ct.array, ct.geometry)
    runner = SmoothSegNetRunner(headless.scene, pythonExecutable=sys.executable)
    events: list[Any] = []
    node = runner.process(
        volume,
        device="cpu",
        liverModel=str(liver),
        tumorModel=str(tumor),
        progressCallback=events.append,
        waitForCompletion=True,
        timeoutS=300,
    )
    return {"headless": headless, "ct": ct, "volume": volume, "runner": runner, "node": node, "events": events}


def test_run_imports_segments_and_table(run: dict[str, Any]) -> None:
    node, events = run["node"], run["events"]
    assert events and events[-1].fraction == 1.0
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["Liver", "Lesion 1", "Lesion 2"]
    table = node.GetNodeReference(TABLE_REFERENCE_ROLE)
    assert table is not None and table.GetTable().GetNumberOfRows() == 2
    report = json.loads(table.GetAttribute(mrml.ATTRIBUTE_REPORT))
    voxel_ml = 0.8 * 0.7 * 2.5 / 1000
    assert [lesion["volume_ml"] for lesion in report["lesions"]] == pytest.approx(
        [48 * voxel_ml, 8 * voxel_ml], abs=1e-4
    )
    assert not run["runner"].isRunning


def test_recompute_after_an_edit_marks_it_and_grows_the_volume(run: dict[str, Any]) -> None:
    node, volume, runner = run["node"], run["volume"], run["runner"]
    arrays = mrml.labelmap_from_segmentation(node, volume)
    grown = arrays.lesions == 2
    grown[7:9, 10:12, 14] = True  # 4 liver voxels painted onto lesion 2
    image = mrml._oriented_image(grown, run["ct"].geometry)
    import slicer

    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(image, node, "lesion_2")
    report, table, edited = runner.recomputeReport(volume, node)
    assert edited == (2,)
    assert report["lesions"][1]["voxel_count"] == 12 and report["lesions"][0]["voxel_count"] == 48
    assert table.GetTable().GetValueByName(1, "Edited").ToString() == "yes"
    assert table.GetTable().GetValueByName(0, "Edited").ToString() == ""
    assert "lesion(s) 2 were edited by hand after the network result" in report["warnings"]


def test_export_writes_the_current_segments(run: dict[str, Any], tmp_path: Path) -> None:
    events: list[Any] = []
    summary = run["runner"].exportResults(
        run["volume"], run["node"], tmp_path / "export", picture=False, progressCallback=events.append, timeoutS=300
    )
    assert summary == f"Wrote 4 files into {(tmp_path / 'export').resolve()}"
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "lesions.nrrd",
        "report.csv",
        "report.json",
        "segmentation.nrrd",
    ]
    assert [e.stage for e in events] == ["report", "report", "done"] and events[-1].fraction == 1.0
    report = json.loads((tmp_path / "export" / "report.json").read_text())
    voxel_ml = 0.8 * 0.7 * 2.5 / 1000
    assert report["lesions"][0]["volume_ml"] == pytest.approx(48 * voxel_ml, abs=1e-4)
    assert not run["runner"].isRunning


def test_bad_input_is_refused_before_anything_starts(run: dict[str, Any]) -> None:
    runner, headless = run["runner"], run["headless"]
    labels = headless.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    with pytest.raises(InputError, match="is a labelmap, not a CT"):
        runner.process(labels, waitForCompletion=True)
    assert not runner.isRunning


def test_a_failing_engine_command_raises_its_error_line(run: dict[str, Any], tmp_path: Path) -> None:
    command = [sys.executable, "-m", "SmoothSegNetLib", "send", str(tmp_path / "nothing"), "--dicom", "localhost:1"]
    with pytest.raises(RuntimeError, match=r"^'send' failed \(bad input\): "):
        run["runner"].runEngine(command, timeoutS=120)


def test_download_model_with_progress_from_a_loopback_server(run: dict[str, Any], tmp_path: Path) -> None:
    """'weights from the registry with a progress bar': a real HTTP download on loopback into the cache."""
    import functools
    import http.server
    import os
    import threading

    served = tmp_path / "served"
    card_path = write_threshold_model(served, "liver", threshold_hu=50, spacing_mm=None)
    card = json.loads(card_path.read_text())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        card["weights"]["url"] = f"http://127.0.0.1:{server.server_port}/{card['weights']['file']}"
        cached = Path(os.environ["SMOOTHSEGNET_HOME"]) / "models" / card["id"]
        cached.mkdir(parents=True)
        (cached / "card.json").write_text(json.dumps(card))
        events: list[Any] = []
        answer = run["runner"].downloadModel(
            card["id"], progressCallback=events.append, waitForCompletion=True, timeoutS=120
        )
    finally:
        server.shutdown()
    assert answer.startswith(f"downloaded {card['id']} -> ")
    assert (cached / card["weights"]["file"]).read_bytes() == (served / card["weights"]["file"]).read_bytes()
    assert events and events[-1].fraction == 1.0


def test_download_without_url_says_what_to_do(run: dict[str, Any]) -> None:
    with pytest.raises(
        RuntimeError, match=r"Downloading paper-liver-segresnetvae failed \(bad input\): .*models install"
    ):
        run["runner"].downloadModel("paper-liver-segresnetvae", waitForCompletion=True, timeoutS=120)


def test_scene_helpers_of_the_panel(run: dict[str, Any]) -> None:
    scene, volume, node = run["headless"].scene, run["volume"], run["node"]
    assert mostRecentVolume(scene) is volume
    scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "a labelmap added later")
    assert mostRecentVolume(scene) is volume  # a labelmap is never the default input
    assert isCtCandidate(volume) and not isCtCandidate(None)
    assert segmentIdOfLesion(node, 2) == "lesion_2" and segmentIdOfLesion(node, 9) is None
    assert segmentIdOfLesion(None, 1) is None
    assert mostRecentVolume(mrml.create_headless_scene().scene) is None


def test_recompute_keeps_one_tumor_segment_and_splits_its_lesions(tmp_path: Path) -> None:
    from _mrml_helpers import GEOMETRIES, synthetic_arrays, write_segment_folder

    geometry = GEOMETRIES["anisotropic-flipped"]
    headless = mrml.create_headless_scene()
    volume = add_volume(headless.scene, synthetic_arrays()[0], geometry)
    runner = SmoothSegNetRunner(headless.scene, pythonExecutable=sys.executable)
    node, table, _ = runner.importResult(write_segment_folder(tmp_path / "out", geometry), volume, perLesion=False)
    assert table.GetTable().GetNumberOfRows() == 2
    report, table, edited = runner.recomputeReport(volume, node)
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(2)] == ["Liver", "Tumor"]  # not renamed
    assert [lesion["voxel_count"] for lesion in report["lesions"]] == [27, 8] and edited == ()
    assert table.GetTable().GetNumberOfRows() == 2
