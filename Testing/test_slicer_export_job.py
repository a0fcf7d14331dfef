"""The panel's export job (SmoothSegNetLib.slicer_support.export_job) as the child process it runs in: progress
lines, Cancel by SIGTERM leaving no files, a failing DICOM step stopping the job with one ``error:`` line.
Real engine, real files; the job folder is written by ``write_job`` as the Slicer logic does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _mrml_helpers import GEOMETRIES, synthetic_arrays

from SmoothSegNetLib.slicer_support.export_job import ExportJob, PacsTarget, export_job_command, write_job
from SmoothSegNetLib.slicer_support.protocol import parse_progress_line
from SmoothSegNetLib.slicer_support.session import EditedResult
from SmoothSegNetLib.volume import CTVolume, Geometry


def _job_folder(tmp_path: Path, outdir: Path, series: list[Path] | None = None, large: bool = False) -> Path:
    ct, labelmap, lesions = synthetic_arrays()
    geometry = GEOMETRIES["anisotropic-flipped"]
    if large:  # seconds of work after the first progress line, so that a signal surely arrives mid-job
        ct, labelmap, lesions = (np.tile(a, (8, 12, 12)) for a in (ct, labelmap, lesions))
        lesions = np.where(lesions == 1, 1, 0).astype(np.uint16)
        labelmap = np.where((labelmap == 2) & (lesions == 0), 1, labelmap).astype(np.uint8)
        geometry = Geometry.create(ct.shape, geometry.spacing_mm, geometry.origin_lps_mm, geometry.direction)
    volume = CTVolume(ct, geometry)
    result = EditedResult(labelmap, lesions, {1: "lesion_1", 2: "lesion_2"}, (2,))
    job = ExportJob(str(outdir), result.lesion_ids, result.edited_lesion_ids, None, picture=False, dicom=bool(series))
    write_job(tmp_path / "job", volume, result, job, series or [])
    return tmp_path / "job"


def _start(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        export_job_command(folder, sys.executable),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_job_writes_the_report_of_the_edited_segments_with_progress(tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    child = _start(_job_folder(tmp_path, outdir))
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 0, stderr
    events = [e for e in map(parse_progress_line, stdout.splitlines()) if e is not None]
    assert [e.stage for e in events] == ["report", "report", "done"] and events[-1].fraction == 1.0
    assert stdout.splitlines()[-1] == f"Wrote 4 files into {outdir}"
    report = json.loads((outdir / "report.json").read_text())
    assert [lesion["voxel_count"] for lesion in report["lesions"]] == [27, 8]
    assert "lesion(s) 2 were edited by hand after the network result" in report["warnings"]


def test_sigterm_cancels_and_leaves_no_output(tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    child = _start(_job_folder(tmp_path, outdir, large=True))
    assert child.stdout is not None
    first = parse_progress_line(child.stdout.readline())  # the job has started measuring
    assert first is not None and first.stage == "report"
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 130
    assert stderr.strip().splitlines()[-1] == "error: cancelled; no partial outputs were left"
    assert not outdir.exists()


def test_a_failing_dicom_export_stops_the_job_before_the_send(tmp_path: Path) -> None:
    not_dicom = tmp_path / "not-dicom.txt"
    not_dicom.write_text("this is no DICOM slice")
    outdir = tmp_path / "out"
    folder = _job_folder(tmp_path, outdir, series=[not_dicom])
    job = ExportJob.from_json((folder / "job.json").read_text())
    # Port 9 on loopback: nothing listens; the job must fail at the export and never try to send.
    job = ExportJob(**{**job.__dict__, "pacs": PacsTarget("127.0.0.1", 9, "NOBODY")})
    (folder / "job.json").write_text(job.to_json())
    child = _start(folder)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 2
    lines = stderr.strip().splitlines()
    assert len([line for line in lines if line.startswith("error:")]) == 1 and lines[-1].startswith("error: ")
    assert "send" not in [e.stage for e in map(parse_progress_line, stdout.splitlines()) if e is not None]
    assert not (outdir / "seg.dcm").exists() and (outdir / "report.json").is_file()


def test_job_description_round_trips() -> None:
    job = ExportJob("/x", {1: "lesion_1", 3: "S_1"}, (3,), {"lesions": []}, dicom=True, pacs=PacsTarget("h", 104, "A"))
    assert ExportJob.from_json(job.to_json()) == job
    with pytest.raises(ValueError, match="PACS settings incomplete"):
        PacsTarget("", 104, "A")
