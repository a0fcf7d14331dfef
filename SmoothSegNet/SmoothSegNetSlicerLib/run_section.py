"""The panel's run section: segment (the main button, also Cancel), bring the result in, keep the table live.

``RunSectionMixin`` is mixed into ``SmoothSegNetWidget`` (SmoothSegNet.py): its slots keep the names the widget
connects in ``setup``. It runs the two jobs that make the lesion table, "Segment Liver & Tumors" and "Recompute
report", under the widget's state machine, shows their result (``_showReport`` of the review section) and keeps the
live table (:class:`SmoothSegNetSlicerLib.live.LiveReport`) on the output segmentation. It uses the widget's ``ui``,
``logic``, ``_state``, ``_parameterNode``, ``_live``, ``_adder`` and ``_axesWatchers`` and its
``_ensureDependencies``, ``_updateView``, ``_showReport``, ``_finishJob`` and ``_fail``. Slicer is imported inside
the methods, as in the other modules of this package. SmoothSegNet.py imports this file after the logic has put the
engine (SmoothSegNetLib) on sys.path.
"""

from __future__ import annotations

from typing import Any

from SmoothSegNetLib.slicer_support.state import Event
from SmoothSegNetSlicerLib.live import LiveReport


class RunSectionMixin:
    """Starts, cancels and finishes the segmentation and the report recomputation."""

    ui: Any
    logic: Any
    _state: Any
    _parameterNode: Any
    _live: LiveReport | None
    _adder: Any
    _axesWatchers: list[Any]

    def onApplyButton(self) -> None:
        if self._state.busy:
            self._state.handle(Event.CANCEL)
            self._updateView()
            self.logic.cancel()
            return
        try:
            self._state.handle(Event.START)
            self._updateView()
            if not self._ensureDependencies():
                self._state.handle(Event.FAIL, "Python packages were not installed")
                self._updateView()
                return
            p = self._parameterNode
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = "Starting…"
            self.logic.process(
                p.inputVolume,
                p.outputSegmentation,
                quality=p.quality,
                device=p.device,
                perLesionSegments=p.perLesionSegments,
                skipPlausibilityCheck=p.skipPlausibilityCheck,
                runtime=p.runtime,
                progressCallback=self._onProgress,
                completionCallback=self._onCompleted,
            )
            self._state.handle(Event.STARTED)
        except Exception as exc:
            self._fail(exc)
        self._updateView()

    def _onProgress(self, event: Any) -> None:
        self.ui.progressBar.value = event.percent
        self.ui.statusLabel.text = event.status_text()

    def _onCompleted(self, node: Any, error: Exception | None) -> None:
        def show() -> str:
            self._parameterNode.outputSegmentation = node
            self._showResult(node)
            return "Done. Correct the segments in Segment Editor: the table follows each edit."

        self._finishJob(error, show)

    def _showResult(self, node: Any) -> None:
        import slicer

        node.CreateClosedSurfaceRepresentation()
        slicer.util.setSliceViewerLayers(background=self._parameterNode.inputVolume)
        self._showReport(self.logic.storedReport(node))
        self._watchEdits(node)

    def _watchEdits(self, segmentation: Any) -> None:
        """The live table: re-measure (debounced) after every edit of ``segmentation``; None stops it."""
        for watcher in self._axesWatchers:
            watcher.stop()
        self._axesWatchers = []
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._adder is not None and self._adder.segmentationNode is not segmentation:
            self._adder.stop()  # a search for the segmentation left behind is not applied
            self._adder = None
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        if segmentation is not None and volume is not None:
            self._live = LiveReport(self.logic, volume, segmentation, self._onLiveUpdated)
            self._live.start()

    def _onLiveUpdated(self, report: dict[str, Any], edited: tuple[int, ...]) -> None:
        self._showReport(report, edited)
        self.ui.statusLabel.text = (
            f"Table updated after the edit; edited lesions: {', '.join(map(str, edited)) or 'none'}"
        )

    def onOutputChanged(self, node: Any) -> None:
        # The latest report is on the lesion table node (recomputed); the network's is on the segmentation.
        table = self.logic.tableFor(node)
        self._showReport(self.logic.storedReport(table) or self.logic.storedReport(node))
        self._watchEdits(node)
        self._updateView()

    def onRecomputeButton(self) -> None:
        """Measure the segments as they are now, in the engine's child process; the table follows at the end."""
        if self._state.busy:
            return
        p = self._parameterNode
        try:
            self._state.handle(Event.START, job="report measurement")
            self._updateView()
            self.ui.statusLabel.text = "Recomputing the report…"
            self.logic.recomputeReport(
                p.inputVolume,
                p.outputSegmentation,
                progressCallback=self._onProgress,
                completionCallback=self._onRecomputed,
                waitForCompletion=False,
            )
            self._state.handle(Event.STARTED)
        except Exception as exc:
            self._fail(exc)
        self._updateView()

    def _onRecomputed(self, answer: Any, error: Exception | None) -> None:
        def show() -> str:
            report, _table, edited = answer
            self._showReport(report, edited)
            return f"Report recomputed; edited lesions: {', '.join(map(str, edited)) or 'none'}"

        self._finishJob(error, show)
