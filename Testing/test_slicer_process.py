"""The child-process runner of the Slicer module: real child processes, real CLI (no Qt, no mocks)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from SmoothSegNetLib.slicer_support.process import ChildProcess, Quality, SegmentRequest, segment_command

#: A stand-in *worker program* (a real process) that reports progress like the engine, starts a grandchild
#: and then waits: used to check streaming and that Cancel kills the whole process tree.
WORKER = textwrap.dedent(
    """
    import subprocess, sys, time
    from SmoothSegNetLib.progress import JsonlProgress
    progress = JsonlProgress()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(f"grandchild {child.pid}", flush=True)
    for n in range(3):
        progress("liver", n / 4, f"step {n}")
    sys.stderr.write("warming up\\n")
    sys.stderr.flush()
    if sys.argv[1] == "wait":
        time.sleep(60)
    if sys.argv[1] == "stubborn":
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
        time.sleep(60)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie is dead, only not yet reaped by its new parent


def _worker(tmp_path: Path, mode: str) -> ChildProcess:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return ChildProcess([sys.executable, str(script), mode], env={"PYTHONPATH": str(Path.cwd())})


def test_segment_command_options() -> None:
    request = SegmentRequest(Path("/data/ct.nrrd"), Path("/tmp/out"), device="cuda", dicom_seg=True)
    assert segment_command(request, "/opt/Slicer/bin/PythonSlicer") == [
        "/opt/Slicer/bin/PythonSlicer", "-m", "SmoothSegNetLib", "segment", "/data/ct.nrrd",
        "-o", "/tmp/out", "--progress", "jsonl", "--device", "cuda", "--per-lesion-segments", "--dicom-seg",
    ]  # fmt: skip
    assert "--per-lesion-segments" not in segment_command(SegmentRequest(Path("ct.nrrd"), Path("out")), "py")
    liver_only = SegmentRequest(Path("ct.nrrd"), Path("out"), quality=Quality.LIVER_ONLY, tumor_model="t.json")
    command = segment_command(liver_only, "py")
    assert "--liver-only" in command and "--tumor-model" not in command and "--per-lesion-segments" not in command
    full = SegmentRequest(Path("ct.nrrd"), Path("out"), quality=Quality.FULL, tumor_model="t.json")
    assert segment_command(full, "py")[-4:] == ["--liver-model", "paper-liver-segresnetvae", "--tumor-model", "t.json"]
    fast = segment_command(SegmentRequest(Path("ct.nrrd"), Path("out")), "py")
    assert "--liver-model" not in fast and "--tumor-model" not in fast  # the engine's defaults: the demo models


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "gpu"}, "device must be one of auto, cpu, cuda, got 'gpu'"),
        ({"quality": "fast"}, "quality must be one of"),
    ],
)
def test_segment_request_refuses_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentRequest(Path("ct.nrrd"), Path("out"), **kwargs)  # type: ignore[arg-type]


def test_progress_is_streamed_and_completion_seen(tmp_path: Path) -> None:
    child = _worker(tmp_path, "exit")
    events, finished = child.wait(timeout_s=60)
    assert [(e.stage, e.fraction, e.message) for e in events] == [
        ("liver", 0.0, "step 0"), ("liver", 0.25, "step 1"), ("liver", 0.5, "step 2"),
    ]  # fmt: skip
    assert finished.returncode == 0 and finished.message == "finished"
    assert "warming up" in child.reader.log_lines
    # The worker exited leaving its grandchild running (and holding the pipes): the runner stopped it.
    grandchild = int(next(line for line in child.reader.log_lines if line.startswith("grandchild")).split()[1])
    for _ in range(100):
        if not _alive(grandchild):
            break
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_cancel_kills_the_process_tree(tmp_path: Path) -> None:
    child = _worker(tmp_path, "wait")
    deadline = time.monotonic() + 60
    events = []
    while len(events) < 3 and time.monotonic() < deadline:  # poll like the GUI timer does
        events += child.poll()[0]
        time.sleep(0.02)
    assert len(events) == 3
    grandchild = int(next(line for line in child.reader.log_lines if line.startswith("grandchild")).split()[1])
    assert _alive(child.pid) and _alive(grandchild)
    child.cancel(grace_s=2.0)
    _, finished = child.wait(timeout_s=30)
    assert finished.returncode != 0 and finished.message == "cancelled by the user"
    for _ in range(100):
        if not _alive(grandchild):
            break
        time.sleep(0.05)
    assert not _alive(child.pid) and not _alive(grandchild)


def test_failure_message_from_the_real_cli(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ct.nrrd"
    child = ChildProcess([sys.executable, "-m", "SmoothSegNetLib", "inspect", str(missing)])
    _, finished = child.wait(timeout_s=120)
    assert finished.returncode == 2
    assert finished.message.startswith("Segmentation failed (bad input): ")
    assert str(missing) in finished.message or missing.name in finished.message


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    child = _worker(tmp_path, "stubborn")
    deadline = time.monotonic() + 60
    while "ignoring SIGTERM" not in child.reader.log_lines and time.monotonic() < deadline:
        child.poll()
        time.sleep(0.02)
    started = time.monotonic()
    child.cancel(grace_s=0.5, wait=False)  # the GUI path: returns at once
    assert time.monotonic() - started < 0.5
    assert _alive(child.pid)  # SIGTERM ignored
    _, finished = child.wait(timeout_s=30)  # polling escalates to SIGKILL after the grace period
    assert finished.returncode == -9 and finished.message == "cancelled by the user"
    assert not _alive(child.pid)
