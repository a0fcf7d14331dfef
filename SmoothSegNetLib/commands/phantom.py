"""``smoothsegnet phantom -o DIR --seed N``: write a synthetic abdominal CT, its labels and clinical record."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.outputs import StagedOutputDir
from SmoothSegNetLib.phantom import Phase, make_phantom
from SmoothSegNetLib.phantom.generator import DEFAULT_SIZE_IJK, DEFAULT_SPACING_MM

NAME = "phantom"
HELP = "write a synthetic contrast-enhanced abdominal CT phantom (ct.nrrd, labels.nrrd, clinical.json)"

log = logging.getLogger(__name__)


def _triple(text: str, option: str, convert: Callable[[str], Any], example: str) -> tuple[Any, Any, Any]:
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 3:
            raise ValueError(text)
        a, b, c = (convert(p) for p in parts)
    except ValueError as exc:
        raise InputError(
            f"{option} must be three comma-separated numbers X,Y,Z, got {text!r}: e.g. {option} {example}"
        ) from exc
    return a, b, c


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="integer >= 0; the same seed gives the same phantom (with --followup-of: the follow-up's own seed, "
        "default 1)",
    )
    parser.add_argument(
        "--followup-of",
        type=int,
        default=None,
        metavar="SEED",
        help="write a follow-up visit of the phantom of this seed (moved, breathing, lesions changed after TACE; "
        "the truth in clinical.json ground_truth.followup); give the baseline's --size, --spacing and --phase",
    )
    parser.add_argument(
        "--size",
        default=",".join(str(n) for n in DEFAULT_SIZE_IJK),
        metavar="X,Y,Z",
        help="grid size in voxels: columns,rows,slices (default %(default)s)",
    )
    parser.add_argument(
        "--spacing",
        default=",".join(f"{s:g}" for s in DEFAULT_SPACING_MM),
        metavar="X,Y,Z",
        help="voxel size in mm along columns,rows,slices (default %(default)s)",
    )
    parser.add_argument("--oblique", action="store_true", help="tilt the grid (an oblique direction matrix)")
    parser.add_argument(
        "--phase", choices=[p.value for p in Phase], default=None, help="contrast phase (default: drawn)"
    )
    parser.add_argument("--dicom", action="store_true", help="also write the CT as a DICOM series in DIR/dicom/")
    parser.add_argument(
        "--preview", action="store_true", help="also write DIR/preview.png (axial and coronal slices, label contours)"
    )


def run(args: argparse.Namespace) -> int:
    size = _triple(args.size, "--size", int, "128,128,96")
    spacing = _triple(args.spacing, "--spacing", float, "1.5,1.5,3")
    if args.followup_of is not None:
        if args.oblique:
            raise InputError("--oblique cannot be combined with --followup-of: drop one of them")
        from SmoothSegNetLib.phantom.followup import make_followup_phantom

        visit_seed = 1 if args.seed is None else args.seed
        phantom = make_followup_phantom(args.followup_of, visit_seed, size, spacing, phase=args.phase)
    elif args.seed is None:
        raise InputError("--seed is required (or --followup-of SEED for a follow-up visit): e.g. --seed 1")
    else:
        phantom = make_phantom(args.seed, size, spacing, args.oblique, phase=args.phase)
    seed = args.seed if args.followup_of is None else args.followup_of
    from SmoothSegNetLib.io.writers import write_labelmap, write_volume

    with StagedOutputDir(args.output) as stage:
        write_volume(stage.path("ct.nrrd"), phantom.ct)
        write_labelmap(stage.path("labels.nrrd"), phantom.labels, phantom.ct.geometry)
        with stage.path("clinical.json").open("w", encoding="utf-8") as handle:
            json.dump(phantom.clinical, handle, indent=2)
            handle.write("\n")
        if args.preview:
            from SmoothSegNetLib.phantom.preview import save_preview

            save_preview(phantom, stage.path("preview.png"))
        if args.dicom:
            from SmoothSegNetLib.io import write_ct_series

            variables = phantom.clinical["variables"]
            write_ct_series(
                phantom.ct,
                stage.path("dicom"),
                series_description=f"SmoothSegNet phantom seed {seed} {phantom.info['phase']}",
                patient_id=phantom.clinical["TCIA_ID"],
                patient_name=f"Phantom^{seed}",
                attributes={"PatientSex": variables["Sex"], "PatientAge": f"{int(variables['age']):03d}Y"},
            )
    gt = phantom.clinical["ground_truth"]
    sys.stdout.write(
        f"wrote {stage.outdir}: {' x '.join(str(n) for n in size)} voxels, {phantom.info['phase']} phase, "
        f"{gt['lesion_count']} lesion(s), TLVR {gt['tlvr']:.4f}\n"
    )
    return 0
