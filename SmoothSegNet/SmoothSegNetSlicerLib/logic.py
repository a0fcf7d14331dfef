"""The module's logic without Qt dialogs: run ``segment`` in a child process and bring the result in.

``SmoothSegNetRunner`` needs only an MRML scene, so the same code runs inside Slicer (``slicer.mrmlScene``)
and in pytest against slicer-core. Qt is imported only for the non-blocking path (a ``qt.QTimer`` polls
the child process). Everything here raises; the widget decides how to show it.
"""

from __future__ import annotations

import json
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
from SmoothSegNetLib.slicer_support.process import Quality, SegmentRequest, segment_command
from SmoothSegNetLib.slicer_support.protocol import ProtocolReader
from SmoothSegNetSlicerLib.followup_logic import FollowupJobs
from SmoothSegNetSlicerLib.jobs import ChildJobs, CompletionCallback, ProgressCallback


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


class SmoothSegNetRunner(FollowupJobs, ChildJobs):
    """Runs one job at a time (segmentation, report, export, send, download, follow-up); results go into ``scene``."""

    def __init__(self, scene: Any, pythonExecutable: str | None = None) -> None:
        ChildJobs.__init__(self)
        self.scene = scene
        self.pythonExecutable = pythonExecutable or pythonSlicerExecutable()

    def _childEnvironment(self) -> dict[str, str]:
        return engineEnvironment()

    # -- running -------------------------------------------------------------------------------
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
        skipPlausibilityCheck: bool = False,
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
        self._lastReader = None  # an error before the child starts must not show an earlier run's log
        ct = mrml.volume_from_node(inputVolume)  # checks the node (no transform, grey levels) first
        workDir = Path(tempfile.mkdtemp(prefix="SmoothSegNet-"))
        inputPath = workDir / "input.nrrd"
        try:
            request = SegmentRequest(
                inputPath,
                workDir / "output",
                device=device,
                quality=Quality(quality),
                per_lesion=perLesionSegments,
                liver_model=liverModel,
                tumor_model=tumorModel,
                skip_plausibility_check=skipPlausibilityCheck,
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

        def prepare() -> None:
            from SmoothSegNetLib.io.writers import write_volume

            # Uncompressed, and from a worker thread: gzip took 3.7 s for 400 slices on the GUI thread.
            write_volume(inputPath, ct, compress=False)

        job = {
            "workDir": workDir,
            "progress": progressCallback,
            "completion": completionCallback,
            "onSuccess": onSuccess,
            "prepare": prepare,
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
        self._lastReader = None
        command = [self.pythonExecutable, "-m", "SmoothSegNetLib", "models", "download", cardId, "--progress", "jsonl"]

        def onSuccess() -> Any:
            reader = self._child.reader if self._child is not None else None
            return reader.log_lines[-1] if reader and reader.log_lines else f"downloaded {cardId}"

        job = {"progress": progressCallback, "completion": completionCallback, "onSuccess": onSuccess}
        return self._start(command, job, f"Downloading {cardId}", waitForCompletion, timeoutS)

    # -- result ----------------------------------------------------------------------------------
    def importResult(
        self, outputDir: Path, inputVolume: Any, outputSegmentation: Any = None, perLesion: bool = True
    ) -> tuple[Any, Any, dict[str, Any] | None]:
        """Segmentation node + lesion table node (+ report dict) from a ``segment`` output folder."""
        node = mrml.import_result(
            self.scene, outputDir, inputVolume, per_lesion=perLesion, segmentation_node=outputSegmentation
        )
        report = self.storedReport(node)
        if perLesion:
            from SmoothSegNetSlicerLib.candidates import importCandidates

            importCandidates(node, inputVolume, Path(outputDir), report)
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

    def recomputeReport(
        self,
        inputVolume: Any,
        segmentationNode: Any,
        progressCallback: ProgressCallback | None = None,
        completionCallback: CompletionCallback | None = None,
        waitForCompletion: bool = True,
        timeoutS: float | None = None,
    ) -> tuple[dict[str, Any], Any, tuple[int, ...]] | None:
        """Measure the segments as they are now (after edits): (report, table node, edited lesion ids).

        Lesion segments are renumbered without gaps (a deleted lesion closes its gap) and named to match.
        The measuring runs in the export job's child process; waiting returns the tuple, otherwise
        ``completionCallback(tuple or None, error or None)`` gets it.
        """

        def apply(arrays: Any, reportDir: Path) -> tuple[dict[str, Any], Any, tuple[int, ...]]:
            report = json.loads((reportDir / "report.json").read_text(encoding="utf-8"))
            return self.applyMeasuredReport(inputVolume, segmentationNode, report, arrays)

        return self._runExportJob(
            inputVolume, segmentationNode, None, {"report_only": True, "picture": False}, apply,
            progressCallback, completionCallback, waitForCompletion, timeoutS,
        )  # fmt: skip

    def applyMeasuredReport(
        self, inputVolume: Any, segmentationNode: Any, report: dict[str, Any], arrays: Any
    ) -> tuple[dict[str, Any], Any, tuple[int, ...]]:
        """Bring a report of the current segments (``arrays``: ``mrml.SegmentationArrays``) into the scene.

        Lesion segments are renamed to the gap-free numbering; the table node gets the report and the edited
        marks. Returns (report, table node, edited lesion ids). Used by "Recompute report" and the live table.
        """
        from SmoothSegNetLib.slicer_support.session import TUMOR_SEGMENT_ID

        perLesion = TUMOR_SEGMENT_ID not in arrays.lesion_ids.values()
        if perLesion:  # one segment per lesion: names follow the (gap-free) numbering
            mrml.rename_lesion_segments(segmentationNode, arrays.lesion_ids)
        edited = tuple(arrays.edited_lesion_ids) if perLesion else ()
        # Keep the original network report for confidences; the current one goes on the table node.
        if self.storedReport(segmentationNode) is None:
            segmentationNode.SetAttribute(mrml.ATTRIBUTE_REPORT, json.dumps(report))
        table = mrml.table_from_report(self.scene, report, self.tableFor(segmentationNode), edited)
        mrml.place_beside(table, inputVolume)
        segmentationNode.SetNodeReferenceID(TABLE_REFERENCE_ROLE, table.GetID())
        return report, table, edited

    def exportResults(
        self,
        inputVolume: Any,
        segmentationNode: Any,
        outputDir: Path,
        picture: bool = True,
        dicomSeriesFiles: list[str] | None = None,
        perLesion: bool = True,
        pacs: Any = None,
        progressCallback: ProgressCallback | None = None,
        completionCallback: CompletionCallback | None = None,
        waitForCompletion: bool = True,
        timeoutS: float | None = None,
    ) -> str | None:
        """Export the segments as they are now into ``outputDir``, in a child process (export_job).

        Always: segmentation.nrrd, lesions.nrrd, report.json/csv (and overview.png). With
        ``dicomSeriesFiles`` (the source slices' files): seg.dcm and sr.dcm too. With ``pacs``
        (:class:`~SmoothSegNetLib.slicer_support.export_job.PacsTarget`): then sent there; a failed export
        sends nothing. Waiting returns the job's summary line; otherwise
        ``completionCallback(summary or None, error or None)`` is called at the end.

        Raises:
            RuntimeError: another job is running, or a source slice is no longer in the DICOM database, or
                (when waiting) the job failed.
        """
        if dicomSeriesFiles is not None and not all(dicomSeriesFiles):
            raise RuntimeError("some source slices are no longer in the DICOM database: import the series again")
        options = {"picture": picture, "dicom": dicomSeriesFiles is not None, "per_lesion": perLesion, "pacs": pacs}

        def summary(arrays: Any, reportDir: Path) -> Any:
            reader = self._child.reader if self._child is not None else None
            return reader.log_lines[-1] if reader and reader.log_lines else f"Exported into {outputDir}"

        return self._runExportJob(
            inputVolume, segmentationNode, Path(outputDir).resolve(), options, summary,
            progressCallback, completionCallback, waitForCompletion, timeoutS, dicomSeriesFiles or [],
        )  # fmt: skip

    def _runExportJob(
        self,
        inputVolume: Any,
        segmentationNode: Any,
        outputDir: Path | None,
        options: dict[str, Any],
        onSuccess: Callable[[Any, Path], Any],
        progressCallback: ProgressCallback | None,
        completionCallback: CompletionCallback | None,
        waitForCompletion: bool,
        timeoutS: float | None,
        seriesFiles: list[str] | None = None,
    ) -> Any:
        """Read the segments here (fast: shared layers); the job's files are written by a worker thread."""
        from SmoothSegNetLib.slicer_support.export_job import ExportJob, export_job_command, write_job
        from SmoothSegNetLib.slicer_support.session import EditedResult

        if self.isRunning:
            raise RuntimeError("another job is running: wait for it or cancel it first")
        self._lastReader = None
        ct = mrml.volume_from_node(inputVolume)
        arrays = mrml.labelmap_from_segmentation(segmentationNode, inputVolume)
        result = EditedResult(arrays.labelmap, arrays.lesions, arrays.lesion_ids, arrays.edited_lesion_ids)
        workDir = Path(tempfile.mkdtemp(prefix="SmoothSegNet-job-"))
        target = outputDir if outputDir is not None else workDir / "report"
        from SmoothSegNetSlicerLib.live import manualAxesOf

        exportJob = ExportJob(
            str(target), arrays.lesion_ids, arrays.edited_lesion_ids, self.storedReport(segmentationNode),
            manual_axes=manualAxesOf(segmentationNode, arrays.lesion_ids), **options,
        )  # fmt: skip
        series = [Path(f) for f in seriesFiles or []]
        job = {
            "workDir": workDir,
            "progress": progressCallback,
            "completion": completionCallback,
            "onSuccess": lambda: onSuccess(arrays, target),
            "prepare": lambda: write_job(workDir, ct, result, exportJob, series),
        }
        what = "Recomputing the report" if exportJob.report_only else "Export"
        if exportJob.dicom:
            what = "Sending to the PACS" if exportJob.pacs is not None else "DICOM export"
        return self._start(export_job_command(workDir, self.pythonExecutable), job, what, waitForCompletion, timeoutS)

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
