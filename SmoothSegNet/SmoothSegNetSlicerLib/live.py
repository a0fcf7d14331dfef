"""The live lesion table: after any edit of the segments, the report is measured again by itself.

Segment Editor fires a burst of events per stroke (segment modified, node modified, ...). ``LiveReport``
restarts one single-shot timer on each event (a debounce, 500 ms by default); when it fires, the segments
are read back onto the CT grid on the GUI thread, on the fast path
(:func:`SmoothSegNetLib.mrml.labelmap_from_segmentation`: Slicer's shared labelmap layers, segments as
bounding boxes), then measured in a worker thread with the engine's ``measure`` (via
:func:`SmoothSegNetLib.slicer_support.session.recompute_report_in_box`: "Recompute report"'s measure on the
labels' bounding box); a poll timer brings the result back to the GUI thread, where the lesion table node,
segment names and the panel follow. A result of segments edited since is dropped, never shown.
bench/slicer_bridge.py times the GUI thread's part and the whole latency.

No Qt is needed except the default timers (``qt.QTimer``); tests pass timer stand-ins and an MRML scene
from slicer-core. Events caused by the update itself (segment renaming, table and attribute writes) are
ignored, so an update never triggers the next one.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

# SmoothSegNetLib is imported inside the functions: SmoothSegNet.py may import this module before the logic
# module has put the engine on sys.path.
#: Debounce delay of the live table (ms): one re-measure per pause in the editing.
LIVE_DELAY_MS = 500
#: How often the GUI thread looks whether the worker has measured (ms).
LIVE_POLL_MS = 50
#: Segment tag holding the RECIST axes the user set by moving markups end points (JSON, mm).
TAG_MANUAL_AXES = "SmoothSegNet.ManualAxes"


class SingleShotTimer(Protocol):
    """What ``LiveReport`` needs of a timer: ``start`` (re)starts the countdown, ``stop`` drops it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


TimerFactory = Callable[[int, Callable[[], None]], SingleShotTimer]
UpdateCallback = Callable[[dict[str, Any], tuple[int, ...]], None]


def qtSingleShotTimer(delayMs: int, callback: Callable[[], None]) -> SingleShotTimer:
    """A ``qt.QTimer`` in single-shot mode calling ``callback`` ``delayMs`` after its last ``start``."""
    import qt

    timer = qt.QTimer()
    timer.setSingleShot(True)
    timer.setInterval(delayMs)
    timer.connect("timeout()", callback)
    return timer  # type: ignore[no-any-return]


def manualAxesOf(segmentationNode: Any, lesionIds: dict[int, str]) -> dict[str, Any]:
    """The hand-drawn RECIST lines of the lesion segments (tag :data:`TAG_MANUAL_AXES`), by current lesion id.

    The JSON form the engine reads (``{"<lesion id>": {"long": [[L,P,S],[L,P,S]], "short": ...}}``, LPS mm):
    a line follows its segment when lesions are renumbered; the engine drops a line that no longer lies on its
    lesion. A tag that is not such an object (e.g. written by an older version) is ignored.
    """
    from SmoothSegNetLib import mrml
    from SmoothSegNetLib.report.manual_axes import manual_axes_to_json, parse_manual_axes

    segmentation = segmentationNode.GetSegmentation()
    axes: dict[str, Any] = {}
    for lesionId, segmentId in lesionIds.items():
        segment = segmentation.GetSegment(segmentId)
        text = mrml._tag(segment, TAG_MANUAL_AXES) if segment is not None else None
        if not text:
            continue
        try:  # an unreadable tag, or a line whose two ends were dragged onto each other, is no measurement
            axes.update(manual_axes_to_json(parse_manual_axes({str(lesionId): json.loads(text)})))
        except ValueError as exc:  # InputError is a ValueError, as is a JSON syntax error
            logging.info("SmoothSegNet: manual axes of segment %s ignored: %s", segmentId, exc)
    return axes


@dataclass
class LiveTimings:
    """Seconds of the last live update: on the GUI thread (``read_s`` + ``apply_s``: the panel is blocked) and in
    the worker (``measure_s``); ``total_s`` from the debounce running out to the table shown (the latency)."""

    read_s: float = 0.0
    measure_s: float = 0.0
    apply_s: float = 0.0
    total_s: float = 0.0

    @property
    def gui_s(self) -> float:
        return self.read_s + self.apply_s


@dataclass
class _Pending:
    """A measurement in the worker: of the segments as they were at edit number ``edit``."""

    edit: int
    arrays: Any
    future: Future[tuple[dict[str, Any], float]]
    started: float


class PolledJob:
    """A job run in a worker thread whose result the GUI thread applies: while it runs, a single-shot poll timer
    looks every ``LIVE_POLL_MS`` whether it is done (MRML is only touched on the GUI thread). Subclasses set
    ``_pending`` (anything with a ``future``), call ``_startPolling`` and apply the result in ``_finish``."""

    def __init__(self, timerFactory: TimerFactory | None) -> None:
        self._pending: Any = None
        self._pollTimer: SingleShotTimer = (timerFactory or qtSingleShotTimer)(LIVE_POLL_MS, self._onPollTimer)

    def _startPolling(self) -> None:
        if not self._poll():
            self._pollTimer.start()

    def _onPollTimer(self) -> None:
        self._startPolling()

    def _poll(self) -> bool:
        """Apply the worker's result if it is ready (GUI thread). False while it is still running."""
        pending = self._pending
        if pending is None:
            return True
        if not pending.future.done():
            return False
        self._pending = None
        self._finish(pending)
        return True

    def _finish(self, pending: Any) -> None:
        raise NotImplementedError

    def _waitPending(self, timeoutS: float | None) -> None:
        """Wait for the job in the worker and apply its result now (scripts, tests)."""
        pending = self._pending
        if pending is not None:
            concurrent.futures.wait([pending.future], timeout=timeoutS)
            if self._poll():
                self._pollTimer.stop()


class LiveReport(PolledJob):
    """Keeps the lesion table of ``segmentationNode`` measured while it is edited.

    When the debounce runs out, the segments are read on the GUI thread (MRML is not thread-safe; the fast bridge
    reads the shared labelmap layers), then measured in a worker thread (the engine's ``measure``: numpy, scipy
    and scikit-image work on arrays copied out of the scene); a timer polls the worker and the GUI thread applies
    the result (table node, segment names, panel). An edit made while a measurement runs supersedes it: its
    numbers, of segments that no longer exist, are never shown (``discardedCount``); the restarted debounce
    measures again.

    Args:
        runner: the module's :class:`~SmoothSegNetSlicerLib.logic.SmoothSegNetRunner` (scene, table node).
        inputVolume: the CT the segments lie on.
        segmentationNode: the result being corrected.
        onUpdated: called with (report, edited lesion ids) after each re-measure (the panel redraws).
        delayMs: the debounce delay.
        timerFactory: makes the single-shot timers, debounce and poll (default: ``qt.QTimer``).
        executor: runs the measurements (default: one worker thread, created on first use).
    """

    def __init__(
        self,
        runner: Any,
        inputVolume: Any,
        segmentationNode: Any,
        onUpdated: UpdateCallback | None = None,
        delayMs: int = LIVE_DELAY_MS,
        timerFactory: TimerFactory | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.runner = runner
        self.inputVolume = inputVolume
        self.segmentationNode = segmentationNode
        self.onUpdated = onUpdated
        self.measureCount = 0  # results shown
        self.discardedCount = 0  # results dropped because an edit came after their snapshot
        self.editCount = 0
        self.report: dict[str, Any] | None = None
        self.edited: tuple[int, ...] = ()
        self.timings = LiveTimings()
        self.lastError: BaseException | None = None
        self._updating = False
        self._ct: Any = None
        self._timer = (timerFactory or qtSingleShotTimer)(delayMs, self.update)
        super().__init__(timerFactory)
        self._executor = executor
        self._ownExecutor = executor is None
        self._observations: list[tuple[Any, int]] = []

    def start(self) -> None:
        """Observe the segments (voxels modified, segment added / removed / modified) and the CT."""
        import slicer
        import vtk

        self.stop()
        # Observed on the vtkSegmentation itself: a stroke of Segment Editor (like SetBinaryLabelmapToSegment)
        # fires SourceRepresentationModified there; the node relays it only sometimes (seen on slicer-core).
        segmentation = self.segmentationNode.GetSegmentation()
        cls = slicer.vtkSegmentation
        events = [cls.SourceRepresentationModified, cls.SegmentModified, cls.SegmentAdded, cls.SegmentRemoved]
        for event in events:
            self._observations.append((segmentation, segmentation.AddObserver(event, self.onEdited)))
        volume = self.inputVolume
        self._observations.append((volume, volume.AddObserver(vtk.vtkCommand.ModifiedEvent, self._onVolumeModified)))

    def stop(self) -> None:
        """Stop observing and drop a pending update (a measurement running in the worker is not shown)."""
        for obj, tag in self._observations:
            obj.RemoveObserver(tag)
        self._observations = []
        self._timer.stop()
        self._pollTimer.stop()
        self._pending = None
        if self._ownExecutor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def onEdited(self, *args: Any) -> None:
        """An edit event: (re)start the debounce timer, unless the event comes from our own update."""
        if not self._updating:
            self.editCount += 1  # a measurement of the segments before this edit is stale now
            self._timer.start()

    def _onVolumeModified(self, *args: Any) -> None:
        self._ct = None

    def ct(self) -> Any:
        """The CT as an engine volume, read once (re-read when the volume node changes)."""
        from SmoothSegNetLib import mrml

        if self._ct is None:
            self._ct = mrml.volume_from_node(self.inputVolume)
        return self._ct

    def update(self) -> None:
        """The debounce ran out: read the segments here (GUI thread) and measure them in the worker.

        The result is applied by the poll timer (or :meth:`wait`); with an executor that runs the work at once,
        before this returns.
        """
        from SmoothSegNetLib import mrml
        from SmoothSegNetLib.report.manual_axes import parse_manual_axes
        from SmoothSegNetLib.slicer_support.session import EditedResult

        started = time.perf_counter()
        self._updating = True  # reading may fire segmentation events: they are not edits
        try:
            arrays = mrml.labelmap_from_segmentation(self.segmentationNode, self.inputVolume)
            result = EditedResult(arrays.labelmap, arrays.lesions, arrays.lesion_ids, arrays.edited_lesion_ids)
            manual = parse_manual_axes(manualAxesOf(self.segmentationNode, arrays.lesion_ids))
            previous = self.runner.storedReport(self.segmentationNode)
            ct = self.ct()
        finally:
            self._updating = False
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="SmoothSegNet-live")
        self.timings = LiveTimings(read_s=time.perf_counter() - started)
        future = self._executor.submit(_measure, ct, result, previous, manual)
        self._pending = _Pending(self.editCount, arrays, future, started)
        self._startPolling()

    def _finish(self, pending: _Pending) -> None:
        """The worker has measured (GUI thread): show it, unless the segments were edited since."""
        if pending.edit != self.editCount:  # edited since the snapshot: these numbers are of old segments
            self.discardedCount += 1
            return
        try:
            report, self.timings.measure_s = pending.future.result()
        except Exception as exc:  # the panel keeps its last table; Slicer's log has the reason
            self.lastError = exc
            logging.error("SmoothSegNet: the live lesion table could not be measured", exc_info=exc)
            return
        self._apply(report, pending)

    def _apply(self, report: dict[str, Any], pending: _Pending) -> None:
        applying = time.perf_counter()
        self._updating = True
        try:
            self.report, _table, self.edited = self.runner.applyMeasuredReport(
                self.inputVolume, self.segmentationNode, report, pending.arrays
            )
            self.measureCount += 1
        finally:
            self._updating = False
        done = time.perf_counter()
        self.timings.apply_s, self.timings.total_s = done - applying, done - pending.started
        if self.onUpdated is not None:
            self.onUpdated(self.report, self.edited)

    def wait(self, timeoutS: float | None = None) -> dict[str, Any] | None:
        """Wait for the measurement in the worker and apply it now (scripts, tests); returns the shown report."""
        self._waitPending(timeoutS)
        return self.report


def _measure(ct: Any, result: Any, previous: dict[str, Any] | None, manual: Any) -> tuple[dict[str, Any], float]:
    """The worker's part: the engine's measure of the labels' box (arrays only, no MRML). (report, seconds)."""
    from SmoothSegNetLib.slicer_support.session import recompute_report_in_box

    started = time.perf_counter()
    report = recompute_report_in_box(ct, result, previous, manual)
    return report, time.perf_counter() - started
