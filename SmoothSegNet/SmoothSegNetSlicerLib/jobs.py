"""One child-process job at a time, polled by the GUI's timer (or waited for by scripts and tests).

A job may first *prepare* the files its child reads (the input CT, an export job's arrays) in a worker
thread, so that nothing long runs on the GUI thread; the child starts when they are written. Cancel stops
the preparation (the child is then never started) or the child's process tree. Everything raises or hands
the error to the completion callback; the widget decides how to show it.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from typing import Any

from SmoothSegNetLib.slicer_support.process import ChildProcess, Finished
from SmoothSegNetLib.slicer_support.protocol import ProgressEvent, ProtocolReader

ProgressCallback = Callable[[ProgressEvent], None]
CompletionCallback = Callable[[Any, Exception | None], None]

#: How often the GUI polls the child process (ms).
POLL_INTERVAL_MS = 200


class ChildJobs:
    """The job machinery of the logic. ``_job`` keys: command, what, workDir (removed at the end), progress,
    completion, onSuccess (builds the answer when the child succeeded), prepare (optional)."""

    def __init__(self) -> None:
        self._child: ChildProcess | None = None
        self._timer: Any = None
        self._job: dict[str, Any] = {}
        self._lastReader: ProtocolReader | None = None
        self._preparing: _PrepareThread | None = None

    def _childEnvironment(self) -> dict[str, str]:
        """Environment additions for the child (the logic puts the engine on PYTHONPATH)."""
        return {}

    @property
    def isRunning(self) -> bool:
        return self._child is not None or self._preparing is not None

    def _start(
        self, command: list[str], job: dict[str, Any], what: str, waitForCompletion: bool, timeoutS: float | None
    ) -> Any:
        """Start ``command``; ``job["prepare"]`` (writes the child's input) runs first, in a thread if not waiting."""
        self._job = {**job, "command": command, "what": what}
        prepare = job.get("prepare")
        if waitForCompletion:
            try:
                if prepare is not None:
                    prepare()
                self._startChild()
            except Exception:
                self._cleanup()
                raise
            return self._waitAndFinish(timeoutS)
        if prepare is not None:
            self._preparing = _PrepareThread(prepare)
        else:
            try:
                self._startChild()
            except Exception:
                self._cleanup()
                raise
        import qt

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll)
        self._timer.start()
        return None

    def _startChild(self) -> None:
        command = self._job["command"]
        self._child = ChildProcess(command, env=self._childEnvironment(), what=self._job["what"])
        logging.info("SmoothSegNet: started %s", " ".join(command))

    def cancel(self) -> None:
        """Stop the running child and everything it started; no result is imported.

        With the GUI timer running this does not block: SIGTERM now, SIGKILL from the next polls if the
        child is still there after the grace period.
        """
        if self._preparing is not None:
            self._preparing.cancelRequested = True  # the child will not be started
        if self._child is not None:
            self._child.cancel(wait=self._timer is None)

    def _waitAndFinish(self, timeoutS: float | None) -> Any:
        child = self._child
        assert child is not None
        try:
            events, finished = child.wait(timeout_s=timeoutS)
            for event in events:
                self._report(event)
            return self._finish(finished)
        finally:
            self._cleanup()

    def _report(self, event: ProgressEvent) -> None:
        callback = self._job.get("progress")
        if callback is not None:
            callback(event)

    def _poll(self) -> None:
        if self._preparing is not None and not self._pollPreparing():
            return
        child = self._child
        if child is None:
            return
        events, finished = child.poll()
        for event in events:
            self._report(event)
        if finished is None:
            return
        completion = self._job.get("completion")
        node, error = None, None
        try:
            node = self._finish(finished)
        except Exception as exc:  # handed to the widget, which shows it
            error = exc
        finally:
            self._cleanup()
        if completion is not None:
            completion(node, error)

    def _pollPreparing(self) -> bool:
        """While the worker thread writes the child's input: False; then start the child, or end the job."""
        preparing = self._preparing
        assert preparing is not None
        if preparing.is_alive():
            return False
        self._preparing = None
        error: Exception | None = preparing.error
        if error is None and preparing.cancelRequested:
            error = RuntimeError("cancelled by the user")
        if error is None:
            try:
                self._startChild()
                return True
            except Exception as exc:
                error = exc
        completion = self._job.get("completion")
        self._cleanup()
        if completion is not None:
            completion(None, error)
        return False

    def _finish(self, finished: Finished) -> Any:
        if self._child is not None and self._child.cancel_requested:
            raise RuntimeError("cancelled by the user")  # even if it finished first: the user asked for nothing
        if finished.returncode != 0:
            raise RuntimeError(finished.message)
        return self._job["onSuccess"]()

    def _cleanup(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._preparing = None
        if self._child is not None:  # kept for the error dialog's details, shown after this cleanup
            self._lastReader = self._child.reader
        self._child = None
        workDir = self._job.get("workDir")
        if workDir is not None:
            shutil.rmtree(workDir, ignore_errors=True)
        self._job = {}

    @property
    def protocol(self) -> ProtocolReader | None:
        """What the running child has said so far, or the last child once it ended (log lines for a details box)."""
        return self._child.reader if self._child is not None else self._lastReader


class _PrepareThread(threading.Thread):
    """Runs ``prepare`` (writing the child's input files) away from the GUI thread; keeps its error."""

    def __init__(self, prepare: Callable[[], None]) -> None:
        super().__init__(daemon=True, name="SmoothSegNet-prepare")
        self._prepare = prepare
        self.error: Exception | None = None
        self.cancelRequested = False
        self.start()

    def run(self) -> None:
        try:
            self._prepare()
        except Exception as exc:  # handed to the completion callback by the GUI's poll
            self.error = exc
