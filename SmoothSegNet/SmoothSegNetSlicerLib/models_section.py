"""The panel's models section: install a model from a file, download the full-quality models.

``ModelsSectionMixin`` is mixed into ``SmoothSegNetWidget`` (SmoothSegNet.py): its slots keep the names the
widget connects in ``setup``. It uses the widget's ``ui``, ``logic``, ``parent`` and ``_downloadQueue`` and its
``_ensureDependencies`` and ``_updateView``. A download runs as a job of the logic but outside the widget's state
machine: ``_updateView`` disables the main button meanwhile ("the model download"). Qt and Slicer are imported
inside the methods, as in the other modules of this package (they exist only in Slicer; the tests put stand-ins in
their place per test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ModelsSectionMixin:
    """Installs and downloads model cards and weights through the engine's child process."""

    ui: Any
    logic: Any
    parent: Any
    _downloadQueue: list[str]

    def onInstallModelButton(self) -> None:
        import qt
        import slicer

        from SmoothSegNetLib.slicer_support.session import install_model_command

        path = qt.QFileDialog.getOpenFileName(
            self.parent, "Install model from file", "", "Model card or weights (*.json *.safetensors *.pt *.pth)"
        )
        if not path:
            return
        with slicer.util.tryWithErrorDisplay("Installing the model failed.", waitCursor=True):
            output = self.logic.runEngine(install_model_command(Path(path), self.logic.pythonExecutable))
            self.ui.modelStatusLabel.text = output.strip() or f"Installed {Path(path).name}"

    def onDownloadModelsButton(self) -> None:
        from SmoothSegNetLib.slicer_support.process import FULL_QUALITY_MODELS

        if not self._ensureDependencies():
            return
        self._downloadQueue = list(FULL_QUALITY_MODELS)
        self.ui.downloadModelsButton.enabled = False
        self._downloadNext(None, None)

    def _downloadNext(self, answer: Any, error: Exception | None) -> None:
        """Start the next download of the queue (also the completion callback of the previous one)."""
        import slicer

        if answer:
            self.ui.modelStatusLabel.text = str(answer)
        if error is None and self._downloadQueue:
            cardId = self._downloadQueue.pop(0)
            self.ui.modelProgressBar.value = 0
            self.ui.modelProgressBar.visible = True
            try:
                self.logic.downloadModel(
                    cardId, progressCallback=self._onModelProgress, completionCallback=self._downloadNext
                )
                self._updateView()
                return
            except Exception as exc:
                error = exc
        self._downloadQueue = []
        self.ui.modelProgressBar.visible = False
        self.ui.downloadModelsButton.enabled = True
        if error is not None:
            self.ui.modelStatusLabel.text = f"Failed: {error}"
            slicer.util.errorDisplay(str(error), "SmoothSegNet: model download")
        self._updateView()

    def _onModelProgress(self, event: Any) -> None:
        self.ui.modelProgressBar.value = event.percent
        self.ui.modelStatusLabel.text = event.status_text()
