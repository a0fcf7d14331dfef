"""The module's logic without Qt dialogs: run ``segment`` in a child process and bring the result in.

``SmoothSegNetRunner`` needs only an MRML scene, so the same code runs inside Slicer (``slicer.mrmlScene``)
and in pytest against slicer-core. Qt is imported only for the non-blocking path (a ``qt.QTimer`` polls
the child process). Everything here raises; the widget decides how to show it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _engineParentDir() -> Path:
    """The folder holding the engine package: the module folder (installed) or its parent (source tree)."""
    moduleDir = Path(__file__).resolve().parents[1]
    for candidate in (moduleDir, moduleDir.parent):
        if (candidate / "SmoothSegNetLib" / "__init__.py").is_file():
            return candidate
    raise ImportError(f"SmoothSegNetLib was not found next to {moduleDir}: reinstall the SmoothSegNet extension")


ENGINE_PARENT_DIR = _engineParentDir()
if str(ENGINE_PARENT_DIR) not in sys.path:
    sys.path.insert(0, str(ENGINE_PARENT_DIR))

from SmoothSegNetLib import mrml
from SmoothSegNetLib.slicer_support.process import (
    ChildProcess,
    Finished,
    Quality,
    SegmentRequest,
    segment_command,
)
from SmoothSegNetLib.slicer_support.protocol import ProgressEvent, ProtocolReader

ProgressCallback = Callable[[ProgressEvent], None]
CompletionCallback = Callable[[Any, Exception | None], None]

#: How often the GUI polls the child process (ms).
POLL_INTERVAL_MS = 200


def pythonSlicerExecutable() -> str:
    """``PythonSlicer`` inside Slicer (the launcher that sets up Slicer's Python), else this Python."""
    for name in ("PythonSlicer", "PythonSlicer.exe"):
        found = shutil.which(name)
        if found:
            return found
    return sys.executable


def engineEnvironment() -> dict[str, str]:
    """Environment additions for the child: the engine on PYTHONPATH, unbuffered output."""
    paths = [str(ENGINE_PARENT_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


class SmoothSegNetRunner:
    """Runs one segmentation at a time and imports its result into ``scene``."""

    def __init__(self, scene: Any, pythonExecutable: str | None = None) -> None:
        self.scene = scene
        self.pythonExecutable = pythonExecutable or pythonSlicerExecutable()
        self._child: ChildProcess | None = None
        self._timer: Any = None
        self._job: dict[str, Any] = {}

    # -- running -------------------------------------------------------------------------------
    @property
    def isRunning(self) -> bool:
        return self._child is not None

    def process(
        self,
        inputVolume: Any,
        outputSegmentation: Any = None,
        quality: str = "fast",
        device: str = "auto",
        perLesionSegments: bool = True,
        liverModel: str | None = None,
        tumorModel: str | None = None,
        progressCallback: ProgressCallback | None = None,
        completionCallback: CompletionCallback | None = None,
        waitForCompletion: bool = False,
        timeoutS: float | None = None,
        runtime: str = "auto",
    ) -> Any:
        """Segment ``inputVolume``; the result goes into ``outputSegmentation`` (a new node when None).

        With ``waitForCompletion`` (scripts, tests) this blocks and returns the segmentation node, or
        raises. Otherwise it returns at once; a Qt timer streams progress to ``progressCallback`` and
        calls ``completionCallback(segmentationNode or None, error or None)`` at the end. ``runtime`` is
        ``segment --runtime``: ``auto`` (torch on a GPU, the ONNX graphs on the CPU), ``torch`` or ``onnx``.

        Raises:
            RuntimeError: a run is already going on, or (when waiting) the run failed.
            SmoothSegNetLib.errors.InputError: the input volume cannot be used (message says why).
        """
        if self.isRunning:
            raise RuntimeError("a segmentation is already running: wait for it or cancel it first")
        ct = mrml.volume_from_node(inputVolume)  # checks the node (no transform, grey levels) first
        workDir = Path(tempfile.mkdtemp(prefix="SmoothSegNet-"))
        try:
            from SmoothSegNetLib.io.writers import write_volume

            inputPath = write_volume(workDir / "input.nrrd", ct)
            request = SegmentRequest(
                inputPath,
                workDir / "output",
                device=device,
                quality=Quality(quality),
                per_lesion=perLesionSegments,
                liver_model=liverModel,
                tumor_model=tumorModel,
                runtime=runtime,
            )
            command = segment_command(request, self.pythonExecutable)
        except Exception:
            shutil.rmtree(workDir, ignore_errors=True)
            raise

        def onSuccess() -> Any:
            node, _table, _report = self.importResult(
                request.output_dir, inputVolume, outputSegmentation, perLesionSegments
            )
            return node

        job = {
            "workDir": workDir,
            "progress": progressCallback,
            "completion": completionCallback,
            "onSuccess": onSuccess,
        }
        return self._start(command, job, "Segmentation", waitForCompletion, timeoutS)

    def downloadModel(
        self,
        cardId: str,
        progressCallback: ProgressCallback | None = None,
        completionCallback: CompletionCallback | None = None,
        waitForCompletion: bool = False,
        timeoutS: float | None = None,
    ) -> Any:
        """Download a model's weights from its card's URL into the registry (sha256-checked), with progress.

        Completion receives the engine's one-line answer (``downloaded ID -> PATH``) or the error.
        """
        if self.isRunning:
            raise RuntimeError("another job is running: wait for it or cancel it first")
        command = [self.pythonExecutable, "-m", "SmoothSegNetLib", "models", "download", cardId, "--progress", "jsonl"]

        def onSuccess() -> Any:
            reader = self._child.reader if self._child is not None else None
            return reader.log_lines[-1] if reader and reader.log_lines else f"downloaded {cardId}"

        job = {"progress": progressCallback, "completion": completionCallback, "onSuccess": onSuccess}
        return self._start(command, job, f"Downloading {cardId}", waitForCompletion, timeoutS)

    def _start(
        self, command: list[str], job: dict[str, Any], what: str, waitForCompletion: bool, timeoutS: float | None
    ) -> Any:
        try:
            self._child = ChildProcess(command, env=engineEnvironment(), what=what)
        except Exception:
            if job.get("workDir") is not None:
                shutil.rmtree(job["workDir"], ignore_errors=True)
            raise
        logging.info("SmoothSegNet: started %s", " ".join(command))
        self._job = job
        if waitForCompletion:
            return self._waitAndFinish(timeoutS)
        import qt

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll)
        self._timer.start()
        return None

    def cancel(self) -> None:
        """Stop the running child and everything it started; no result is imported.

        With the GUI timer running this does not block: SIGTERM now, SIGKILL from the next polls if the
        child is still there after the grace period.
        """
        if self._child is not None:
            self._child.cancel(wait=self._timer is None)

    def _waitAndFinish(self, timeoutS: float | None) -> Any:
        child = self._child
        assert child is not None
        try:
            events, finished = child.wait(timeout_s=timeoutS)
            for event in events:
                self._report(event)
            return self._finish(finished)
        finally:
            self._cleanup()

    def _report(self, event: ProgressEvent) -> None:
        callback = self._job.get("progress")
        if callback is not None:
            callback(event)

    def _poll(self) -> None:
        child = self._child
        if child is None:
            return
        events, finished = child.poll()
        for event in events:
            self._report(event)
        if finished is None:
            return
        completion = self._job.get("completion")
        node, error = None, None
        try:
            node = self._finish(finished)
        except Exception as exc:  # handed to the widget, which shows it
            error = exc
        finally:
            self._cleanup()
        if completion is not None:
            completion(node, error)

    def _finish(self, finished: Finished) -> Any:
        if self._child is not None and self._child.cancel_requested:
            raise RuntimeError("cancelled by the user")  # even if it finished first: the user asked for nothing
        if finished.returncode != 0:
            raise RuntimeError(finished.message)
        return self._job["onSuccess"]()

    def _cleanup(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._child = None
        workDir = self._job.get("workDir")
        if workDir is not None:
            shutil.rmtree(workDir, ignore_errors=True)
        self._job = {}

    @property
    def protocol(self) -> ProtocolReader | None:
        """What the running child has said so far (log lines for a details box)."""
        return self._child.reader if self._child is not None else None

    # -- result ----------------------------------------------------------------------------------
    def importResult(
        self, outputDir: Path, inputVolume: Any, outputSegmentation: Any = None, perLesion: bool = True
    ) -> tuple[Any, Any, dict[str, Any] | None]:
        """Segmentation node + lesion table node (+ report dict) from a ``segment`` output folder."""
        node = mrml.import_result(
            self.scene, outputDir, inputVolume, per_lesion=perLesion, segmentation_node=outputSegmentation
        )
        report = self.storedReport(node)
        table = None
        if report is not None:
            table = mrml.table_from_report(self.scene, report, self.tableFor(node))
            mrml.place_beside(table, inputVolume)
            node.SetNodeReferenceID(TABLE_REFERENCE_ROLE, table.GetID())
        return node, table, report

    def tableFor(self, segmentationNode: Any) -> Any:
        """The lesion table node that belongs to ``segmentationNode`` (None if there is none yet)."""
        return segmentationNode.GetNodeReference(TABLE_REFERENCE_ROLE) if segmentationNode is not None else None

    @staticmethod
    def storedReport(node: Any) -> dict[str, Any] | None:
        from SmoothSegNetLib.slicer_support.session import previous_report_from_text

        return previous_report_from_text(node.GetAttribute(mrml.ATTRIBUTE_REPORT)) if node is not None else None

    def recomputeReport(self, inputVolume: Any, segmentationNode: Any) -> tuple[dict[str, Any], Any, tuple[int, ...]]:
        """Measure the segments as they are now (after edits); returns (report, table node, edited lesion ids).

        Lesion segments are renumbered without gaps (a deleted lesion closes its gap) and named to match.
        """
        import json

        from SmoothSegNetLib.slicer_support.session import EditedResult, recompute_report, with_lesions_split

        ct = mrml.volume_from_node(inputVolume)
        arrays = mrml.labelmap_from_segmentation(segmentationNode, inputVolume)
        result = EditedResult(arrays.labelmap, arrays.lesions, arrays.lesion_ids, arrays.edited_lesion_ids)
        report = recompute_report(ct, result, self.storedReport(segmentationNode))
        split = with_lesions_split(ct, result)
        if split is result:  # one segment per lesion: names follow the (gap-free) numbering
            mrml.rename_lesion_segments(segmentationNode, arrays.lesion_ids)
        # Keep the original network report for confidences; the current one goes on the table node.
        if self.storedReport(segmentationNode) is None:
            segmentationNode.SetAttribute(mrml.ATTRIBUTE_REPORT, json.dumps(report))
        table = mrml.table_from_report(self.scene, report, self.tableFor(segmentationNode), split.edited_lesion_ids)
        mrml.place_beside(table, inputVolume)
        segmentationNode.SetNodeReferenceID(TABLE_REFERENCE_ROLE, table.GetID())
        return report, table, split.edited_lesion_ids

    def exportResults(
        self, inputVolume: Any, segmentationNode: Any, outputDir: Path, picture: bool = True
    ) -> list[Path]:
        """segmentation.nrrd, lesions.nrrd, report.json, report.csv (and overview.png) of the current segments."""
        from SmoothSegNetLib.slicer_support.session import EditedResult, recompute_report, write_export

        ct = mrml.volume_from_node(inputVolume)
        arrays = mrml.labelmap_from_segmentation(segmentationNode, inputVolume)
        result = EditedResult(arrays.labelmap, arrays.lesions, arrays.lesion_ids, arrays.edited_lesion_ids)
        report = recompute_report(ct, result, self.storedReport(segmentationNode))
        return write_export(Path(outputDir), ct, result, report, picture=picture)

    def runEngine(self, command: list[str], timeoutS: float = 600) -> str:
        """Run a short engine command (export, send, models install) and return its stdout; raise on failure."""
        import subprocess

        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeoutS,
            env={**os.environ, **engineEnvironment()},
            check=False,
        )
        if completed.returncode != 0:
            reader = ProtocolReader()
            for line in completed.stderr.splitlines():
                reader.feed("stderr", line)
            raise RuntimeError(reader.failure_message(completed.returncode, what=f"'{command[3]}'"))
        return completed.stdout


#: Node reference from the segmentation node to its lesion table node.
TABLE_REFERENCE_ROLE = "SmoothSegNetLesionTable"


def isCtCandidate(node: Any) -> bool:
    """A grey-level scalar volume (labelmaps are scalar volumes too, but never a CT input)."""
    return node is not None and node.IsA("vtkMRMLScalarVolumeNode") and not node.IsA("vtkMRMLLabelMapVolumeNode")


def mostRecentVolume(scene: Any) -> Any:
    """The grey-level volume added last to ``scene`` (the default input), or None."""
    count = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    candidates = [scene.GetNthNodeByClass(n, "vtkMRMLScalarVolumeNode") for n in range(count)]
    candidates = [node for node in candidates if isCtCandidate(node)]
    return candidates[-1] if candidates else None


def dicomInstanceUids(volumeNode: Any) -> list[str]:
    """SOP instance UIDs of the DICOM slices the volume came from ([] if not from DICOM)."""
    return mrml.dicom_instance_uids(volumeNode)


def segmentIdOfLesion(segmentationNode: Any, lesionId: int) -> str | None:
    """The id of the segment holding lesion ``lesionId`` (by the tag the import wrote), or None."""
    if segmentationNode is None:
        return None
    segmentation = segmentationNode.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segmentId = segmentation.GetNthSegmentID(index)
        if mrml.lesion_id_of_segment(segmentation.GetSegment(segmentId)) == lesionId:
            return str(segmentId)
    return None
