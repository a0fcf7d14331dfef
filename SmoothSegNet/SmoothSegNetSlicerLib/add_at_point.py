""" "Add lesion at point" in the panel: the engine's add-lesion on the scene being corrected, off the GUI thread.

The user clicks inside a lesion the models missed. On the GUI thread the segments are read back onto the CT grid
(:func:`SmoothSegNetLib.mrml.labelmap_from_segmentation`, the live table's fast path) and the CT is taken from
its node. In a worker thread the engine's
:class:`~SmoothSegNetLib.correction.add_lesion.PointSegmenter` searches the lesion there: it grows the lesion from
the point, tries a fitted ring, then the tumor network's window (docs/correction.md). The segmenter uses the run's
tumor card, loaded once and verified by sha256. A poll timer brings the result back to the GUI thread, where it
becomes the next lesion segment (:func:`SmoothSegNetSlicerLib.corrections.addLesionSegment`), and the live table
measures it. A refused point (outside the liver, on a lesion, nothing lesion-like there) changes nothing and its
reason is shown. A result for segments that were edited while it ran is dropped.

No Qt is needed except the timer (``qt.QTimer``); tests pass a timer stand-in, a scene from slicer-core and the
real segmenter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from SmoothSegNetSlicerLib.live import PolledJob, TimerFactory

#: Called on the GUI thread when a click is done: (the new segment's id or None, a message for the status line).
DoneCallback = Callable[[str | None, str], None]


@dataclass
class _Pending:
    edit: int
    future: Future[Any]
    started: float


class PointAdder(PolledJob):
    """Adds the lesion under a clicked point to ``segmentationNode`` (see the module docstring).

    Args:
        inputVolume: the CT the segments lie on.
        segmentationNode: the result being corrected.
        segmenterFactory: makes the engine's ``PointSegmenter`` (called once, in the worker thread: loading and
            verifying the card's weights takes about half a second).
        onDone: called on the GUI thread with (segment id or None, message) when a click is done.
        editCount: the number of edits seen so far (the live table's ``editCount``); a result is dropped if it
            changed while the search ran.
        ct: gives the CT as an engine volume (the live table's, read once while editing); default: read from
            ``inputVolume`` at each click.
        timerFactory: makes the poll timer (default: ``qt.QTimer``).
        executor: runs the search (default: one worker thread, created on first use).
    """

    def __init__(
        self,
        inputVolume: Any,
        segmentationNode: Any,
        segmenterFactory: Callable[[], Any],
        onDone: DoneCallback,
        editCount: Callable[[], int] = lambda: 0,
        ct: Callable[[], Any] | None = None,
        timerFactory: TimerFactory | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.inputVolume = inputVolume
        self.segmentationNode = segmentationNode
        self.onDone = onDone
        self.editCount = editCount
        self._ct = ct
        self.lastSeconds: float | None = None
        self._segmenterFactory = segmenterFactory
        self._segmenter: Any = None
        self._executor = executor
        self._ownExecutor = executor is None
        super().__init__(timerFactory)

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def addAtRas(self, pointRas: tuple[float, float, float] | list[float]) -> bool:
        """Start the search at ``pointRas`` (Slicer's RAS millimetres). False (and a message) while one runs."""
        from SmoothSegNetLib import mrml

        if self._pending is not None:
            self.onDone(None, "Still adding the previous lesion: click again when it is done")
            return False
        started = time.perf_counter()
        arrays = mrml.labelmap_from_segmentation(self.segmentationNode, self.inputVolume)
        ct = self._ct() if self._ct is not None else mrml.volume_from_node(self.inputVolume)
        pointLps = (-float(pointRas[0]), -float(pointRas[1]), float(pointRas[2]))
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="SmoothSegNet-add")
        future = self._executor.submit(self._search, ct, arrays.labelmap, arrays.lesions, pointLps)
        self._pending = _Pending(self.editCount(), future, started)
        self._startPolling()
        return True

    def _search(self, ct: Any, labelmap: Any, lesions: Any, pointLps: tuple[float, float, float]) -> Any:
        """The worker's part (arrays only, no MRML): the engine's click."""
        if self._segmenter is None:
            self._segmenter = self._segmenterFactory()
        return self._segmenter(ct, labelmap, lesions, pointLps)

    def _finish(self, pending: _Pending) -> None:
        """The search is done (GUI thread): add the lesion, or say why not."""
        import numpy as np

        from SmoothSegNetLib.errors import SmoothSegNetError
        from SmoothSegNetSlicerLib.corrections import addLesionSegment

        self.lastSeconds = time.perf_counter() - pending.started
        try:
            added = pending.future.result()
        except SmoothSegNetError as exc:  # refused point or a model that cannot be used: nothing changed
            self.onDone(None, str(exc))
            return
        except Exception as exc:  # a fault of ours: nothing changed, Slicer's log has the traceback
            logging.error("SmoothSegNet: adding the lesion at the point failed", exc_info=exc)
            self.onDone(None, f"Adding the lesion failed ({type(exc).__name__}: {exc}); nothing was changed")
            return
        if pending.edit != self.editCount():
            self.onDone(None, "The segments were edited while the lesion was searched: nothing added, click again")
            return
        mask = np.zeros(mrml_shape(self.inputVolume), dtype=bool)
        mask[added.box] = added.mask
        segmentId = addLesionSegment(self.segmentationNode, self.inputVolume, mask)
        self.onDone(
            segmentId,
            f"Lesion added ({added.voxel_count} voxels, {added.method.replace('_', ' ')}"
            f"{', re-centred' if added.searched_from_lps_mm else ''}, "
            f"network confidence {added.confidence:.2f}) in {self.lastSeconds:.1f} s",
        )

    def wait(self, timeoutS: float | None = None) -> None:
        """Wait for the search in the worker and apply it now (scripts, tests)."""
        self._waitPending(timeoutS)

    def stop(self) -> None:
        """Drop a pending result and the worker (a search already running is not applied)."""
        self._pollTimer.stop()
        self._pending = None
        if self._ownExecutor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def mrml_shape(volumeNode: Any) -> tuple[int, int, int]:
    """The ``[k, j, i]`` shape of a volume node's voxels."""
    i, j, k = volumeNode.GetImageData().GetDimensions()
    return (k, j, i)


def tumorSegmenterFactory(report: dict[str, Any] | None, threads: int | None = None) -> Callable[[], Any]:
    """Makes the ``PointSegmenter`` of the tumor card that made ``report`` (its sha256 checked), or of the bundled
    demo tumor card when the report names none (a result segmented by hand, or imported)."""

    def make() -> Any:
        from SmoothSegNetLib.correction.add_lesion import PointSegmenter
        from SmoothSegNetLib.correction.folder import tumor_model_of
        from SmoothSegNetLib.errors import InputError

        try:
            modelId, sha256 = tumor_model_of(report or {})
        except InputError:
            modelId, sha256 = "smoothsegnet-demo-tumor", None
        return PointSegmenter(modelId, sha256=sha256, threads=threads)

    return make
