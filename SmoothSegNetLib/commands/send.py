"""``smoothsegnet send``: send seg.dcm / sr.dcm of an output folder (and optionally the CT) to a PACS.

Exit status 1 when the PACS cannot be reached or refuses (the files stay on disk; run the command again),
2 for bad arguments or an output folder without DICOM objects.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from SmoothSegNetLib.errors import InputError

NAME = "send"
HELP = "send seg.dcm / sr.dcm (and optionally the source CT series) to a PACS by C-STORE or DICOMweb STOW-RS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outdir", metavar="OUTDIR", help="an output folder holding seg.dcm and/or sr.dcm")
    parser.add_argument("--dicom", metavar="HOST:PORT", help="DICOM node to C-STORE to")
    parser.add_argument("--aet", metavar="AET", help="the PACS's AE title (called AE title; with --dicom)")
    parser.add_argument("--calling-aet", default="SMOOTHSEGNET", metavar="AET", help="our AE title")
    parser.add_argument(
        "--dicomweb", metavar="URL", help="DICOMweb root URL to STOW-RS to (e.g. http://host/dicom-web)"
    )
    parser.add_argument(
        "--source-series",
        metavar="SERIES_DIR",
        help="also send the source CT slices found in this folder (those of the report's series), first",
    )
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S", help="network timeout in seconds")


def _source_files(folder: Path, outdir: Path) -> list[Path]:
    import pydicom

    report_path = outdir / "report.json"
    try:
        series_uid = json.loads(report_path.read_text(encoding="utf-8"))["input"]["dicom"]["series_instance_uid"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"--source-series needs {report_path} with the source series UID (a report of a DICOM input)"
        ) from exc
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        except (OSError, pydicom.errors.InvalidDicomError):
            continue
        if str(header.get("SeriesInstanceUID", "")) == series_uid:
            files.append(path)
    if not files:
        raise InputError(f"--source-series {folder} holds no slice of the report's series {series_uid}")
    return files


def run(args: argparse.Namespace) -> int:
    from SmoothSegNetLib.pacs import DimseTarget, parse_host_port, send_dicomweb, send_dimse

    outdir = Path(args.outdir)
    if not outdir.is_dir():
        raise InputError(f"OUTDIR {outdir} is not a folder: give an output folder of 'segment' or 'export'")
    if not args.dicom and not args.dicomweb:
        raise InputError("say where to send: --dicom HOST:PORT --aet AET, or --dicomweb URL")
    if args.dicom and not args.aet:
        raise InputError("--dicom needs --aet, the PACS's AE title")
    if args.timeout <= 0:
        raise InputError(f"--timeout must be > 0 seconds, got {args.timeout}")
    objects = [outdir / name for name in ("seg.dcm", "sr.dcm") if (outdir / name).is_file()]
    if not objects:
        raise InputError(
            f"OUTDIR {outdir} holds no seg.dcm or sr.dcm: run segment with --dicom-seg/--dicom-sr or "
            "'smoothsegnet export' first"
        )
    files = (_source_files(Path(args.source_series), outdir) if args.source_series else []) + objects
    if args.dicom:
        host, port = parse_host_port(args.dicom)
        target = DimseTarget(host, port, args.aet, args.calling_aet, args.timeout)
        result = send_dimse(files, target)
        sys.stdout.write(f"sent {len(result.sent_sop_instance_uids)} object(s) to {args.aet}@{host}:{port}\n")
    if args.dicomweb:
        result = send_dicomweb(files, args.dicomweb, args.timeout)
        sys.stdout.write(f"stored {len(result.sent_sop_instance_uids)} object(s) at {args.dicomweb}\n")
    return 0
