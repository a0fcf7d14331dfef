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


def applyManualAxes(report: dict[str, Any], segmentationNode: Any, lesionIds: dict[int, str]) -> None:
    """Put the hand-set RECIST axes (segment tag :data:`TAG_MANUAL_AXES`) into the report's lesions.

    A lesion with manual axes gets ``axes_source: "manual"``, the lengths of the user's lines and the size
    categories of its new long axis; the burden's largest long axis, the Milan size check and a warning follow.
    """
    from SmoothSegNetLib import mrml
    from SmoothSegNetLib.report.categories import milan_size_check, size_categories

    segmentation = segmentationNode.GetSegmentation()
    manual = []
    for lesion in report.get("lesions", []):
        segment = segmentation.GetSegment(lesionIds.get(int(lesion["id"]), ""))
        text = mrml._tag(segment, TAG_MANUAL_AXES) if segment is not None else None
        if text:
            lesion.update(json.loads(text))
            lesion["axes_source"] = "manual"
            lesion["categories"] = size_categories(lesion["long_axis_mm"])
            manual.append(str(lesion["id"]))
    if manual:
        long_axes = [lesion["long_axis_mm"] for lesion in report["lesions"]]
        report["tumor_burden"]["largest_long_axis_mm"] = max(long_axes)
        report["milan_size_check"] = milan_size_check(long_axes)
        report["warnings"].append(f"lesion(s) {', '.join(manual)}: RECIST axes measured by hand (markups lines)")


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
        from SmoothSegNetLib.slicer_support.session import EditedResult, recompute_report_in_box

        self._updating = True
        try:
            arrays = mrml.labelmap_from_segmentation(self.segmentationNode, self.inputVolume)
            result = EditedResult(arrays.labelmap, arrays.lesions, arrays.lesion_ids, arrays.edited_lesion_ids)
            report = recompute_report_in_box(self.ct(), result, self.runner.storedReport(self.segmentationNode))
            self.measureCount += 1
            applyManualAxes(report, self.segmentationNode, arrays.lesion_ids)
            self.report, _table, self.edited = self.runner.applyMeasuredReport(
                self.inputVolume, self.segmentationNode, report, arrays
            )
        finally:
            self._updating = False
        if self.onUpdated is not None:
            self.onUpdated(self.report, self.edited)
        return self.report
