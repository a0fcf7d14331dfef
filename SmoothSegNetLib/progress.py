"""Progress reporting and cancellation shared by every long-running stage.

A stage receives ``progress(stage, fraction, message)`` and ``cancel() -> bool`` callables. It calls
:func:`check_cancel` between units of work; cancellation raises :class:`~SmoothSegNetLib.errors.Cancelled`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Protocol

from SmoothSegNetLib.errors import Cancelled


class ProgressCallback(Protocol):
    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


CancelCheck = Callable[[], bool]


def no_progress(stage: str, fraction: float, message: str = "") -> None:
    """A progress callback that ignores everything."""


def never_cancel() -> bool:
    """A cancel check that never cancels."""
    return False


def check_cancel(cancel: CancelCheck | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` says so."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled by the user")


class CancelFlag:
    """A thread-safe cancel flag; ``flag()`` is a valid :data:`CancelCheck` (set it from a signal handler)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def __call__(self) -> bool:
        return self._event.is_set()


def sub_progress(progress: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """Map a sub-task's fraction in [0, 1] onto [start, end] of the parent's fraction."""

    def report(stage: str, fraction: float, message: str = "") -> None:
        progress(stage, start + (end - start) * min(max(fraction, 0.0), 1.0), message)

    return report


class JsonlProgress:
    """Writes one JSON object per line: ``{"stage", "fraction", "message", "elapsed_s"}`` (Slicer reads it)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._t0 = time.monotonic()

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        record = {
            "stage": stage,
            "fraction": round(float(fraction), 4),
            "message": message,
            "elapsed_s": round(time.monotonic() - self._t0, 3),
        }
        self._stream.write(json.dumps(record) + "\n")
        self._stream.flush()


#: Share of a case's bar per stage of ``run_case``: ``stage -> (start, end)``; the segmenter's stages
#: (``liver``, ``tumor``, ``done``) already report the fraction of the whole segmentation.
CASE_STAGES: dict[str, tuple[float, float]] = {
    "read": (0.0, 0.02),
    "liver": (0.02, 0.95),
    "tumor": (0.02, 0.95),
    "done": (0.02, 0.95),
    "write": (0.95, 1.0),
}
BAR_COLUMNS = 100


class TextProgress:
    """A one-line progress bar of a case on a terminal (plain lines when not a terminal).

    On a terminal the bar is redrawn in place (carriage return) and moves forward through the case's stages
    (:data:`CASE_STAGES`); :meth:`finish` ends the line so that what follows starts on a new one. Elsewhere
    each distinct message is one plain line (a log).
    """

    def __init__(self, stream: IO[str] | None = None, width: int = 30) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._tty = self._stream.isatty()
        self._last = ""
        self._drawn = False
        self._t0 = time.monotonic()
        self.prefix = ""

    @property
    def is_bar(self) -> bool:
        """True when drawing an in-place bar (the stream is a terminal)."""
        return self._tty

    def start_case(self, prefix: str = "") -> None:
        """A new case: the bar starts again at 0 % with ``prefix`` (e.g. ``case 2/5``) before it."""
        self.finish()
        self.prefix = f"{prefix} " if prefix else ""
        self._t0 = time.monotonic()

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        start, end = CASE_STAGES.get(stage, (0.0, 1.0))
        overall = start + (end - start) * fraction
        filled = int(round(overall * self._width))
        elapsed = int(time.monotonic() - self._t0)
        bar = f"{self.prefix}[{'#' * filled}{'.' * (self._width - filled)}] {overall * 100:5.1f}%"
        line = f"{bar} {elapsed // 60}:{elapsed % 60:02d} {stage}: {message}"
        if self._tty:
            self._stream.write("\r" + line[:BAR_COLUMNS].ljust(BAR_COLUMNS))
            self._drawn = True
        elif (key := f"{bar} {stage}: {message}") != self._last:
            self._stream.write(line + "\n")
            self._last = key
        self._stream.flush()

    def finish(self) -> None:
        """End the bar's line (on a terminal, if a bar was drawn)."""
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
        self._drawn = False
