"""The panel's report, export, DICOM export and PACS send, as one child-process job (nothing heavy on the GUI thread).

The logic writes a job folder (:func:`write_job`, from a worker thread: the CT as uncompressed NRRD, the
labelmap and lesion instances as ``.npy``, ``job.json``) and runs
``python -m SmoothSegNetLib.slicer_support.export_job JOB_DIR`` as a child process that it polls. Steps, with
``--progress jsonl`` records between them:

1. ``report``: measure the current segments and write the export folder (:func:`session.write_export`, with
   confidences carried, hand edits named and the hand-drawn RECIST lines of ``manual_axes`` applied, as the
   panel's report); with ``report_only``, report.json only (the panel's "Recompute report");
2. ``DICOM export`` (when the job has a source series): the engine's ``export`` (seg.dcm, sr.dcm; it keeps the
   manual lines of the report.json step 1 wrote, so the SR shows the same numbers);
3. ``send`` (when the job has a PACS): the engine's ``send`` of what step 2 just wrote.

A failed step stops the job, so a failed export sends nothing. The last stdout line says what was done.
Exit status and the one ``error:`` line on stderr are the CLI's: 0, 1 (internal or PACS failure), 2 (bad
input), 130 (cancelled: SIGTERM stops at once, and staged outputs are removed).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from SmoothSegNetLib.slicer_support.session import EditedResult, dicom_folder_from_files, send_command
from SmoothSegNetLib.volume import CTVolume

JOB_FILE = "job.json"
CT_FILE = "input.nrrd"
LABELMAP_FILE = "segmentation.npy"
LESIONS_FILE = "lesions.npy"
SERIES_FOLDER = "series"


@dataclass(frozen=True)
class PacsTarget:
    """A DICOM node to C-STORE to (the module's PACS settings)."""

    host: str
    port: int
    called_aet: str

    def __post_init__(self) -> None:
        send_command(Path("."), self.host, self.port, self.called_aet)  # raises ValueError naming what is missing


@dataclass(frozen=True)
class ExportJob:
    """What the child does. ``lesion_ids``: lesion id -> segment id; ``dicom``: a source series was written."""

    outdir: str
    lesion_ids: dict[int, str]
    edited_lesion_ids: tuple[int, ...] = ()
    previous_report: dict[str, Any] | None = None
    picture: bool = True
    dicom: bool = False
    per_lesion: bool = True
    pacs: PacsTarget | None = None
    report_only: bool = False
    #: RECIST lines drawn by hand, ``{"<lesion id>": {"long": [[L,P,S],[L,P,S]], "short": ...}}`` (LPS mm).
    manual_axes: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ExportJob:
        data = json.loads(text)
        data["lesion_ids"] = {int(k): str(v) for k, v in data["lesion_ids"].items()}
        data["edited_lesion_ids"] = tuple(int(v) for v in data["edited_lesion_ids"])
        data["pacs"] = PacsTarget(**data["pacs"]) if data.get("pacs") else None
        return cls(**data)


def write_job(
    folder: Path, ct: CTVolume, result: EditedResult, job: ExportJob, series_files: Sequence[Path] = ()
) -> None:
    """Write everything the child needs into ``folder`` (meant for a worker thread: SimpleITK and file writes
    release the GIL). The CT is written uncompressed: gzip would cost seconds for a temporary file."""
    from SmoothSegNetLib.io.writers import write_volume

    folder.mkdir(parents=True, exist_ok=True)
    write_volume(folder / CT_FILE, ct, compress=False)
    np.save(folder / LABELMAP_FILE, result.labelmap)
    np.save(folder / LESIONS_FILE, result.lesions)
    if job.dicom:
        dicom_folder_from_files(list(series_files), folder / SERIES_FOLDER)
    (folder / JOB_FILE).write_text(job.to_json(), encoding="utf-8")


def export_job_command(folder: Path, python_executable: str | None = None) -> list[str]:
    """The child's command line."""
    executable = python_executable or sys.executable
    return [executable, "-m", "SmoothSegNetLib.slicer_support.export_job", str(folder), "--progress", "jsonl"]


def _engine(argv: list[str]) -> None:
    """Run one engine sub-command in this process (its errors propagate to :func:`main`)."""
    from SmoothSegNetLib.cli import build_parser

    args = build_parser().parse_args(argv)
    args._run(args)


def run_job(folder: Path, progress: Any) -> str:
    """Do the job in ``folder``; returns the summary line. Raises as the engine does."""
    from SmoothSegNetLib.io import read_volume
    from SmoothSegNetLib.report.manual_axes import parse_manual_axes
    from SmoothSegNetLib.slicer_support.session import recompute_report, write_export

    job = ExportJob.from_json((folder / JOB_FILE).read_text(encoding="utf-8"))
    outdir = Path(job.outdir)
    progress("report", 0.0, "measuring the current segments")
    ct = read_volume(folder / CT_FILE)
    result = EditedResult(
        np.load(folder / LABELMAP_FILE), np.load(folder / LESIONS_FILE), job.lesion_ids, job.edited_lesion_ids
    )
    manual = parse_manual_axes(job.manual_axes or {}, "the export job's manual_axes")
    report = recompute_report(ct, result, job.previous_report, manual)
    if job.report_only:  # "Recompute report": the panel reads report.json back into its table
        from SmoothSegNetLib.report.files import write_report_json

        outdir.mkdir(parents=True, exist_ok=True)
        write_report_json(outdir / "report.json", report)
        progress("done", 1.0, "report recomputed")
        return f"Report recomputed: {report['tumor_burden']['count']} lesion(s)"
    progress("report", 0.2, f"writing {outdir.name}")
    written = write_export(outdir, ct, result, report, picture=job.picture)
    summary = f"Wrote {len(written)} files into {outdir}"
    if job.dicom:
        progress("DICOM export", 0.4, "writing seg.dcm and sr.dcm")
        command = ["export", str(outdir), "--dicom", str(folder / SERIES_FOLDER)]
        _engine([*command, "--per-lesion-segments"] if job.per_lesion else command)
        summary = f"Wrote seg.dcm and sr.dcm into {outdir}"
    if job.pacs is not None:
        target = job.pacs
        progress("send", 0.8, f"sending to {target.called_aet}@{target.host}:{target.port}")
        _engine(["send", str(outdir), "--dicom", f"{target.host}:{target.port}", "--aet", target.called_aet])
        summary = f"Sent seg.dcm and sr.dcm of {outdir.name} to {target.called_aet}@{target.host}:{target.port}"
    progress("done", 1.0, summary)
    return summary


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # at once: the staged outputs are removed on the way out


def main(argv: Sequence[str] | None = None) -> int:
    from SmoothSegNetLib.cli import run_guarded
    from SmoothSegNetLib.commands.segment import make_progress

    parser = argparse.ArgumentParser(prog="python -m SmoothSegNetLib.slicer_support.export_job")
    parser.add_argument("folder", type=Path, help="the job folder written by write_job")
    parser.add_argument("--progress", choices=("text", "jsonl", "none"), default=None)
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)

    def run() -> int:
        sys.stdout.write(run_job(args.folder, make_progress(args.progress)) + "\n")
        return 0

    return run_guarded(run)


if __name__ == "__main__":
    sys.exit(main())
