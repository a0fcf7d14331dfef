"""``smoothsegnet report``: measure a labelmap (1 liver, 2 tumor) on its CT, e.g. one corrected by hand."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.outputs import StagedOutputDir, check_output_dir

if TYPE_CHECKING:
    from SmoothSegNetLib.report.edits import CarriedEdits
    from SmoothSegNetLib.volume import CTVolume

NAME = "report"
HELP = "measure a labelmap (1 liver, 2 tumor) on its CT: report.json, report.csv, overview.png, lesions.nrrd"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labelmap", metavar="LABELMAP", help="labelmap file (.nrrd, .nii.gz, .mha, .seg.nrrd)")
    parser.add_argument("--image", required=True, metavar="CT", help="the CT: a volume file or a DICOM series folder")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    parser.add_argument(
        "--min-lesion-ml",
        type=float,
        default=None,
        help="tumor components below this (ml) are listed as candidates, not lesions (default 0)",
    )
    parser.add_argument(
        "--split-touching",
        action="store_true",
        help="split touching lesions with a distance-transform watershed (off by default; may split lobulated ones)",
    )
    parser.add_argument(
        "--ignore-labels",
        default="",
        metavar="L1,L2",
        help="label values to treat as background (e.g. 3,4: the vessels of a phantom's labels.nrrd)",
    )
    parser.add_argument("--dicom-seg", action="store_true", help="also write seg.dcm (needs a DICOM --image)")
    parser.add_argument("--dicom-sr", action="store_true", help="also write sr.dcm and seg.dcm (needs a DICOM --image)")
    parser.add_argument("--per-lesion-segments", action="store_true", help="one DICOM-SEG segment per lesion")
    parser.add_argument(
        "--manual-axes",
        metavar="FILE",
        default=None,
        help='RECIST lines drawn by hand, JSON {"<lesion id>": {"long": [[L,P,S],[L,P,S]], "short": [...]}} '
        "(LPS mm): their lengths become the lesions' long/short axes, marked manual in every output",
    )
    parser.add_argument(
        "--since",
        metavar="DIR",
        default=None,
        help="an earlier output folder of this CT (report.json, lesions.nrrd), e.g. of 'segment': its models are "
        "named, lesions changed since are marked edited by hand, unchanged ones keep their confidence",
    )


def _label_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"--ignore-labels must be integers separated by commas (e.g. 3,4), got {text!r}") from exc
    if any(v in (0, 1, 2) for v in values):
        raise InputError(f"--ignore-labels must not hold 0, 1 or 2 (background, liver, tumor), got {text!r}")
    return values


def _since(folder: str | None, ct: CTVolume, lesions: np.ndarray) -> tuple[CarriedEdits, list[dict[str, Any]]]:
    """What ``--since DIR`` carries: the edits against its lesions.nrrd, and its models."""
    from SmoothSegNetLib.commands.export import models_of, previous_report
    from SmoothSegNetLib.report.edits import CarriedEdits, carry_edits
    from SmoothSegNetLib.report.inputs import read_labelmap

    if folder is None:
        return CarriedEdits(), []
    path = Path(folder)
    previous = previous_report(path)
    if previous is None or not (path / "lesions.nrrd").is_file():
        raise InputError(f"--since {folder} must be an output folder holding report.json and lesions.nrrd")
    stored, geometry = read_labelmap(path / "lesions.nrrd", "lesions.nrrd")
    if not geometry.same_grid(ct.geometry, atol=1e-3):
        raise InputError(
            f"--since {folder}: its lesions.nrrd is not on the grid of --image; give the folder of this CT"
        )
    return carry_edits(previous, stored.astype(np.uint16), lesions), models_of(previous)


def run(args: argparse.Namespace) -> int:
    from SmoothSegNetLib.case_outputs import write_case_outputs
    from SmoothSegNetLib.io import read_volume
    from SmoothSegNetLib.io.writers import write_labelmap
    from SmoothSegNetLib.report import ReportOptions, label_lesions, measure
    from SmoothSegNetLib.report.candidates import LesionThresholds, ThresholdSource, small_components
    from SmoothSegNetLib.report.inputs import labelmap_warnings, read_labelmap
    from SmoothSegNetLib.report.manual_axes import check_manual_axes, read_manual_axes
    from SmoothSegNetLib.report.measure import TUMOR_LABEL, check_labelmap

    min_ml = 0.0 if args.min_lesion_ml is None else float(args.min_lesion_ml)
    if not (np.isfinite(min_ml) and min_ml >= 0):
        raise InputError(f"--min-lesion-ml must be a number >= 0 (ml), got {args.min_lesion_ml}")
    ignore = _label_list(args.ignore_labels)
    manual = read_manual_axes(args.manual_axes) if args.manual_axes else {}
    check_output_dir(args.output, inputs=[args.labelmap, args.image])
    # The CT first (under the voxel budget), then the labelmap's header: its size against the budget and its
    # grid against the CT's before any of its voxels is read.
    ct = read_volume(args.image)
    labels, _geometry = read_labelmap(args.labelmap, reference=ct.geometry)
    if ignore:
        labels = np.where(np.isin(labels, ignore), 0, labels)
    others = sorted(set(np.unique(labels).tolist()) - {0, 1, 2})
    if others:
        raise InputError(
            f"LABELMAP {args.labelmap} has label values {others[:5]}: expected 0 background, 1 liver, 2 tumor; "
            f"relabel it, or treat them as background with --ignore-labels {','.join(map(str, others[:5]))}"
        )
    labels = check_labelmap(labels, ct.geometry, "LABELMAP").astype("uint8")
    options = ReportOptions(min_volume_ml=min_ml, split_touching=args.split_touching)
    tumor = labels == TUMOR_LABEL
    lesions = label_lesions(tumor, ct.geometry, options.min_volume_ml, split=options.split_touching)
    source = ThresholdSource.DEFAULT if args.min_lesion_ml is None else ThresholdSource.CLI
    thresholds = LesionThresholds(min_lesion_ml=min_ml, min_lesion_ml_source=source.value)
    candidates = small_components(tumor, lesions)
    warnings = labelmap_warnings(labels)
    for warning in warnings:
        sys.stderr.write(f"warning: {warning}\n")
    check_manual_axes(manual, lesions, ct.geometry)
    carried, models = _since(args.since, ct, lesions)
    report = measure(
        ct,
        labels,
        lesions,
        options=options,
        models=models,
        confidence=carried.confidence,
        edited=carried.edited,
        warnings=[*warnings, *carried.warnings],
        thresholds=thresholds,
        candidates=candidates,
        manual_axes=manual,
    )
    protect = [Path(args.labelmap), Path(args.image)]
    with StagedOutputDir(args.output, protect=protect) as stage:
        write_labelmap(stage.path("lesions.nrrd"), lesions, ct.geometry)
        write_case_outputs(
            stage,
            ct,
            labels,
            lesions,
            report,
            dicom_seg=args.dicom_seg,
            dicom_sr=args.dicom_sr,
            per_lesion_segments=args.per_lesion_segments,
        )
    burden = report["tumor_burden"]
    sys.stdout.write(
        f"{burden['count']} lesion(s), tumor {burden['total_volume_ml']:.2f} ml, "
        f"liver {report['liver']['volume_ml']:.1f} ml -> {args.output}\n"
    )
    return 0
