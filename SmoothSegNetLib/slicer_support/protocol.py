"""The child process protocol: ``--progress jsonl`` lines on stdout, one ``error:`` line on stderr.

A progress line is a JSON object ``{"stage": str, "fraction": float, "message": str, "elapsed_s": float}``
(written by :class:`SmoothSegNetLib.progress.JsonlProgress`). Anything else on stdout is log text.
On failure the command line writes one line starting ``error:`` on stderr and exits with status 2
(bad input), 1 (internal failure) or 130 (cancelled).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

EXIT_MEANINGS = {0: "finished", 1: "internal failure", 2: "bad input", 130: "cancelled"}


@dataclass(frozen=True)
class ProgressEvent:
    """One progress record of the child process."""

    stage: str
    fraction: float
    message: str
    elapsed_s: float

    @property
    def percent(self) -> int:
        """Fraction as a whole percentage in [0, 100] (for a QProgressBar)."""
        return int(round(min(max(self.fraction, 0.0), 1.0) * 100))

    def status_text(self) -> str:
        """``stage: message (elapsed m:ss)`` for the status line under the progress bar."""
        minutes, seconds = divmod(int(self.elapsed_s), 60)
        text = f"{self.stage}: {self.message}" if self.message else self.stage
        return f"{text} ({minutes}:{seconds:02d})"


def parse_progress_line(line: str) -> ProgressEvent | None:
    """The progress record in ``line``, or ``None`` if the line is not one (then it is log text)."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not {"stage", "fraction"} <= record.keys():
        return None
    try:
        fraction = float(record["fraction"])
        elapsed_s = float(record.get("elapsed_s", 0.0))
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(fraction) and math.isfinite(elapsed_s)):
        return None
    return ProgressEvent(str(record["stage"]), fraction, str(record.get("message", "")), elapsed_s)


@dataclass
class ProtocolReader:
    """Accumulates what the child process says: the latest progress, log lines, the ``error:`` line."""

    last_progress: ProgressEvent | None = None
    log_lines: list[str] = field(default_factory=list)
    error_line: str | None = None

    def feed(self, stream: str, line: str) -> ProgressEvent | None:
        """Take one line from ``stream`` ("stdout" or "stderr"); return it as progress if it is one."""
        if stream == "stdout":
            event = parse_progress_line(line)
            if event is not None:
                self.last_progress = event
                return event
        text = line.rstrip("\n")
        if stream == "stderr" and text.startswith("error:"):
            self.error_line = text[len("error:") :].strip()
        if text:
            self.log_lines.append(text)
        return None

    def failure_message(self, returncode: int, what: str = "Segmentation") -> str:
        """What to tell the user when the child (doing ``what``) exited with ``returncode`` != 0."""
        meaning = EXIT_MEANINGS.get(returncode, f"exit status {returncode}")
        if self.error_line:
            return f"{what} failed ({meaning}): {self.error_line}"
        tail = " | ".join(self.log_lines[-3:]) or "no output"
        return f"{what} failed ({meaning}); last output: {tail}"
