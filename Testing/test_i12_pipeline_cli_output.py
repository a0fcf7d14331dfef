"""Issue 12 item 10: ``segment`` shows a progress bar on a terminal and one summary line per finished case.

The bar goes to stderr only when stderr is a terminal (a real pseudo-terminal here) and ``--progress`` is the
default or ``text``; the summary line goes to stdout and carries report.json's numbers; ``--progress jsonl``
stdout stays pure JSON records in the format the Slicer module parses.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from SmoothSegNetLib.io.writers import write_volume
from SmoothSegNetLib.slicer_support.protocol import parse_progress_line
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model
from Testing.conftest import run_cli

SUMMARY = re.compile(
    r"^(?P<out>.+): liver (?P<liver>[0-9.]+) ml, (?P<count>\d+) lesion\(s\), tumor (?P<tumor>[0-9.]+) ml, "
    r"(?P<warnings>\d+) warning\(s\)$"
)


def _ct(tumors: int) -> CTVolume:
    a = np.full((20, 30, 40), -500, np.int16)
    a[4:16, 5:25, 5:35] = 100
    a[8:12, 10:14, 10:16] = 200
    if tumors > 1:
        a[6:8, 18:21, 26:30] = 200  # 2 x 3 x 4 voxels
    return CTVolume(a, Geometry.create(a.shape, (0.8, 0.9, 2.5), (-12.0, 30.5, 101.0)))


@pytest.fixture
def models(tmp_path: Path) -> list[str]:
    liver = write_threshold_model(tmp_path / "models", "liver", threshold_hu=50)
    tumor = write_threshold_model(tmp_path / "models", "tumor", threshold_hu=150)
    # The test CT is a small synthetic box, not a body: the plausibility check is skipped (issue 17).
    return ["--liver-model", str(liver), "--tumor-model", str(tumor), "--skip-plausibility-check"]


def _run_with_terminal_stderr(*args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal and stdout on a pipe; returns (status, stdout, terminal)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "SmoothSegNetLib", *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=600)
    reader.join(timeout=30)
    os.close(master)
    return process.returncode, stdout, b"".join(chunks).decode("utf-8", "replace")


def _check_summary(line: str, outdir: Path) -> None:
    match = SUMMARY.match(line)
    assert match is not None, line
    report = json.loads((outdir / "report.json").read_text())
    assert Path(match["out"]) == outdir
    assert float(match["liver"]) == report["liver"]["volume_ml"]
    assert int(match["count"]) == report["tumor_burden"]["count"]
    assert float(match["tumor"]) == report["tumor_burden"]["total_volume_ml"]
    assert int(match["warnings"]) == len(report["warnings"])


def test_one_summary_line_per_case_with_the_reports_numbers_and_no_bar_off_a_terminal(
    tmp_path: Path, models: list[str]
) -> None:
    sources = [write_volume(tmp_path / f"case{n}.nrrd", _ct(n + 1)) for n in range(2)]
    out = tmp_path / "out"
    result = run_cli("segment", *map(str, sources), "-o", str(out), *models)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for n, line in enumerate(lines):
        _check_summary(line, out / f"case{n}")
    counts = [json.loads((out / f"case{n}" / "report.json").read_text())["tumor_burden"]["count"] for n in range(2)]
    assert counts == [1, 2]
    assert "\r" not in result.stderr and "%" not in result.stderr  # no bar and no progress lines in a pipe


def test_progress_bar_on_a_terminal_and_none_when_asked(tmp_path: Path, models: list[str]) -> None:
    source = write_volume(tmp_path / "ct.nrrd", _ct(1))
    status, stdout, terminal = _run_with_terminal_stderr("segment", str(source), "-o", str(tmp_path / "a"), *models)
    assert status == 0, terminal
    assert "\r[" in terminal and "100.0%" in terminal and "write: complete" in terminal
    assert terminal.endswith("\n")  # the bar's line is ended; nothing is left half-drawn
    percents = [float(p) for p in re.findall(r"\] +([0-9.]+)%", terminal)]
    assert percents == sorted(percents) and percents[-1] == 100.0  # one bar moving forward through the case
    assert len(stdout.splitlines()) == 1
    _check_summary(stdout.splitlines()[0], tmp_path / "a")
    status, stdout, terminal = _run_with_terminal_stderr(
        "segment", str(source), "-o", str(tmp_path / "b"), *models, "--progress", "none"
    )
    assert status == 0 and "%" not in terminal and "\r" not in terminal
    _check_summary(stdout.strip(), tmp_path / "b")


def test_jsonl_stdout_stays_json_records_only(tmp_path: Path, models: list[str]) -> None:
    source = write_volume(tmp_path / "ct.nrrd", _ct(1))
    status, stdout, terminal = _run_with_terminal_stderr(
        "segment", str(source), "-o", str(tmp_path / "a"), *models, "--progress", "jsonl"
    )
    assert status == 0, terminal
    lines = stdout.splitlines()
    assert lines and all(set(json.loads(line)) == {"stage", "fraction", "message", "elapsed_s"} for line in lines)
    events = [parse_progress_line(line) for line in lines]
    assert all(e is not None for e in events)
    assert events[-1] is not None and (events[-1].stage, events[-1].fraction) == ("write", 1.0)
    assert "\r" not in terminal and "%" not in terminal
