"""The panel's review section: the lesion table, its row actions (centre, RECIST lines, delete), "Add lesion at point"
and the candidates.

``ReviewSectionMixin`` is mixed into ``SmoothSegNetWidget`` (SmoothSegNet.py): its slots keep the names the widget
connects in ``setup``. It uses the widget's ``ui``, ``logic``, ``_parameterNode``, ``_report``,
``_editedLesionIds``, ``_axesWatchers``, ``_live`` and ``_adder``. The MRML work of the row actions is in
``corrections.py`` and ``candidates.py``, the click's search in ``add_at_point.py``; this file only reads the
selection and fills the tables. Qt and Slicer are imported inside the methods, as in the other modules of this
package (they exist only in Slicer; the tests put stand-ins in their place per test). SmoothSegNet.py imports this
file after the logic has put the engine (SmoothSegNetLib) on sys.path.
"""

from __future__ import annotations

from typing import Any

from SmoothSegNetLib.slicer_support.lesion_table import candidate_reason_text, format_cell, lesion_table_columns
from SmoothSegNetSlicerLib.logic import segmentIdOfLesion

#: Name of the markups point list the "Add lesion at point" click is placed in (emptied after each click).
ADD_POINT_NODE_NAME = "SmoothSegNet add-lesion point"

#: The candidates table: (header, report.json candidates[] key).
CANDIDATE_COLUMNS = [("ID", "id"), ("Volume (ml)", "volume_ml"), ("Long axis (mm)", "long_axis_mm"),
                     ("Confidence", "confidence"), ("Reason", "reason")]  # fmt: skip


class ReviewSectionMixin:
    """Shows the report in the lesion and candidate tables; acts on the selected row."""

    ui: Any
    logic: Any
    _parameterNode: Any
    _report: dict[str, Any] | None
    _editedLesionIds: tuple[int, ...]
    _axesWatchers: list[Any]
    _live: Any
    _adder: Any
    _addPoint: tuple[Any, int] | None

    def _setupLesionTable(self) -> None:
        import qt

        columns = lesion_table_columns()
        table = self.ui.lesionTableWidget
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels([c.header for c in columns])
        for index, column in enumerate(columns):
            table.setColumnHidden(index, not column.visible)
        table.horizontalHeader().setSectionResizeMode(qt.QHeaderView.ResizeToContents)
        candidates = self.ui.candidateTableWidget
        candidates.setColumnCount(len(CANDIDATE_COLUMNS))
        candidates.setHorizontalHeaderLabels([title for title, _key in CANDIDATE_COLUMNS])
        candidates.horizontalHeader().setSectionResizeMode(qt.QHeaderView.ResizeToContents)

    def _showReport(self, report: dict[str, Any] | None, edited: tuple[int, ...] = ()) -> None:
        import qt

        from SmoothSegNetLib.slicer_support.lesion_table import lesion_table_rows
        from SmoothSegNetLib.slicer_support.session import summary_text

        self._report, self._editedLesionIds = report, edited
        table = self.ui.lesionTableWidget
        table.setRowCount(0)
        if report is None:
            self.ui.summaryLabel.text = "No result yet"
            return
        self.ui.summaryLabel.text = summary_text(report)
        columns = lesion_table_columns()
        for row, values in enumerate(lesion_table_rows(report, edited)):
            table.insertRow(row)
            for index, (column, value) in enumerate(zip(columns, values)):
                item = qt.QTableWidgetItem(format_cell(value, column))
                item.setToolTip(column.description)
                table.setItem(row, index, item)
        self._showCandidates()

    def _showCandidates(self) -> None:
        """The candidates still to review (from the network's report), hidden in the views until accepted."""
        import qt

        from SmoothSegNetSlicerLib.candidates import candidateRows

        segmentation = self._parameterNode.outputSegmentation if self._parameterNode else None
        rows = candidateRows(self.logic.storedReport(segmentation), segmentation) if segmentation else []
        table = self.ui.candidateTableWidget
        table.setRowCount(0)
        for row, candidate in enumerate(rows):
            table.insertRow(row)
            for index, (_title, key) in enumerate(CANDIDATE_COLUMNS):
                value = candidate.get(key)
                text = "—" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
                if key == "reason":
                    text = candidate_reason_text(value)
                table.setItem(row, index, qt.QTableWidgetItem(text))
        self.ui.candidatesLabel.text = f"Candidates to review: {len(rows) or 'none'}"

    def onLesionSelected(self) -> None:
        import slicer

        from SmoothSegNetLib.slicer_support.session import lesion_centre_ras

        rows = {index.row() for index in self.ui.lesionTableWidget.selectedIndexes()}
        if not rows or self._report is None:
            return
        lesionId = int(self.ui.lesionTableWidget.item(min(rows), 0).text())
        centre = lesion_centre_ras(self._report, lesionId)
        if centre is not None:
            slicer.modules.markups.logic().JumpSlicesToLocation(*centre, True)
        segmentation = self._parameterNode.outputSegmentation
        segmentId = segmentIdOfLesion(segmentation, lesionId)
        if segmentId:
            for editorNode in slicer.util.getNodesByClass("vtkMRMLSegmentEditorNode"):
                editorNode.SetAndObserveSegmentationNode(segmentation)
                editorNode.SetSelectedSegmentID(segmentId)

    def _selectedId(self, table: Any) -> int | None:
        rows = {index.row() for index in table.selectedIndexes()}
        return int(table.item(min(rows), 0).text()) if rows else None

    def onShowRecistButton(self) -> None:
        """The selected lesion's RECIST axes as markups lines; moving an end point makes them manual axes."""
        import slicer

        from SmoothSegNetSlicerLib.corrections import ManualAxesWatcher, showRecistLines

        lesionId = self._selectedId(self.ui.lesionTableWidget)
        if lesionId is None or self._report is None:
            self.ui.statusLabel.text = "Select a lesion in the table first"
            return
        segmentation = self._parameterNode.outputSegmentation
        with slicer.util.tryWithErrorDisplay("Showing the RECIST lines failed."):
            lines = showRecistLines(slicer.mrmlScene, segmentation, self._report, lesionId)
            self._axesWatchers.append(ManualAxesWatcher(segmentation, lines))

    def onDeleteLesionButton(self) -> None:
        """Delete the selected lesion (voxels back to liver); the live table renumbers."""
        import slicer

        from SmoothSegNetSlicerLib.corrections import deleteLesion

        lesionId = self._selectedId(self.ui.lesionTableWidget)
        if lesionId is None:
            self.ui.statusLabel.text = "Select a lesion in the table first"
            return
        with slicer.util.tryWithErrorDisplay("Deleting the lesion failed."):
            deleteLesion(self._parameterNode.outputSegmentation, self._parameterNode.inputVolume, lesionId)
            self.ui.statusLabel.text = f"Lesion {lesionId} deleted; its voxels are liver again"

    def onAddLesionButton(self, *_args: Any) -> None:
        """Place one point (markups place mode): the lesion under it is searched and added (``_onAddPointDefined``)."""
        import slicer

        segmentation = self._parameterNode.outputSegmentation if self._parameterNode else None
        if segmentation is None or self._parameterNode.inputVolume is None:
            self.ui.statusLabel.text = "Segment the CT first (or choose its segmentation)"
            return
        node = self._addPointNode()
        logic = slicer.modules.markups.logic()
        logic.SetActiveList(node)
        logic.StartPlaceMode(False)
        self.ui.statusLabel.text = "Click inside the missed lesion in a slice view"

    def _addPointNode(self) -> Any:
        """The point list the click lands in, observed (made once per panel; it holds no point between clicks)."""
        import slicer

        if self._addPoint is not None and self._addPoint[0].GetScene() is not None:
            return self._addPoint[0]
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", ADD_POINT_NODE_NAME)
        node.SetHideFromEditors(True)
        tag = node.AddObserver(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._onAddPointDefined)
        self._addPoint = (node, tag)
        return node

    def _onAddPointDefined(self, caller: Any, _event: Any = None) -> None:
        """The point is placed: take it out of the list and search the lesion there, off the GUI thread."""
        from SmoothSegNetSlicerLib.add_at_point import PointAdder, tumorSegmenterFactory

        count = caller.GetNumberOfControlPoints()
        if count == 0:
            return
        ras = [0.0, 0.0, 0.0]
        caller.GetNthControlPointPositionWorld(count - 1, ras)
        caller.RemoveAllControlPoints()
        segmentation = self._parameterNode.outputSegmentation if self._parameterNode else None
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        if segmentation is None or volume is None:  # chosen away while the point was being placed
            self.ui.statusLabel.text = "Segment the CT first (or choose its segmentation): nothing was added"
            return
        adder = self._adder
        if adder is None or adder.segmentationNode is not segmentation or adder.inputVolume is not volume:
            if adder is not None:
                adder.stop()
            adder = self._adder = PointAdder(
                volume,
                segmentation,
                tumorSegmenterFactory(self.logic.storedReport(segmentation)),
                self._onLesionAddedAtPoint,
                editCount=lambda: self._live.editCount if self._live is not None else 0,
                ct=self._live.ct if self._live is not None else None,
            )
        self.ui.statusLabel.text = "Searching the lesion at the point…"
        adder.addAtRas(ras)

    def _onLesionAddedAtPoint(self, segmentId: str | None, message: str) -> None:
        self.ui.statusLabel.text = message

    def _stopAddAtPoint(self) -> None:
        """Drop the point list and a search still running (the segmentation or the panel goes)."""
        if self._adder is not None:
            self._adder.stop()
            self._adder = None
        if self._addPoint is not None:
            node, tag = self._addPoint
            node.RemoveObserver(tag)
            if node.GetScene() is not None:
                node.GetScene().RemoveNode(node)
            self._addPoint = None

    def _reviewCandidate(self, accept: bool) -> None:
        import slicer

        from SmoothSegNetSlicerLib.candidates import acceptCandidate, rejectCandidate

        candidateId = self._selectedId(self.ui.candidateTableWidget)
        if candidateId is None:
            self.ui.statusLabel.text = "Select a candidate in the table first"
            return
        with slicer.util.tryWithErrorDisplay("Reviewing the candidate failed."):
            (acceptCandidate if accept else rejectCandidate)(self._parameterNode.outputSegmentation, candidateId)
            self.ui.statusLabel.text = f"Candidate {candidateId} {'accepted as a lesion' if accept else 'rejected'}"
        self._showCandidates()
