"""``smoothsegnet add-lesion``: add a missed lesion at a point to a ``segment`` output folder, re-measured."""

from __future__ import annotations

import argparse
import sys

NAME = "add-lesion"
HELP = (
    "add the lesion at a point (LPS mm) to an output folder of 'segment': the tumor network segments that one "
    "lesion around the point, and every output file is re-made and re-measured"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "outdir", metavar="OUTDIR", help="a folder written by 'segment' (report.json, segmentation.nrrd)"
    )
    parser.add_argument(
        "--at",
        required=True,
        metavar="X,Y,Z",
        help="a point inside the missed lesion, LPS mm (Slicer shows RAS); write --at=X,Y,Z when X is negative",
    )
    parser.add_argument("--image", default=None, metavar="CT", help="the CT, if report.json's input.source moved")
    parser.add_argument("--tumor-model", default=None, help="tumor card id or file (default: the one in report.json)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def run(args: argparse.Namespace) -> int:
    from SmoothSegNetLib.correction.add_lesion import parse_point
    from SmoothSegNetLib.correction.folder import add_lesion_to_folder
    from SmoothSegNetLib.errors import InputError

    point = parse_point(args.at)
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    added, report = add_lesion_to_folder(
        args.outdir, point, image=args.image, tumor_model=args.tumor_model, device=args.device, threads=args.threads
    )
    entry = next(e for e in report["lesions"] if e["id"] == added.lesion_id)
    sys.stdout.write(
        f"added lesion {added.lesion_id} ({entry['volume_ml']:.2f} ml, long axis {entry['long_axis_mm']:.1f} mm, "
        f"{added.method}{', re-centred' if added.searched_from_lps_mm else ''}) -> "
        f"{report['tumor_burden']['count']} lesion(s) in {args.outdir}\n"
    )
    return 0
