"""``smoothsegnet inspect INPUT``: read and validate a CT, then describe it (size, geometry, HU range, UIDs)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from SmoothSegNetLib.volume import CTVolume

NAME = "inspect"
HELP = "read and validate a CT (volume file or DICOM series folder) and describe its geometry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="CT volume file (.nrrd, .nii, .nii.gz, .mha, .mhd) or DICOM series folder")
    parser.add_argument("--series", metavar="UID", default=None, help="SeriesInstanceUID when the folder has several")
    parser.add_argument(
        "--allow-resample",
        action="store_true",
        help="resample a DICOM series with non-uniform slice spacing or missing slices instead of refusing it",
    )
    parser.add_argument(
        "--max-voxels", type=positive_int, default=None, help="memory budget in voxels (default 512*512*2048)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def positive_int(text: str) -> int:
    """argparse type: an integer > 0 (a usage error, exit status 2, otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of voxels, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of voxels, got {value}")
    return value


def describe(ct: CTVolume) -> dict[str, Any]:
    """A JSON-ready description of a CT volume (geometry in LPS, sizes in (i, j, k) order)."""
    from SmoothSegNetLib.plausibility import findings
    from SmoothSegNetLib.resample import orientation_code

    g = ct.geometry
    info: dict[str, Any] = {
        "source": ct.source,
        "size_ijk": list(g.size_ijk),
        "spacing_mm": [round(s, 6) for s in g.spacing_mm],
        "origin_lps_mm": [round(o, 6) for o in g.origin_lps_mm],
        "direction": [[round(x, 6) for x in row] for row in g.direction_array.T.tolist()],
        "orientation": orientation_code(g),
        "dtype": str(ct.array.dtype),
        "hu_min": float(np.min(ct.array)),
        "hu_max": float(np.max(ct.array)),
        "volume_ml": round(float(np.prod(g.size_ijk)) * g.voxel_volume_mm3 / 1000.0, 3),
        "warnings": list(ct.warnings),
        # what 'segment' would refuse without --skip-plausibility-check (empty: a plausible CT of a body)
        "plausibility_findings": findings(ct),
    }
    if ct.dicom is not None:
        info["dicom"] = {
            "study_instance_uid": ct.dicom.study_instance_uid,
            "series_instance_uid": ct.dicom.series_instance_uid,
            "frame_of_reference_uid": ct.dicom.frame_of_reference_uid,
            "slice_count": len(ct.dicom.slices),
            "series_description": str(ct.dicom.attributes.get("SeriesDescription", "")),
            "patient_id": str(ct.dicom.attributes.get("PatientID", "")),
        }
    return info


def _text(info: dict[str, Any]) -> str:
    def vec(values: list[float]) -> str:
        return "(" + ", ".join(f"{v:g}" for v in values) + ")"

    lines = [
        f"source        {info['source']}",
        f"size (i,j,k)  {info['size_ijk'][0]} x {info['size_ijk'][1]} x {info['size_ijk'][2]} ({info['dtype']})",
        f"spacing mm    {vec(info['spacing_mm'])}",
        f"origin LPS mm {vec(info['origin_lps_mm'])}",
        "direction     " + "  ".join(f"{axis}={vec(col)}" for axis, col in zip("ijk", info["direction"])),
        f"orientation   {info['orientation']}",
        f"HU range      {info['hu_min']:g} .. {info['hu_max']:g}",
    ]
    dicom = info.get("dicom")
    if dicom:
        lines += [
            f"study UID     {dicom['study_instance_uid']}",
            f"series UID    {dicom['series_instance_uid']} ({dicom['slice_count']} slices, "
            f"{dicom['series_description']!r})",
            f"frame of ref  {dicom['frame_of_reference_uid']}",
        ]
    lines += [f"warning       {w}" for w in info["warnings"]]
    found = info["plausibility_findings"]
    lines += [f"plausibility  {f}" for f in found] or ["plausibility  looks like a CT of a body"]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    # imported here so that 'smoothsegnet --help' and the other commands do not pay for pydicom/SimpleITK
    from SmoothSegNetLib.io import read_volume

    ct = read_volume(args.input, series_uid=args.series, max_voxels=args.max_voxels, allow_resample=args.allow_resample)
    info = describe(ct)
    sys.stdout.write(json.dumps(info) + "\n" if args.json else _text(info))
    return 0
