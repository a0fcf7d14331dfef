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


class TextProgress:
    """A one-line progress bar on a terminal (plain lines when not a terminal)."""

    def __init__(self, stream: IO[str] | None = None, width: int = 30) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._tty = self._stream.isatty()
        self._last = ""

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        filled = int(round(fraction * self._width))
        line = f"[{'#' * filled}{'.' * (self._width - filled)}] {fraction * 100:5.1f}% {stage}: {message}"
        if self._tty:
            self._stream.write("\r" + line[:120].ljust(120))
            if fraction >= 1.0 and stage == "done":
                self._stream.write("\n")
        elif line != self._last:
            self._stream.write(line + "\n")
        self._last = line
        self._stream.flush()
