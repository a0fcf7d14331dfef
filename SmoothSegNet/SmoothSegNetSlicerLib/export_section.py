"""The panel's export section: export the report, export DICOM, send to the PACS, and the PACS settings.

``ExportSectionMixin`` is mixed into ``SmoothSegNetWidget`` (SmoothSegNet.py): its slots keep the names the
widget connects in ``setup``. It uses the widget's ``ui``, ``logic``, ``_state`` and ``_parameterNode`` and its
``_updateView``, ``_onProgress``, ``_finishJob`` and ``_fail``. Qt and Slicer are imported inside the methods, as
in the other modules of this package (they exist only in Slicer; the tests put stand-ins in their place per test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from SmoothSegNetLib.slicer_support.state import Event
from SmoothSegNetSlicerLib.logic import dicomInstanceUids

#: Where the PACS host, port and AE title are kept in Slicer's settings (QSettings keys start with it).
SETTINGS_PREFIX = "SmoothSegNet/"


class ExportSectionMixin:
    """Export and send: each runs in the engine's child process under the widget's state machine."""

    ui: Any
    logic: Any
    _state: Any
    _parameterNode: Any

    def _exportDirectory(self) -> Path:
        from SmoothSegNetLib.slicer_support.session import export_folder_name

        name = export_folder_name(self._parameterNode.inputVolume.GetName())  # "6: Abdomen 1/2" is no folder name
        return Path(self.ui.exportDirectoryButton.directory) / name

    def onExportReportButton(self) -> None:
        self._startExport(dicom=False, send=False)

    def onExportDicomButton(self) -> None:
        self._startExport(dicom=True, send=False)

    def onSendToPacsButton(self) -> None:
        # Always the segments as they are now (a seg.dcm of an earlier export may be stale), exported and
        # then sent by one job: a failed export sends nothing.
        self._startExport(dicom=True, send=True)

    def _startExport(self, dicom: bool, send: bool) -> None:
        """Export (and send) in the engine's child process; the Apply button cancels it meanwhile."""
        import slicer

        from SmoothSegNetLib.slicer_support.export_job import PacsTarget

        if self._state.busy:
            return
        p = self._parameterNode
        what = "send to the PACS" if send else "DICOM export" if dicom else "export"
        try:
            self._state.handle(Event.START, job=what)
            self._updateView()
            uids = dicomInstanceUids(p.inputVolume) if dicom else []
            files = [slicer.dicomDatabase.fileForInstance(uid) for uid in uids] if dicom else None
            pacs = None
            if send:
                ui = self.ui
                pacs = PacsTarget(ui.pacsHostLineEdit.text, int(ui.pacsPortSpinBox.value), ui.pacsAetLineEdit.text)
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = f"Starting the {what}…"
            self.logic.exportResults(
                p.inputVolume,
                p.outputSegmentation,
                self._exportDirectory(),
                picture=True,
                dicomSeriesFiles=files,
                perLesion=p.perLesionSegments,
                pacs=pacs,
                progressCallback=self._onProgress,
                completionCallback=self._onExportCompleted,
                waitForCompletion=False,
            )
            self._state.handle(Event.STARTED)
        except Exception as exc:
            self._fail(exc)
        self._updateView()

    def _onExportCompleted(self, summary: Any, error: Exception | None) -> None:
        self._finishJob(error, lambda: str(summary))

    # -- settings ------------------------------------------------------------------------------
    def _loadPacsSettings(self) -> None:
        import qt

        settings = qt.QSettings()
        self.ui.pacsHostLineEdit.text = settings.value(SETTINGS_PREFIX + "PacsHost", "")
        self.ui.pacsPortSpinBox.value = int(settings.value(SETTINGS_PREFIX + "PacsPort", 104))
        self.ui.pacsAetLineEdit.text = settings.value(SETTINGS_PREFIX + "PacsAet", "")

    def _savePacsSettings(self, *args: Any) -> None:
        import qt

        settings = qt.QSettings()
        settings.setValue(SETTINGS_PREFIX + "PacsHost", self.ui.pacsHostLineEdit.text)
        settings.setValue(SETTINGS_PREFIX + "PacsPort", self.ui.pacsPortSpinBox.value)
        settings.setValue(SETTINGS_PREFIX + "PacsAet", self.ui.pacsAetLineEdit.text)
        self._updateView()
