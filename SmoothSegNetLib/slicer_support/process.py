"""Run ``python -m SmoothSegNetLib segment ...`` as a child process that the GUI polls.

Why a child process: the GUI stays responsive, Cancel can kill the work at any point (also inside a
native library call), and CUDA memory is given back when the process ends. Two reader threads move
stdout/stderr lines into a queue; the GUI's timer calls :meth:`ChildProcess.poll`, which never blocks.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO

from SmoothSegNetLib.slicer_support.protocol import ProgressEvent, ProtocolReader


class Quality(str, Enum):
    """Model choice offered in the panel."""

    FAST = "fast"
    FULL = "full"
    LIVER_ONLY = "liver-only"


DEVICES = ("auto", "cpu", "cuda")
#: ``segment --runtime``: auto = torch on a GPU, the ONNX graphs on the CPU (no PyTorch needed there).
RUNTIMES = ("auto", "torch", "onnx")
#: Cards used for ``full`` quality (``Resources/Models``); their weights are installed with "Install model".
FULL_QUALITY_MODELS = ("paper-liver-segresnetvae", "paper-tumor-segresnetvae")
#: Seconds to wait, after the child exited, for processes it left behind to close its pipes.
LEFTOVER_GRACE_S = 1.0


@dataclass(frozen=True)
class SegmentRequest:
    """What the panel asks the engine to do (turned into ``segment`` options by :func:`segment_command`).

    Attributes:
        input_path: a volume file or a DICOM series folder.
        output_dir: where ``segment`` writes its outputs (created; must not hold earlier outputs).
        device: ``auto``, ``cpu`` or ``cuda``.
        runtime: ``auto``, ``torch`` or ``onnx`` (``segment --runtime``).
        quality: ``fast`` (the engine's default cards, the bundled demo models), ``full`` (the
            paper-configuration cards, :data:`FULL_QUALITY_MODELS`, whose weights must be installed),
            ``liver-only`` (skip the tumor stage).
        per_lesion: with ``dicom_seg``, one DICOM-SEG segment per lesion (``--per-lesion-segments``).
        dicom_seg, dicom_sr: also write ``seg.dcm`` / ``sr.dcm`` (only for a DICOM input).
        liver_model, tumor_model: model card paths or registry ids; ``None`` for the quality's default.
        skip_plausibility_check: segment a CT that fails the plausibility check (``--skip-plausibility-check``).
    """

    input_path: Path
    output_dir: Path
    device: str = "auto"
    quality: Quality = Quality.FAST
    per_lesion: bool = True
    dicom_seg: bool = False
    dicom_sr: bool = False
    liver_model: str | None = None
    tumor_model: str | None = None
    skip_plausibility_check: bool = False
    runtime: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if not isinstance(self.quality, Quality):
            raise ValueError(f"quality must be one of {[q.value for q in Quality]}, got {self.quality!r}")


def segment_command(request: SegmentRequest, python_executable: str | None = None) -> list[str]:
    """The command line of the ``segment`` child process (``python -m SmoothSegNetLib segment ...``)."""
    command = [python_executable or sys.executable, "-m", "SmoothSegNetLib", "segment", str(request.input_path)]
    command += ["-o", str(request.output_dir), "--progress", "jsonl", "--device", request.device]
    if request.runtime != "auto":
        command += ["--runtime", request.runtime]
    full = request.quality == Quality.FULL
    liver_model = request.liver_model or (FULL_QUALITY_MODELS[0] if full else None)
    tumor_model = request.tumor_model or (FULL_QUALITY_MODELS[1] if full else None)
    if liver_model:
        command += ["--liver-model", liver_model]
    if request.quality == Quality.LIVER_ONLY:
        command.append("--liver-only")
    elif tumor_model:
        command += ["--tumor-model", tumor_model]
    if request.per_lesion and request.dicom_seg:
        command.append("--per-lesion-segments")
    if request.dicom_seg:
        command.append("--dicom-seg")
    if request.dicom_sr:
        command.append("--dicom-sr")
    if request.skip_plausibility_check:
        command.append("--skip-plausibility-check")
    return command


@dataclass(frozen=True)
class Finished:
    """The child has exited and all its output has been read."""

    returncode: int
    message: str


class ChildProcess:
    """A started child process with non-blocking line reading and a process-tree kill.

    Args:
        command: program and arguments.
        env: extra environment variables (added to the current environment).
        cwd: working directory.
        what: what the child does, for failure messages ("Segmentation failed (bad input): ...").
    """

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        what: str = "Segmentation",
    ) -> None:
        self.command = list(command)
        self.what = what
        self.reader = ProtocolReader()
        self.cancel_requested = False
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._open_streams = 2
        self._finished: Finished | None = None
        self._exited_at: float | None = None
        self._kill_at: float | None = None
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        # A new session/process group, so that cancel reaches the workers the engine may start.
        extra: dict[str, object] = {}
        if os.name == "nt":
            extra["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            extra["start_new_session"] = True
        self._process = subprocess.Popen(  # the command is built from a fixed list, never through a shell
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            cwd=cwd,
            env=full_env,
            **extra,  # type: ignore[call-overload]
        )
        for name, stream in (("stdout", self._process.stdout), ("stderr", self._process.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True, name=f"segment-{name}").start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read(self, name: str, stream: IO[str] | None) -> None:
        if stream is not None:
            for line in stream:
                self._lines.put((name, line))
            stream.close()
        self._lines.put((name, None))

    def poll(self) -> tuple[list[ProgressEvent], Finished | None]:
        """New progress events since the last call, and :class:`Finished` once the child is done."""
        events: list[ProgressEvent] = []
        if self._kill_at is not None and time.monotonic() > self._kill_at and self._process.poll() is None:
            self._kill_group(signal.SIGKILL)  # the grace period of a non-waiting cancel is over
            self._kill_at = None
        while True:
            try:
                name, line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._open_streams -= 1
                continue
            event = self.reader.feed(name, line)
            if event is not None:
                events.append(event)
        if self._finished is None and self._process.poll() is not None and self._streams_done():
            code = int(self._process.returncode)
            message = "finished" if code == 0 else self.reader.failure_message(code, self.what)
            if self.cancel_requested and code != 0:
                message = "cancelled by the user"
            self._finished = Finished(code, message)
        return events, self._finished

    def _streams_done(self) -> bool:
        """True once both pipes are closed; leftovers of the exited child holding them are killed."""
        if self._open_streams == 0:
            return True
        if self._exited_at is None:
            self._exited_at = time.monotonic()
        elif time.monotonic() - self._exited_at > LEFTOVER_GRACE_S:
            # Processes the child started (and did not stop) still hold its pipes: stop them too.
            self._kill_group(signal.SIGKILL if os.name != "nt" else 9)
            self._exited_at = float("inf")
        return False

    def _kill_group(self, signum: int) -> None:
        if os.name == "nt":
            return
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout_s: float | None = None, interval_s: float = 0.05) -> tuple[list[ProgressEvent], Finished]:
        """Block until the child is done (scripts and tests: ``waitForCompletion``); all events seen."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        events: list[ProgressEvent] = []
        while True:
            new, finished = self.poll()
            events += new
            if finished is not None:
                return events, finished
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"the segment process did not finish within {timeout_s} s; it was killed")
            time.sleep(interval_s)

    def cancel(self, grace_s: float = 3.0, wait: bool = True) -> None:
        """Stop the child and everything it started: SIGTERM to the group, SIGKILL after ``grace_s``.

        With ``wait=False`` (the GUI) this returns at once; :meth:`poll` sends the SIGKILL when the
        grace period is over and the child is still there.
        """
        self.cancel_requested = True
        if self._process.poll() is not None:
            return
        if os.name == "nt":  # no process groups to signal: let taskkill walk the tree
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.pid)], capture_output=True, check=False)
            return
        # SIGTERM first: the engine stops at its next cancel check and removes its staged outputs.
        self._kill_group(signal.SIGTERM)
        self._kill_at = time.monotonic() + grace_s
        if not wait:
            return
        try:
            self._process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        self._kill_group(signal.SIGKILL)  # whatever is left: a stuck leader, workers it started
        self._process.wait()
