"""SmoothSegNet: one-click liver and liver-tumor segmentation of CT, editable result, live lesion table.

This file only wires Slicer's GUI to the logic. The heavy work runs in a child process
(``PythonSlicer -m SmoothSegNetLib segment ... --progress jsonl``); the GUI-free parts live in
``SmoothSegNetSlicerLib`` (next to this file) and in the engine's ``SmoothSegNetLib.slicer_support``. The
panel's sections (``SmoothSegNetSlicerLib/*_section.py``) are mixins of ``SmoothSegNetWidget``.
"""

# No "from __future__ import annotations" here: parameterNodeWrapper reads the parameter node's
# annotations with typing.get_type_hints while Slicer is still loading this file; real objects are safer
# than strings to resolve then. Slicer >= 5.8 runs Python >= 3.12, so "X | None" works at run time.
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SmoothSegNetSlicerLib.live import LiveReport
from SmoothSegNetSlicerLib.logic import (
    ENGINE_PARENT_DIR,
    SmoothSegNetRunner,
    dicomInstanceUids,
    isCtCandidate,
    mostRecentVolume,
)
from SmoothSegNetSlicerLib.selftest import SmoothSegNetTest

# Importing the logic put the engine (SmoothSegNetLib) on sys.path; these imports need it.
ENGINE_DIR = ENGINE_PARENT_DIR

from SmoothSegNetSlicerLib.export_section import ExportSectionMixin
from SmoothSegNetSlicerLib.followup_panel import FollowupPanel
from SmoothSegNetSlicerLib.models_section import ModelsSectionMixin
from SmoothSegNetSlicerLib.review_section import ReviewSectionMixin
from SmoothSegNetSlicerLib.run_section import RunSectionMixin

from SmoothSegNetLib.slicer_support.state import Event, State, WidgetStateMachine, why_cannot_apply

QUALITIES = ["fast", "full", "liver-only"]
DEVICES = ["auto", "cpu", "cuda"]
RUNTIMES = ["auto", "torch", "onnx"]


class SmoothSegNet(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent: Any) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SmoothSegNet"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SmoothSegNet contributors"]
        self.parent.helpText = """
Segments the liver and liver tumors in a CT with a global liver network followed by a local tumor
network (the method of arXiv 2410.10005), lists every lesion (volume, RECIST long and short axis,
3D diameter, mean HU) and exports DICOM-SEG and a structured report.<br><br>
<b>Warning:</b> the bundled demo models are trained on synthetic phantoms only. They show that the
software works; they say nothing about performance on patients. Not for clinical use.<br><br>
Steps: select the CT, click <i>Segment Liver &amp; Tumors</i>, correct the segments in Segment Editor
(the lesion table follows each edit by itself; <i>Recompute report</i> measures again on request), then
export or send to the PACS.
"""
        self.parent.acknowledgementText = """
Method: SmoothSegNet, "A Global-Local Framework for Liver Tumor Segmentation with Clinical
Knowledge-Informed Label Smoothing" (arXiv 2410.10005). Built on 3D Slicer, MONAI, PyTorch,
SimpleITK, pydicom and highdicom.
"""


@parameterNodeWrapper
class SmoothSegNetParameterNode:
    """The module's state in the scene (saved with it).

    inputVolume: the CT. outputSegmentation: where the result goes (None: a new node).
    quality: fast (demo models) | full (installed paper-configuration models) | liver-only.
    device: auto | cpu | cuda. perLesionSegments: one segment per lesion instead of one "Tumor".
    skipPlausibilityCheck: segment an image that does not look like a CT of a body (unusual but real data).
    runtime: auto (PyTorch on a GPU, the ONNX graphs on the CPU) | torch | onnx.
    priorVolume, priorSegmentation: the earlier study of "Compare with prior study".
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    quality: Annotated[str, Choice(QUALITIES)] = "fast"
    device: Annotated[str, Choice(DEVICES)] = "auto"
    perLesionSegments: bool = True
    skipPlausibilityCheck: bool = False
    runtime: Annotated[str, Choice(RUNTIMES)] = "auto"
    priorVolume: vtkMRMLScalarVolumeNode
    priorSegmentation: vtkMRMLSegmentationNode


class SmoothSegNetLogic(ScriptedLoadableModuleLogic, SmoothSegNetRunner):
    """Thin logic: the runner on ``slicer.mrmlScene`` plus dependency installation. Shows no dialogs."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        SmoothSegNetRunner.__init__(self, slicer.mrmlScene)

    def getParameterNode(self) -> SmoothSegNetParameterNode:
        return SmoothSegNetParameterNode(super().getParameterNode())

    def missingDependencies(self, withTorch: bool | None = None) -> tuple[list[Any], Any]:
        """(missing packages, missing torch or None); installs nothing.

        The CPU engine (Resources/requirements.txt: ONNX graphs on OpenVINO / ONNX Runtime) always; PyTorch
        (PyTorch extension) and Resources/requirements-torch.txt only with ``withTorch``, which defaults to
        "a usable NVIDIA GPU is present".
        """
        try:
            import packaging  # noqa: F401  (ships with Slicer; needed to compare versions)
        except ImportError:
            slicer.util.pip_install("packaging")
        from packaging.requirements import Requirement

        from SmoothSegNetLib.slicer_support.dependencies import (
            TORCH_REQUIREMENT,
            missing_requirements,
            requirements_to_install,
            wants_torch,
        )

        torchWanted = wants_torch(withTorch)
        missing = missing_requirements(requirements_to_install(torchWanted))
        torch = missing_requirements([Requirement(TORCH_REQUIREMENT)]) if torchWanted else []
        return missing, (torch[0] if torch else None)

    def installDependencies(self, missing: list[Any], torchMissing: Any) -> None:
        """Install torch (PyTorch extension) and the missing packages; raises RuntimeError with a recovery hint."""
        from SmoothSegNetLib.slicer_support.dependencies import (
            TORCH_REQUIREMENT,
            install_failure_hint,
        )

        try:
            if torchMissing is not None:
                try:
                    import PyTorchUtils
                except ImportError as exc:
                    raise RuntimeError(
                        "the PyTorch extension is missing: install 'PyTorch' from the Extensions Manager"
                    ) from exc
                version = TORCH_REQUIREMENT.replace("torch", "", 1)
                if (
                    PyTorchUtils.PyTorchUtilsLogic().installTorch(
                        askConfirmation=False, torchVersionRequirement=version
                    )
                    is None
                ):
                    raise RuntimeError("the PyTorch extension could not install torch")
            if missing:
                slicer.util.pip_install([item.requirement for item in missing])
        except Exception as exc:
            raise RuntimeError(install_failure_hint(str(exc))) from exc


class SmoothSegNetWidget(
    ScriptedLoadableModuleWidget,
    VTKObservationMixin,
    RunSectionMixin,
    ReviewSectionMixin,
    ExportSectionMixin,
    ModelsSectionMixin,
):
    """The panel. Draws what ``WidgetStateMachine`` says; every dialog of the module is shown from the widget.

    This class holds the panel's state, its setup and ``_updateView``; each section's slots are in a mixin of
    ``SmoothSegNetSlicerLib``: run_section.py (segment, recompute, live table), review_section.py (lesion and
    candidate tables, row actions), export_section.py (export, send, PACS settings), models_section.py (install,
    download), and followup_panel.py ("Compare with prior study", a panel object rather than a mixin).
    """

    def __init__(self, parent: Any = None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: SmoothSegNetLogic | None = None
        self._parameterNode: SmoothSegNetParameterNode | None = None
        self._parameterNodeGuiTag: Any = None
        self._state = WidgetStateMachine()
        self._dependenciesChecked = False
        self._report: dict[str, Any] | None = None
        self._editedLesionIds: tuple[int, ...] = ()
        self._downloadQueue: list[str] = []
        self._live: LiveReport | None = None
        self._axesWatchers: list[Any] = []
        self._adder: Any = None  # "Add lesion at point" (add_at_point.PointAdder), made on the first click
        self._addPoint: tuple[Any, int] | None = None  # its markups point list and observer tag
        self.followupPanel: FollowupPanel | None = None  # "Compare with prior study" (followup_panel.py)

    # -- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SmoothSegNet.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SmoothSegNetLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.recomputeButton.connect("clicked(bool)", self.onRecomputeButton)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReportButton)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicomButton)
        self.ui.sendToPacsButton.connect("clicked(bool)", self.onSendToPacsButton)
        self.ui.installModelButton.connect("clicked(bool)", self.onInstallModelButton)
        self.ui.downloadModelsButton.connect("clicked(bool)", self.onDownloadModelsButton)
        self.ui.lesionTableWidget.connect("itemSelectionChanged()", self.onLesionSelected)
        self.ui.showRecistButton.connect("clicked(bool)", self.onShowRecistButton)
        self.ui.deleteLesionButton.connect("clicked(bool)", self.onDeleteLesionButton)
        self.ui.addLesionButton.connect("clicked(bool)", self.onAddLesionButton)
        self.ui.acceptCandidateButton.connect("clicked(bool)", lambda *a: self._reviewCandidate(accept=True))
        self.ui.rejectCandidateButton.connect("clicked(bool)", lambda *a: self._reviewCandidate(accept=False))
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self._updateView)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onOutputChanged)
        for name in ("pacsHostLineEdit", "pacsAetLineEdit"):
            getattr(self.ui, name).connect("editingFinished()", self._savePacsSettings)
        self.ui.pacsPortSpinBox.connect("valueChanged(int)", self._savePacsSettings)
        self._loadPacsSettings()
        self._setupLesionTable()
        self.ui.exportDirectoryButton.directory = str(Path.home())
        self.followupPanel = FollowupPanel(self)
        self.initializeParameterNode()
        self._updateView()

    def cleanup(self) -> None:
        self.removeObservers()
        self._watchEdits(None)
        self._stopAddAtPoint()
        if self.logic is not None and self.logic.isRunning:
            self.logic.cancel()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller: Any, event: Any) -> None:
        if self.logic is not None and self.logic.isRunning:
            self.logic.cancel()
        self._watchEdits(None)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller: Any, event: Any) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller: Any, event: Any, node: Any) -> None:
        # A CT loaded while the module is open becomes the input if none is chosen yet.
        if self._parameterNode and not self._parameterNode.inputVolume and isCtCandidate(node):
            qt.QTimer.singleShot(0, lambda: self._selectIfStillEmpty(node))

    def _selectIfStillEmpty(self, node: Any) -> None:
        if self._parameterNode and not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = node

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = mostRecentVolume(slicer.mrmlScene)

    def setParameterNode(self, inputParameterNode: SmoothSegNetParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateView)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateView)
            self._updateView()

    # -- drawing -------------------------------------------------------------------------------
    def _updateView(self, *args: Any) -> None:
        node = self._parameterNode.inputVolume if self._parameterNode else None
        downloading = bool(self._downloadQueue) or (
            self.logic is not None and self.logic.isRunning and not self._state.busy
        )
        reason = why_cannot_apply(
            has_input_volume=node is not None,
            input_transformed=node is not None and node.GetParentTransformNode() is not None,
            other_job="the model download" if downloading else "",
        )
        view = self._state.view(reason if not self._state.busy else "")
        self.ui.applyButton.text = view.button_text.replace("&", "&&")  # a single & would be a shortcut mark
        self.ui.applyButton.enabled = view.button_enabled
        self.ui.applyButton.toolTip = view.button_tooltip
        self.ui.progressBar.visible = view.progress_visible
        for name in ("inputVolumeSelector", "outputSegmentationSelector", "qualityComboBox", "deviceComboBox"):
            getattr(self.ui, name).enabled = view.inputs_enabled
        segmentation = self._parameterNode.outputSegmentation if self._parameterNode else None
        hasResult = segmentation is not None and node is not None and not self._state.busy
        self.ui.recomputeButton.enabled = hasResult
        self.ui.exportReportButton.enabled = hasResult
        fromDicom = hasResult and bool(dicomInstanceUids(node))
        self.ui.exportDicomButton.enabled = fromDicom
        self.ui.exportDicomButton.toolTip = (
            "Write seg.dcm and sr.dcm referencing the source series"
            if fromDicom
            else "Available when the CT was loaded from DICOM (DICOM module) and a result exists"
        )
        self.ui.sendToPacsButton.enabled = fromDicom and bool(self.ui.pacsHostLineEdit.text)
        for name in ("showRecistButton", "deleteLesionButton", "addLesionButton", "acceptCandidateButton",
                     "rejectCandidateButton"):  # fmt: skip
            getattr(self.ui, name).enabled = hasResult
        if self.followupPanel is not None:
            self.followupPanel.updateView()

    # -- used by every section ------------------------------------------------------------------
    def _ensureDependencies(self) -> bool:
        """On first use only: check, ask once with the full list, install. False when declined."""
        if self._dependenciesChecked:
            return True
        from SmoothSegNetLib.slicer_support.dependencies import confirmation_text

        missing, torchMissing = self.logic.missingDependencies()
        question = confirmation_text(missing, torchMissing)
        if question:
            if not slicer.util.confirmOkCancelDisplay(question, "SmoothSegNet: install Python packages"):
                return False
            with slicer.util.WaitCursor():
                self.logic.installDependencies(missing, torchMissing)
        self._dependenciesChecked = True
        return True

    def _finishJob(self, error: Exception | None, onSuccess: Callable[[], str]) -> None:
        """End of a background job (segment, recompute, export): cancelled, failed, or ``onSuccess`` shows the
        result and returns the status line; the panel is then updated."""
        if self._state.state == State.CANCELLING:
            self._state.handle(Event.STOPPED)
            self.ui.statusLabel.text = "Cancelled"
        elif error is not None:
            self._fail(error)
        else:
            self._state.handle(Event.FINISHED)
            status = onSuccess()
            self._state.handle(Event.IMPORTED)
            self.ui.statusLabel.text = status
        self._updateView()

    def _fail(self, error: Exception) -> None:
        logging.error("SmoothSegNet: %s", error, exc_info=error)
        if self._state.state in (State.STARTING, State.RUNNING, State.IMPORTING):
            self._state.handle(Event.FAIL, str(error))
        self.ui.statusLabel.text = f"Failed: {error}"
        details = "\n".join(self.logic.protocol.log_lines[-40:]) if self.logic and self.logic.protocol else None
        slicer.util.errorDisplay(str(error), "SmoothSegNet", detailedText=details)


__all__ = ["ENGINE_DIR", "SmoothSegNet", "SmoothSegNetLogic", "SmoothSegNetTest", "SmoothSegNetWidget"]
