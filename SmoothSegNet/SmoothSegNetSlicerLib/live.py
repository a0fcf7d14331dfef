"""The live lesion table: after any edit of the segments, the report is measured again by itself.

Segment Editor fires a burst of events per stroke (segment modified, node modified, ...). ``LiveReport``
restarts one single-shot timer on each event (a debounce, 500 ms by default); when it fires, the segments
are read back onto the CT grid on the fast path (:func:`SmoothSegNetLib.mrml.labelmap_from_segmentation`:
Slicer's shared labelmap layers, segments as bounding boxes), measured with the engine's ``measure`` (via
:func:`SmoothSegNetLib.slicer_support.session.recompute_report_in_box`: "Recompute report"'s measure on
the labels' bounding box) and
the lesion table node, segment names and the panel follow. bench/slicer_bridge.py times it.

No Qt is needed except the default timer (``qt.QTimer``); tests pass a timer stand-in and an MRML scene
from slicer-core. Events caused by the update itself (segment renaming, table and attribute writes) are
ignored, so an update never triggers the next one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

# SmoothSegNetLib is imported inside the functions: SmoothSegNet.py may import this module before the logic
# module has put the engine on sys.path.
#: Debounce delay of the live table (ms): one re-measure per pause in the editing.
LIVE_DELAY_MS = 500
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


class LiveReport:
    """Keeps the lesion table of ``segmentationNode`` measured while it is edited.

    Args:
        runner: the module's :class:`~SmoothSegNetSlicerLib.logic.SmoothSegNetRunner` (scene, table node).
        inputVolume: the CT the segments lie on.
        segmentationNode: the result being corrected.
        onUpdated: called with (report, edited lesion ids) after each re-measure (the panel redraws).
        delayMs: the debounce delay.
        timerFactory: makes the single-shot timer (default: ``qt.QTimer``).
    """

    def __init__(
        self,
        runner: Any,
        inputVolume: Any,
        segmentationNode: Any,
        onUpdated: UpdateCallback | None = None,
        delayMs: int = LIVE_DELAY_MS,
        timerFactory: TimerFactory | None = None,
    ) -> None:
        self.runner = runner
        self.inputVolume = inputVolume
        self.segmentationNode = segmentationNode
        self.onUpdated = onUpdated
        self.measureCount = 0
        self.report: dict[str, Any] | None = None
        self.edited: tuple[int, ...] = ()
        self._updating = False
        self._ct: Any = None
        self._timer = (timerFactory or qtSingleShotTimer)(delayMs, self.update)
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
        """Stop observing and drop a pending update."""
        for obj, tag in self._observations:
            obj.RemoveObserver(tag)
        self._observations = []
        self._timer.stop()

    def onEdited(self, *args: Any) -> None:
        """An edit event: (re)start the debounce timer, unless the event comes from our own update."""
        if not self._updating:
            self._timer.start()

    def _onVolumeModified(self, *args: Any) -> None:
        self._ct = None

    def ct(self) -> Any:
        """The CT as an engine volume, read once (re-read when the volume node changes)."""
        from SmoothSegNetLib import mrml

        if self._ct is None:
            self._ct = mrml.volume_from_node(self.inputVolume)
        return self._ct

    def update(self) -> dict[str, Any]:
        """Measure the segments as they are now and update the table node, segment names and the panel."""
        from SmoothSegNetLib import mrml
        from SmoothSegNetLib.report.manual_axes import parse_manual_axes
        from SmoothSegNetLib.slicer_support.session import EditedResult, recompute_report_in_box

        self._updating = True
        try:
            arrays = mrml.labelmap_from_segmentation(self.segmentationNode, self.inputVolume)
            result = EditedResult(arrays.labelmap, arrays.lesions, arrays.lesion_ids, arrays.edited_lesion_ids)
            manual = parse_manual_axes(manualAxesOf(self.segmentationNode, arrays.lesion_ids))
            previous = self.runner.storedReport(self.segmentationNode)
            report = recompute_report_in_box(self.ct(), result, previous, manual)
            self.measureCount += 1
            self.report, _table, self.edited = self.runner.applyMeasuredReport(
                self.inputVolume, self.segmentationNode, report, arrays
            )
        finally:
            self._updating = False
        if self.onUpdated is not None:
            self.onUpdated(self.report, self.edited)
        return self.report
