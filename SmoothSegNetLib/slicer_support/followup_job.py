"""The panel's "Compare with prior study" as one child-process job (nothing heavy on the GUI thread).

The logic writes a job folder (:func:`write_followup_job`, from a worker thread): for each study taken from
the scene (the current one, and the prior one unless it is an output folder) an export-job folder
``visit_N/`` (its CT, labelmap and lesion instances, see :mod:`.export_job`), and ``followup_job.json``
naming the visits, the output folder and the phase. The child
(``python -m SmoothSegNetLib.slicer_support.followup_job JOB_DIR --progress jsonl``):

1. measures each scene study into ``visit_N/study`` (report.json, segmentation.nrrd, lesions.nrrd: the folder
   ``followup`` reads), exactly as the panel's export does;
2. runs the engine's ``followup`` on the visit folders (``--image N=`` the study's CT) into the output folder.

Exit status and the one ``error:`` line on stderr are the CLI's (0, 1, 2 bad input, 130 cancelled).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from SmoothSegNetLib.slicer_support.export_job import CT_FILE, ExportJob, _engine, _on_signal, run_job, write_job
from SmoothSegNetLib.slicer_support.session import EditedResult
from SmoothSegNetLib.volume import CTVolume

JOB_FILE = "followup_job.json"
STUDY_FOLDER = "study"


@dataclass(frozen=True)
class SceneStudy:
    """A study taken from the scene: its CT, its segments as arrays, and the network report kept on the node."""

    ct: CTVolume
    result: EditedResult
    previous_report: dict[str, Any] | None = None


@dataclass(frozen=True)
class FollowupJob:
    """``visits``: per visit (0 = prior), an output folder, or None for a scene study written as ``visit_N``."""

    visits: list[str | None]
    outdir: str
    phase: str = "unknown"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FollowupJob:
        return cls(**json.loads(text))


def visit_folder(job_dir: Path, index: int) -> Path:
    return job_dir / f"visit_{index}"


def write_followup_job(job_dir: Path, job: FollowupJob, studies: dict[int, SceneStudy]) -> None:
    """Write the child's input: ``studies`` (visit index -> scene study) for the visits without a folder."""
    missing = [n for n, folder in enumerate(job.visits) if folder is None and n not in studies]
    if missing:
        raise ValueError(f"visits {missing} have neither a folder nor a scene study")
    for index, study in studies.items():
        folder = visit_folder(job_dir, index)
        export = ExportJob(
            str(folder / STUDY_FOLDER),
            study.result.lesion_ids,
            study.result.edited_lesion_ids,
            study.previous_report,
            picture=False,
        )
        write_job(folder, study.ct, study.result, export)
    (job_dir / JOB_FILE).write_text(job.to_json(), encoding="utf-8")


def followup_job_command(job_dir: Path, python_executable: str | None = None) -> list[str]:
    """The child's command line."""
    executable = python_executable or sys.executable
    return [executable, "-m", "SmoothSegNetLib.slicer_support.followup_job", str(job_dir), "--progress", "jsonl"]


def run_followup_job(job_dir: Path, progress: Any) -> str:
    """Do the job in ``job_dir``; returns the summary line. Raises as the engine does."""
    job = FollowupJob.from_json((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    folders: list[str] = []
    images: list[str] = []
    for index, folder in enumerate(job.visits):
        if folder is not None:
            folders.append(folder)
            continue
        which = "prior" if index == 0 else "current"
        progress("report", 0.0, f"measuring the {which} study")
        run_job(visit_folder(job_dir, index), lambda *args: None)  # its own 0..1 would move the bar back
        folders.append(str(visit_folder(job_dir, index) / STUDY_FOLDER))
        images += ["--image", f"{index}={visit_folder(job_dir, index) / CT_FILE}"]
    _engine(["followup", *folders, "-o", job.outdir, "--progress", "jsonl", "--phase", job.phase, *images])
    data = json.loads((Path(job.outdir) / "followup.json").read_text(encoding="utf-8"))
    summary = f"RECIST 1.1 {data['recist']['response']}, mRECIST {data['mrecist']['response']}"
    return f"Follow-up compared: {summary}"


def main(argv: Sequence[str] | None = None) -> int:
    from SmoothSegNetLib.cli import run_guarded
    from SmoothSegNetLib.commands.segment import make_progress

    parser = argparse.ArgumentParser(prog="python -m SmoothSegNetLib.slicer_support.followup_job")
    parser.add_argument("folder", type=Path, help="the job folder written by write_followup_job")
    parser.add_argument("--progress", choices=("text", "jsonl", "none"), default=None)
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)

    def run() -> int:
        sys.stdout.write(run_followup_job(args.folder, make_progress(args.progress)) + "\n")
        return 0

    return run_guarded(run)


if __name__ == "__main__":
    sys.exit(main())
