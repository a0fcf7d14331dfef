"""``smoothsegnet followup BASELINE FOLLOWUP [FOLLOWUP ...] -o OUTDIR``: track lesions, RECIST 1.1 / mRECIST."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.outputs import StagedOutputDir
from SmoothSegNetLib.progress import JsonlProgress, ProgressCallback, TextProgress, no_progress

NAME = "followup"
HELP = (
    "compare later visits with a baseline (output folders of segment/report): registration, lesion tracking, "
    "RECIST 1.1, mRECIST and volumetric response (followup.json, followup.csv, followup.png)"
)

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "visit",
    "tracking_id",
    "status",
    "baseline_id",
    "followup_id",
    "baseline_long_axis_mm",
    "followup_long_axis_mm",
    "long_axis_change_percent",
    "baseline_volume_ml",
    "followup_volume_ml",
    "volume_change_percent",
    "baseline_viable_long_axis_mm",
    "followup_viable_long_axis_mm",
    "baseline_centroid_lps_mm",
    "followup_centroid_lps_mm",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("visits", nargs="+", metavar="FOLDER", help="baseline folder, then follow-up folders in order")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="N=PATH",
        help="the CT of visit N (0 = baseline) instead of the one its report.json names; repeatable",
    )
    parser.add_argument(
        "--labels",
        action="append",
        default=[],
        metavar="N=PATH",
        help="the labelmap (1 liver, 2 tumor) of visit N when its folder has no segmentation.nrrd (a 'report' "
        "folder); repeatable",
    )
    parser.add_argument(
        "--phase",
        action="append",
        default=[],
        metavar="[N=]PHASE",
        help="contrast phase (arterial, portal_venous, non_contrast, unknown) of visit N, or of all visits without "
        "N; mRECIST needs arterial (default unknown: mRECIST is NE)",
    )
    parser.add_argument(
        "--min-liver-dice",
        type=float,
        default=0.80,
        help="liver Dice after registration below which a visit is refused (default %(default)s)",
    )
    parser.add_argument("--rigid-affine-only", action="store_true", help="skip the deformable (B-spline) stage")
    parser.add_argument("--no-png", action="store_true", help="do not draw followup.png")
    parser.add_argument(
        "--progress",
        choices=["text", "jsonl", "none"],
        default=None,
        help="progress output (default: text on a terminal, none otherwise; jsonl for Slicer)",
    )
    parser.add_argument(
        "--dicom-sr",
        action="store_true",
        help="also write sr_visit_N.dcm per follow-up (TID 1500) reusing the baseline sr.dcm's Tracking UIDs for "
        "matched lesions; needs DICOM visits run with --dicom-sr",
    )


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(f"{v:g}" for v in value)
    return str(value)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([_csv_value(row.get(c)) for c in CSV_COLUMNS])


def _progress(kind: str | None) -> ProgressCallback:
    if kind is None:
        kind = "text" if sys.stderr.isatty() else "none"
    if kind == "jsonl":
        return JsonlProgress(sys.stdout)
    return TextProgress(sys.stderr) if kind == "text" else no_progress


def _write_srs(stage: StagedOutputDir, visits: list, data: dict[str, Any]) -> None:
    from SmoothSegNetLib.dicom_export.followup_sr import baseline_tracking_uids, write_followup_sr

    uids = baseline_tracking_uids(visits[0].folder / "sr.dcm")
    targets = set(data["recist"]["target_lesions"])
    for visit in visits[1:]:
        rows = [r for r in data["lesions"] if r["visit"] == visit.index and r["followup_id"] is not None]
        tracking = {
            r["followup_id"]: uids[r["baseline_id"]]
            for r in rows
            if r["status"] == "matched" and r["baseline_id"] in uids
        }
        response = data["recist"]["visits"][visit.index - 1]["response"]
        responses = {r["followup_id"]: response for r in rows if r["tracking_id"] in targets}
        path = stage.path(f"sr_visit_{visit.index}.dcm")
        write_followup_sr(path, visit.folder, visit.ct, visit.report, tracking, responses)


def run(args: argparse.Namespace) -> int:
    from SmoothSegNetLib.followup.engine import run_followup
    from SmoothSegNetLib.followup.registration import RegistrationOptions
    from SmoothSegNetLib.followup.visits import PHASES, check_visits, load_visit, parse_overrides

    if len(args.visits) < 2:
        raise InputError(f"followup needs a baseline and at least one follow-up folder, got {len(args.visits)}")
    if not 0.0 < args.min_liver_dice < 1.0:
        raise InputError(f"--min-liver-dice must be in (0, 1), got {args.min_liver_dice}")
    count = len(args.visits)
    images = parse_overrides(args.image, "--image", count)
    if -1 in images:
        raise InputError("--image needs N=PATH (which visit's CT), e.g. --image 1=followup_ct.nrrd")
    labelmaps = parse_overrides(args.labels, "--labels", count)
    if -1 in labelmaps:
        raise InputError("--labels needs N=PATH (which visit's labelmap), e.g. --labels 0=labels.nrrd")
    phases = parse_overrides(args.phase, "--phase", count, PHASES)
    visits = [
        load_visit(n, folder, images.get(n), phases.get(n, phases.get(-1, "unknown")), labelmaps.get(n))
        for n, folder in enumerate(args.visits)
    ]
    check_visits(visits)
    options = RegistrationOptions(
        dice_floor=args.min_liver_dice,
        warn_below=max(args.min_liver_dice, RegistrationOptions().warn_below),
        deformable=not args.rigid_affine_only,
    )
    result = run_followup(visits, options, _progress(args.progress))
    protect = [Path(v) for v in args.visits] + [Path(v.ct_path) for v in visits]
    protect += [Path(p) for p in labelmaps.values()]
    with StagedOutputDir(args.output, protect=protect) as stage:
        with stage.path("followup.json").open("w", encoding="utf-8") as handle:
            json.dump(result.data, handle, indent=2)
            handle.write("\n")
        write_csv(stage.path("followup.csv"), result.data["lesions"])
        for reg, entry in zip(result.registrations, result.data["registration"]):
            reg.write(stage.path(entry["transform_file"]))
        if args.dicom_sr:
            _write_srs(stage, visits, result.data)
        if not args.no_png:
            from SmoothSegNetLib.followup.figure import save_followup_figure

            save_followup_figure(stage.path("followup.png"), visits, result)
    for warning in result.data["warnings"]:
        sys.stderr.write(f"warning: {warning}\n")
    recist, mrecist = result.data["recist"], result.data["mrecist"]
    sys.stdout.write(
        f"{count - 1} follow-up(s): RECIST 1.1 {recist['response']}, mRECIST {mrecist['response']}, "
        f"tumour volume {result.data['volumetric']['total_volume_ml']} ml -> {args.output}\n"
    )
    return 0
