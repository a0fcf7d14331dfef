"""``smoothsegnet export``: (re)make seg.dcm and sr.dcm of a finished, maybe hand-corrected, output folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.outputs import StagedOutputDir

NAME = "export"
HELP = (
    "(re)make seg.dcm and sr.dcm of an output folder from its segmentation.nrrd and the source DICOM series; "
    "the report files are measured again so that they agree with the SR; lesions changed by hand since "
    "lesions.nrrd are marked edited, unchanged ones keep their confidence"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outdir", metavar="OUTDIR", help="a folder written by 'segment' (segmentation.nrrd)")
    parser.add_argument("--dicom", required=True, metavar="SERIES_DIR", help="the source CT series folder")
    parser.add_argument("--series-uid", default=None, help="the series to use when SERIES_DIR holds several")
    parser.add_argument("--per-lesion-segments", action="store_true", help="one SEG segment per lesion")
    parser.add_argument("--no-sr", action="store_true", help="write seg.dcm only")
    parser.add_argument(
        "--manual-axes",
        metavar="FILE",
        default=None,
        help='RECIST lines drawn by hand, JSON {"<lesion id>": {"long": [[L,P,S],[L,P,S]], "short": [...]}} '
        "(LPS mm); without it, the manual lines of OUTDIR's report.json are kept while they lie on their lesion",
    )


def previous_report(outdir: Path) -> dict[str, Any] | None:
    """The report.json an earlier run wrote into ``outdir`` (``None`` when there is none)."""
    path = outdir / "report.json"
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a valid report.json ({exc}): remove it or run segment again") from exc
    if not isinstance(report, dict):
        raise InputError(f"{path} is not a valid report.json (not an object): remove it or run segment again")
    return report


def models_of(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    models = (report or {}).get("models", [])
    return [m for m in models if isinstance(m, dict) and "id" in m] if isinstance(models, list) else []


def run(args: argparse.Namespace) -> int:
    from SmoothSegNetLib.case_outputs import write_case_outputs
    from SmoothSegNetLib.io import read_volume
    from SmoothSegNetLib.io.writers import write_labelmap
    from SmoothSegNetLib.report import label_lesions, measure
    from SmoothSegNetLib.report.candidates import carry_candidates, thresholds_from_report
    from SmoothSegNetLib.report.edits import carry_edits
    from SmoothSegNetLib.report.inputs import read_labelmap, require_same_grid
    from SmoothSegNetLib.report.manual_axes import check_manual_axes, manual_axes_of_report, read_manual_axes
    from SmoothSegNetLib.report.measure import TUMOR_LABEL, check_labelmap

    outdir = Path(args.outdir)
    manual = read_manual_axes(args.manual_axes) if args.manual_axes else None
    seg_path = outdir / "segmentation.nrrd"
    if not seg_path.is_file():
        raise InputError(f"OUTDIR {outdir} holds no segmentation.nrrd: give a folder written by 'smoothsegnet segment'")
    labels, geometry = read_labelmap(seg_path, "segmentation.nrrd")
    ct = read_volume(args.dicom, series_uid=args.series_uid)
    if ct.dicom is None:
        raise InputError(f"--dicom {args.dicom} must be a DICOM series folder")
    require_same_grid(geometry, ct, "segmentation.nrrd")
    labels = check_labelmap(labels, ct.geometry, "segmentation.nrrd").astype(np.uint8)
    tumor = labels == TUMOR_LABEL
    lesions = None
    stored = None
    lesion_path = outdir / "lesions.nrrd"
    if lesion_path.is_file():
        array, lesion_geometry = read_labelmap(lesion_path, "lesions.nrrd")
        if lesion_geometry.same_grid(ct.geometry, atol=1e-3):
            stored = array.astype(np.uint16)
        # Keep the stored numbering only if it still covers exactly the tumor (no hand correction since).
        if stored is not None and np.array_equal(stored > 0, tumor):
            lesions = stored
    if lesions is None:
        lesions = label_lesions(tumor, ct.geometry)
    # Lesions changed by hand since the stored lesion map are marked edited; unchanged ones keep their
    # network confidence (and an earlier edit stays an edit).
    previous = previous_report(outdir)
    carried = carry_edits(previous, stored, lesions)
    if manual is not None:
        check_manual_axes(manual, lesions, ct.geometry)
    else:  # the lines drawn before: kept on their lesion, dropped with a warning when it changed under them
        manual = manual_axes_of_report(previous)
    # The floors the network run used, and what they dropped (minus candidates accepted by hand since).
    candidates = None
    candidate_path = outdir / "candidates.nrrd"
    if candidate_path.is_file():
        stored_candidates, candidate_geometry = read_labelmap(candidate_path, "candidates.nrrd")
        if candidate_geometry.same_grid(ct.geometry, atol=1e-3):
            candidates = carry_candidates(previous, stored_candidates.astype(np.uint16), tumor)
    report = measure(
        ct,
        labels,
        lesions,
        models=models_of(previous),
        confidence=carried.confidence,
        edited=carried.edited,
        warnings=carried.warnings,
        thresholds=thresholds_from_report(previous),
        candidates=candidates,
        manual_axes=manual,
    )
    with StagedOutputDir(outdir, protect=[Path(args.dicom), seg_path]) as stage:
        write_labelmap(stage.path("lesions.nrrd"), lesions, ct.geometry)
        if candidates is not None:
            write_labelmap(stage.path("candidates.nrrd"), candidates.instances, ct.geometry)
        write_case_outputs(
            stage,
            ct,
            labels,
            lesions,
            report,
            dicom_seg=True,
            dicom_sr=not args.no_sr,
            per_lesion_segments=args.per_lesion_segments,
        )
    written = "seg.dcm" if args.no_sr else "seg.dcm and sr.dcm"
    sys.stdout.write(f"wrote {written} ({report['tumor_burden']['count']} lesion(s)) into {outdir}\n")
    return 0
