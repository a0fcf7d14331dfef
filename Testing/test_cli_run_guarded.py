"""The one failure -> exit status mapping shared by the CLI and the Slicer module's child-process jobs."""

from __future__ import annotations

import pytest

from SmoothSegNetLib.cli import EXIT_CANCELLED, EXIT_INPUT, EXIT_INTERNAL, run_guarded
from SmoothSegNetLib.errors import Cancelled, InputError, PacsError


def _raise(exc: BaseException) -> int:
    raise exc


@pytest.mark.parametrize(
    ("exc", "status", "line"),
    [
        (Cancelled("stop"), EXIT_CANCELLED, "error: cancelled; no partial outputs were left\n"),
        (KeyboardInterrupt(), EXIT_CANCELLED, "error: cancelled; no partial outputs were left\n"),
        (InputError("--at: 3 numbers,\n  got 2"), EXIT_INPUT, "error: --at: 3 numbers, got 2\n"),
        (PacsError("association rejected"), EXIT_INTERNAL, "error: association rejected\n"),
        (
            MemoryError(),
            EXIT_INTERNAL,
            "error: out of memory; crop the CT to the abdomen or use a machine with more memory\n",
        ),
        (ValueError("boom"), EXIT_INTERNAL, "error: internal failure (ValueError: boom); HINT\n"),
        (SystemExit(2), 2, ""),
        (SystemExit(None), 0, ""),
        (SystemExit("usage"), EXIT_INPUT, ""),
    ],
)
def test_each_failure_gets_its_status_and_one_line(
    exc: BaseException, status: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_guarded(lambda: _raise(exc), "HINT") == status
    captured = capsys.readouterr()
    assert captured.err == line and captured.out == ""


def test_success_passes_the_status_through(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_guarded(lambda: 0) == 0 and run_guarded(lambda: 3) == 3
    assert capsys.readouterr().err == ""
