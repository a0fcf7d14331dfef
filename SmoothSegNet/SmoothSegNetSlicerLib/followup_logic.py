"""Logic of the "Compare with prior study" section, without dialogs: run the follow-up in the child process,
show both studies side by side, centre them on a tracked lesion, export the outputs.

``FollowupJobs`` is a mixin of :class:`~SmoothSegNetSlicerLib.logic.SmoothSegNetRunner` (one job at a time,
the same child-process machinery, ``self.scene``); the table rows, centres and response text come from the
engine's GUI-free :mod:`SmoothSegNetLib.slicer_support.followup`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from SmoothSegNetLib import mrml
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.slicer_support import followup as followup_support
from SmoothSegNetSlicerLib.jobs import CompletionCallback, ProgressCallback

#: The compare layout: prior | current side by side, axial on the top row, coronal on the bottom row.
LAYOUT_ID = 51301
VIEWS = (
    ("SmoothSegNetPriorAxial", "baseline", "Axial", "Prior"),
    ("SmoothSegNetCurrentAxial", "followup", "Axial", "Current"),
    ("SmoothSegNetPriorCoronal", "baseline", "Coronal", "Prior"),
    ("SmoothSegNetCurrentCoronal", "followup", "Coronal", "Current"),
)
#: Files of a follow-up output folder that "Export follow-up" copies (with the transforms/ folder).
EXPORTED_FILES = ("followup.json", "followup.csv", "followup.png")


def _view_xml(name: str, orientation: str, label: str) -> str:
    props = {"orientation": orientation, "viewlabel": label[0] + orientation[0], "viewcolor": "#8C8C8C"}
    body = "".join(f'<property name="{k}" action="default">{v}</property>' for k, v in props.items())
    return f'<item><view class="vtkMRMLSliceNode" singletontag="{name}">{body}</view></item>'


def layout_xml() -> str:
    """Slicer layout description of :data:`LAYOUT_ID` (two rows, prior on the left, current on the right)."""
    rows = [VIEWS[:2], VIEWS[2:]]
    items = "".join(
        '<item><layout type="horizontal">' + "".join(_view_xml(n, o, t) for n, _s, o, t in row) + "</layout></item>"
        for row in rows
    )
    return f'<layout type="vertical">{items}</layout>'


def _folderCt(folder: Path) -> Any:
    """The CT an output folder's report.json names (None when it names none that exists here)."""
    from SmoothSegNetLib.io import read_volume

    entry = json.loads((folder / "report.json").read_text(encoding="utf-8")).get("input", {})
    for key in ("path", "source"):
        if entry.get(key) and Path(entry[key]).is_file():
            return read_volume(entry[key])
    return None


@dataclass
class FollowupResult:
    """A finished comparison: the output folder (kept until the next one), followup.json, and the scene nodes."""

    outputDir: Path
    data: dict[str, Any]
    priorVolume: Any
    currentVolume: Any
    priorSegmentation: Any = None
    currentSegmentation: Any = None

    def rows(self) -> list[list[str]]:
        return followup_support.tracked_lesion_rows(self.data)

    @property
    def visit(self) -> int:
        """The follow-up visit the table shows (the last)."""
        return max((r["visit"] for r in self.data["lesions"]), default=1)

    def summary(self) -> str:
        return followup_support.response_summary(self.data)


class FollowupJobs:
    """Mixin of the runner: ``compareWithPrior``, ``showSideBySide``, ``centreOnLesion``, ``exportFollowup``."""

    followupResult: FollowupResult | None = None

    def compareWithPrior(
        self,
        currentVolume: Any,
        currentSegmentation: Any,
        priorVolume: Any = None,
        priorSegmentation: Any = None,
        priorFolder: str | Path | None = None,
        phase: str = "unknown",
        progressCallback: ProgressCallback | None = None,
        completionCallback: CompletionCallback | None = None,
        waitForCompletion: bool = False,
        timeoutS: float | None = None,
    ) -> FollowupResult | None:
        """Compare the current study (CT + segmentation in the scene) with the prior one: a prior CT and its
        segmentation in the scene, or a prior output folder of segment/report (then ``priorVolume``, if
        given, is only shown; without it the folder's CT and segmentation are loaded into the scene). Runs
        in the child process; waiting returns the :class:`FollowupResult`, otherwise
        ``completionCallback(result or None, error or None)`` gets it.

        Raises:
            InputError: a study is incomplete or the prior is the current study (the message says which).
            RuntimeError: another job is running, or (when waiting) the job failed.
        """
        from SmoothSegNetLib.slicer_support.followup_job import (
            FollowupJob,
            followup_job_command,
            write_followup_job,
        )

        if self.isRunning:  # type: ignore[attr-defined]
            raise RuntimeError("another job is running: wait for it or cancel it first")
        self._lastReader = None
        studies = {1: self._sceneStudy(currentVolume, currentSegmentation, "current")}
        prior = self._priorVisit(priorVolume, priorSegmentation, priorFolder, currentVolume, studies)
        workDir = Path(tempfile.mkdtemp(prefix="SmoothSegNet-followup-job-"))
        outputDir = workDir / "followup"  # removed with the job folder unless the job succeeds
        job = FollowupJob([prior, None], str(outputDir), phase)
        loaded: dict[str, Any] = {}

        def prepare() -> None:
            write_followup_job(workDir, job, studies)
            if prior is not None and priorVolume is None:  # the folder's CT, read here rather than on the GUI thread
                loaded["ct"] = _folderCt(Path(prior))

        def onSuccess() -> FollowupResult:
            kept = Path(tempfile.mkdtemp(prefix="SmoothSegNet-followup-")) / "followup"
            shutil.move(outputDir, kept)  # kept for the export until the next comparison
            data = json.loads((kept / "followup.json").read_text(encoding="utf-8"))
            previous = self.followupResult
            if previous is not None:
                shutil.rmtree(previous.outputDir.parent, ignore_errors=True)
            volume, segmentation = priorVolume, priorSegmentation
            if loaded.get("ct") is not None:
                assert prior is not None
                volume = self._addVolume(loaded["ct"], f"Prior CT ({Path(prior).name})")
                segmentation = mrml.import_result(self.scene, prior, volume)  # type: ignore[attr-defined]
            self.followupResult = FollowupResult(kept, data, volume, currentVolume, segmentation, currentSegmentation)
            return self.followupResult

        jobSpec = {
            "workDir": workDir,
            "progress": progressCallback,
            "completion": completionCallback,
            "onSuccess": onSuccess,
            "prepare": prepare,
        }
        command = followup_job_command(workDir, self.pythonExecutable)  # type: ignore[attr-defined]
        return self._start(command, jobSpec, "Follow-up comparison", waitForCompletion, timeoutS)  # type: ignore[attr-defined]

    def _addVolume(self, ct: Any, name: str) -> Any:
        import slicer

        node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)  # type: ignore[attr-defined]
        slicer.util.updateVolumeFromArray(node, ct.array)
        node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ct.geometry.ijk_to_ras()))
        node.CreateDefaultDisplayNodes()
        return node

    def _sceneStudy(self, volume: Any, segmentation: Any, which: str) -> Any:
        from SmoothSegNetLib.slicer_support.followup_job import SceneStudy
        from SmoothSegNetLib.slicer_support.session import EditedResult

        if volume is None or segmentation is None:
            raise InputError(
                f"the {which} study needs a CT and its segmentation: select both (or run the segmentation)"
            )
        ct = mrml.volume_from_node(volume)
        arrays = mrml.labelmap_from_segmentation(segmentation, volume)
        result = EditedResult(arrays.labelmap, arrays.lesions, arrays.lesion_ids, arrays.edited_lesion_ids)
        return SceneStudy(ct, result, self.storedReport(segmentation))  # type: ignore[attr-defined]

    def _priorVisit(
        self, volume: Any, segmentation: Any, folder: str | Path | None, currentVolume: Any, studies: dict[int, Any]
    ) -> str | None:
        """The prior visit's folder (None: taken from the scene into ``studies[0]``)."""
        if folder:
            if not (Path(folder) / "report.json").is_file():
                raise InputError(
                    f"prior output folder {folder} has no report.json: choose an output folder of segment or report"
                )
            return str(Path(folder).resolve())
        if volume is not None and volume is currentVolume:
            raise InputError("the prior CT is the current CT: select the earlier study's CT as the prior")
        studies[0] = self._sceneStudy(volume, segmentation, "prior")
        return None

    # -- views ---------------------------------------------------------------------------------
    def _sliceNodes(self, name: str, orientation: str) -> tuple[Any, Any]:
        """The slice node and slice composite node of one compare view (created when the scene lacks them)."""
        scene = self.scene  # type: ignore[attr-defined]
        sliceNode = scene.GetSingletonNode(name, "vtkMRMLSliceNode")
        if sliceNode is None:
            sliceNode = scene.CreateNodeByClass("vtkMRMLSliceNode")
            sliceNode.SetSingletonTag(name)
            sliceNode.SetLayoutName(name)
            sliceNode.SetName(name)
            sliceNode = scene.AddNode(sliceNode)
            sliceNode.UnRegister(None)
        sliceNode.SetOrientation(orientation)
        composite = None
        for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
            candidate = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
            if candidate.GetLayoutName() == name:
                composite = candidate
        if composite is None:
            composite = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
            composite.SetLayoutName(name)
        return sliceNode, composite

    def showSideBySide(self, result: FollowupResult) -> list[tuple[Any, Any]]:
        """Switch to the compare layout: prior CT in the left views, current CT in the right ones, each study's
        segmentation only in its own views. Returns (slice node, composite node) per view of :data:`VIEWS`."""
        scene = self.scene  # type: ignore[attr-defined]
        layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        if layout is not None:
            if not layout.IsLayoutDescription(LAYOUT_ID):
                layout.AddLayoutDescription(LAYOUT_ID, layout_xml())
            layout.SetViewArrangement(LAYOUT_ID)
        views = [self._sliceNodes(name, orientation) for name, _study, orientation, _label in VIEWS]
        volumes = {"baseline": result.priorVolume, "followup": result.currentVolume}
        for (_name, study, _orientation, _label), (_slice, composite) in zip(VIEWS, views):
            volume = volumes[study]
            composite.SetBackgroundVolumeID(volume.GetID() if volume is not None else None)
            composite.SetLabelVolumeID(None)
        self._restrictSegmentation(result.priorSegmentation, views[1::2])
        self._restrictSegmentation(result.currentSegmentation, views[0::2])
        return views

    def _restrictSegmentation(self, segmentation: Any, other: list[tuple[Any, Any]]) -> None:
        """Show ``segmentation`` in every view but the other study's compare views (``other``)."""
        if segmentation is None or segmentation.GetDisplayNode() is None:
            return
        scene = self.scene  # type: ignore[attr-defined]
        hidden = {sliceNode.GetID() for sliceNode, _c in other}
        display = segmentation.GetDisplayNode()
        display.RemoveAllViewNodeIDs()
        for index in range(scene.GetNumberOfNodesByClass("vtkMRMLAbstractViewNode")):
            view = scene.GetNthNodeByClass(index, "vtkMRMLAbstractViewNode")
            if view.GetID() not in hidden:
                display.AddViewNodeID(view.GetID())

    def centreOnLesion(self, result: FollowupResult, trackingId: str) -> dict[str, tuple[float, float, float] | None]:
        """Centre the prior views on the lesion in the prior study and the current views on it in the current
        study (RAS); where the lesion is absent (new, disappeared), on the other study's position mapped through
        the registration. Returns the centres."""
        centres = followup_support.row_view_centres_ras(result.data, trackingId, result.visit)
        for name, study, orientation, _label in VIEWS:
            centre = centres[study]
            if centre is not None:
                sliceNode, _composite = self._sliceNodes(name, orientation)
                sliceNode.JumpSliceByCentering(*centre)
        return centres

    def exportFollowup(self, result: FollowupResult, outputDir: str | Path) -> list[Path]:
        """Copy followup.json/csv/png and the transforms into ``outputDir`` (all files appear together)."""
        from SmoothSegNetLib.outputs import StagedOutputDir

        source = result.outputDir
        with StagedOutputDir(outputDir) as stage:
            for name in EXPORTED_FILES:
                if (source / name).is_file():
                    shutil.copy2(source / name, stage.path(name))
            for transform in sorted((source / "transforms").glob("*")):
                shutil.copy2(transform, stage.path(f"transforms/{transform.name}"))
        return stage.committed
