"""The panel's "Compare with prior study" section: wires its widgets to the logic (``FollowupJobs``).

Dialogs are shown through the module widget (``widget._fail``); the job runs under the widget's state
machine, so the panel's other buttons wait for it and the main button (like the section's) cancels it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import qt
import slicer

from SmoothSegNetLib.slicer_support.followup import TABLE_COLUMNS
from SmoothSegNetLib.slicer_support.state import CANCEL_TEXT, Event, State

#: The job name the state machine shows ("Stop the follow-up comparison (kills the worker process)").
FOLLOWUP_JOB = "follow-up comparison"
COMPARE_TEXT = "Compare with prior study"


class FollowupPanel:
    """Holds the last comparison's display; every slot of the section is a method here."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.ui = widget.ui
        self.ui.compareButton.connect("clicked(bool)", self.onCompareButton)
        self.ui.exportFollowupButton.connect("clicked(bool)", self.onExportFollowupButton)
        self.ui.priorFolderBrowseButton.connect("clicked(bool)", self.onBrowsePriorFolder)
        self.ui.followupTableWidget.connect("itemSelectionChanged()", self.onTrackedLesionSelected)
        self.ui.priorFolderLineEdit.connect("textChanged(QString)", lambda *args: self.updateView())
        table = self.ui.followupTableWidget
        table.setColumnCount(len(TABLE_COLUMNS))
        table.setHorizontalHeaderLabels([title for _key, title in TABLE_COLUMNS])
        table.horizontalHeader().setSectionResizeMode(qt.QHeaderView.ResizeToContents)
        self.ui.followupExportDirectoryButton.directory = str(Path.home())

    # -- drawing -------------------------------------------------------------------------------
    def _whyNotCompare(self) -> str:
        p = self.widget._parameterNode
        if p is None or p.inputVolume is None or p.outputSegmentation is None:
            return "Segment the current CT first (input CT and its segmentation above)"
        if self.ui.priorFolderLineEdit.text.strip():
            return ""
        if p.priorVolume is None or p.priorSegmentation is None:
            return "Select the prior CT and its segmentation, or a prior output folder"
        return ""

    def updateView(self) -> None:
        """Enable and label the section's buttons from the widget's state machine."""
        state = self.widget._state
        ours = state.busy and state.job == FOLLOWUP_JOB
        reason = self._whyNotCompare()
        button = self.ui.compareButton
        button.text = CANCEL_TEXT if ours else COMPARE_TEXT
        button.enabled = (ours and state.state != State.CANCELLING) or (not state.busy and not reason)
        button.toolTip = (
            reason or "Register the current study to the prior one, track the lesions, and give the responses"
        )
        result = self.widget.logic.followupResult if self.widget.logic is not None else None
        self.ui.exportFollowupButton.enabled = result is not None and not state.busy

    # -- actions -------------------------------------------------------------------------------
    def onCompareButton(self) -> None:
        widget = self.widget
        if widget._state.busy:
            if widget._state.job == FOLLOWUP_JOB:
                widget.onApplyButton()  # the state machine's Cancel
            return
        p = widget._parameterNode
        try:
            widget._state.handle(Event.START, job=FOLLOWUP_JOB)
            widget._updateView()
            self.ui.followupProgressBar.value = 0
            self.ui.followupProgressBar.visible = True
            self.ui.followupStatusLabel.text = "Starting the comparison…"
            widget.logic.compareWithPrior(
                p.inputVolume,
                p.outputSegmentation,
                p.priorVolume,
                p.priorSegmentation,
                priorFolder=self.ui.priorFolderLineEdit.text.strip() or None,
                phase=self.ui.phaseComboBox.currentText,
                progressCallback=self._onProgress,
                completionCallback=self._onCompleted,
            )
            widget._state.handle(Event.STARTED)
        except Exception as exc:
            self.ui.followupProgressBar.visible = False
            self.ui.followupStatusLabel.text = f"Failed: {exc}"
            widget._fail(exc)
        widget._updateView()

    def _onProgress(self, event: Any) -> None:
        self.ui.followupProgressBar.value = event.percent
        self.ui.followupStatusLabel.text = event.status_text()

    def _onCompleted(self, result: Any, error: Exception | None) -> None:
        widget = self.widget
        self.ui.followupProgressBar.visible = False
        if widget._state.state == State.CANCELLING:
            widget._state.handle(Event.STOPPED)
            self.ui.followupStatusLabel.text = "Cancelled"
        elif error is not None:
            self.ui.followupStatusLabel.text = f"Failed: {error}"
            widget._fail(error)
        else:
            widget._state.handle(Event.FINISHED)
            self.showResult(result)
            widget._state.handle(Event.IMPORTED)
            self.ui.followupStatusLabel.text = "Done. Click a lesion to see it in both studies."
        widget._updateView()

    def showResult(self, result: Any) -> None:
        """Fill the tracked-lesion table and the responses; show both studies side by side."""
        table = self.ui.followupTableWidget
        table.setRowCount(0)
        for row, cells in enumerate(result.rows()):
            table.insertRow(row)
            for column, text in enumerate(cells):
                table.setItem(row, column, qt.QTableWidgetItem(text))
        self.ui.responseLabel.text = result.summary()
        self.widget.logic.showSideBySide(result)

    def onTrackedLesionSelected(self) -> None:
        result = self.widget.logic.followupResult
        rows = {index.row() for index in self.ui.followupTableWidget.selectedIndexes()}
        if not rows or result is None:
            return
        trackingId = self.ui.followupTableWidget.item(min(rows), 0).text()
        self.widget.logic.centreOnLesion(result, trackingId)

    def exportDirectory(self) -> Path:
        from SmoothSegNetLib.slicer_support.session import export_folder_name

        name = export_folder_name(self.widget._parameterNode.inputVolume.GetName()) + "-followup"
        return Path(self.ui.followupExportDirectoryButton.directory) / name

    def onExportFollowupButton(self) -> None:
        result = self.widget.logic.followupResult
        if result is None:
            return
        with slicer.util.tryWithErrorDisplay("Exporting the follow-up failed.", waitCursor=True):
            target = self.exportDirectory()
            written = self.widget.logic.exportFollowup(result, target)
            self.ui.followupStatusLabel.text = f"Wrote {len(written)} files into {target}"

    def onBrowsePriorFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.widget.parent, "Prior output folder (segment or report)")
        if folder:
            self.ui.priorFolderLineEdit.text = folder
            self.updateView()
