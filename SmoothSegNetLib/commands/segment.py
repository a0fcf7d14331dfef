"""``smoothsegnet segment INPUT... -o OUTDIR``: liver and tumor segmentation of one CT or a cohort."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.inference import DEFAULT_LIVER_MODEL, DEFAULT_TUMOR_MODEL, SegmentOptions
from SmoothSegNetLib.inference.cases import (
    Case,
    CaseOutputs,
    cases_from_csv,
    cases_from_inputs,
    is_complete,
    rank_from_env,
    run_case,
    shard,
)
from SmoothSegNetLib.outputs import check_output_dir
from SmoothSegNetLib.progress import JsonlProgress, ProgressCallback, TextProgress, no_progress

NAME = "segment"
HELP = "segment the liver and liver tumors of a CT (file or DICOM series folder), or of a list of CTs"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="CT file (NRRD/NIfTI/MHA) or DICOM series folder")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (one per case)")
    parser.add_argument("--list", metavar="CSV", help="cohort: CSV with columns input, output")
    add_model_arguments(parser)
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID when a folder holds several CT series")
    parser.add_argument("--liver-model", default=DEFAULT_LIVER_MODEL, metavar="ID|CARD", help="liver model card")
    parser.add_argument("--tumor-model", default=DEFAULT_TUMOR_MODEL, metavar="ID|CARD", help="tumor model card")
    parser.add_argument("--liver-only", action="store_true", help="skip the tumor stage")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``segment`` and ``demo``."""
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=("auto", "torch", "onnx", "openvino", "onnxruntime"),
        help="auto (torch on a GPU, the ONNX graphs on the CPU) | torch | onnx (fastest installed CPU engine) | "
        "openvino | onnxruntime (default auto; 'smoothsegnet info' says what runs)",
    )
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for the networks")
    parser.add_argument("--min-lesion-ml", type=float, metavar="ML", help="drop lesions smaller than this")
    parser.add_argument(
        "--min-lesion-confidence",
        type=float,
        metavar="P",
        help="drop lesions whose mean tumor probability is below P (0..1; default: the tumor card's)",
    )
    parser.add_argument(
        "--min-lesion-hu",
        type=float,
        metavar="HU",
        help="list lesions whose median CT value is below HU as candidates (fluid: most likely simple cysts; "
        "default: the tumor card's)",
    )
    parser.add_argument(
        "--min-lesion-score",
        type=float,
        metavar="S",
        help="list lesions that the tumor card's lesion classifier scores below S as candidates (0..1, 0 = keep "
        "all; default: the tumor card's)",
    )
    parser.add_argument(
        "--candidate-probability",
        type=float,
        metavar="P",
        help="also list regions whose tumor probability reaches P but not 0.5 as candidates for review "
        "(0..0.5, 0 = off; default: the tumor card's)",
    )
    parser.add_argument(
        "--candidate-fine-spacing",
        type=float,
        metavar="MM",
        help="also run the tumor network on an isotropic grid of MM millimetres (finer than the card's; small "
        "lesions span more voxels there) and list what it finds beyond the lesions as candidates for review "
        "(0.5..10, 0 = off; default: the tumor card's)",
    )
    parser.add_argument(
        "--candidate-scan",
        type=int,
        metavar="N",
        help="also scan the liver's CT for lesions the tumor network missed (blob detector and the add-lesion "
        "search, scored by a model fitted on tuning phantoms) and list its N best findings as candidates for "
        "review (0..20, 0 = off; default: the tumor card's)",
    )
    parser.add_argument(
        "--refine", action=argparse.BooleanOptionalAction, default=None, help="Chan-Vese tumor refinement"
    )
    parser.add_argument(
        "--refine-grid",
        choices=("isotropic", "input"),
        help="where Chan-Vese runs: isotropic (slice-thickness independent) or input (the paper's; default: card)",
    )
    parser.add_argument("--cpu-bf16", action="store_true", help="bfloat16 on CPU (faster on AMX CPUs, not exact)")
    parser.add_argument("--probability-map", action="store_true", help="also write probability_*.nrrd")
    parser.add_argument(
        "--progress",
        choices=("text", "jsonl", "none"),
        default=None,
        help="progress output (default: text on a terminal, none otherwise)",
    )
    parser.add_argument("--dicom-seg", action="store_true", help="write seg.dcm (DICOM series input only)")
    parser.add_argument("--dicom-sr", action="store_true", help="write sr.dcm, TID 1500 (DICOM series input only)")
    parser.add_argument("--per-lesion-segments", action="store_true", help="one DICOM-SEG segment per lesion")
    parser.add_argument("--overwrite", action="store_true", help="redo cases that are already complete")
    parser.add_argument(
        "--skip-plausibility-check",
        action="store_true",
        help="segment a CT that fails the plausibility check (field of view, voxel size, HU distribution, body "
        "present; docs/input-checks.md) when it is unusual but real; the report's warnings say so",
    )


def make_progress(kind: str | None) -> ProgressCallback:
    if kind is None:
        kind = "text" if sys.stderr.isatty() else "none"
    if kind == "jsonl":
        return JsonlProgress(sys.stdout)
    if kind == "text":
        return TextProgress(sys.stderr)
    return no_progress


def summary_line(outdir: Path) -> str:
    """One line on a finished case, with the numbers of its report.json (read back: the same numbers).

    ``OUTDIR: liver 1431.066 ml, 2 lesion(s), tumor 111.818 ml, 2 warning(s)``
    """
    report = json.loads((outdir / "report.json").read_text(encoding="utf-8"))
    burden = report["tumor_burden"]
    return (
        f"{outdir}: liver {report['liver']['volume_ml']} ml, {burden['count']} lesion(s), "
        f"tumor {burden['total_volume_ml']} ml, {len(report['warnings'])} warning(s)"
    )


def _device(name: str) -> str:
    # Under torchrun with several GPUs, each rank takes the GPU of its LOCAL_RANK.
    local = os.environ.get("LOCAL_RANK")
    if name == "cuda" and local is not None and local.isdigit():
        return f"cuda:{local}"
    return name


def options_from_args(args: argparse.Namespace, liver_model: str, tumor_model: str, liver_only: bool) -> SegmentOptions:
    return SegmentOptions(
        liver_model=liver_model,
        tumor_model=tumor_model,
        liver_only=liver_only,
        device=_device(args.device),
        runtime=args.runtime,
        threads=args.threads,
        min_lesion_ml=args.min_lesion_ml,
        min_lesion_confidence=args.min_lesion_confidence,
        min_lesion_hu=args.min_lesion_hu,
        min_lesion_score=args.min_lesion_score,
        candidate_probability=args.candidate_probability,
        candidate_fine_spacing_mm=args.candidate_fine_spacing,
        candidate_scan=args.candidate_scan,
        refine=args.refine,
        refine_grid=args.refine_grid,
        probability_map=args.probability_map,
        cpu_bf16=args.cpu_bf16,
    )


def outputs_from_args(args: argparse.Namespace) -> CaseOutputs:
    return CaseOutputs(
        dicom_seg=args.dicom_seg,
        dicom_sr=args.dicom_sr,
        per_lesion_segments=args.per_lesion_segments,
        probability_map=args.probability_map,
    )


def run_cases(cases: list[Case], args: argparse.Namespace, options: SegmentOptions) -> int:
    """Run this rank's share of ``cases`` (skipping complete ones); returns the exit status."""
    from SmoothSegNetLib.cli import CANCEL

    rank, world = rank_from_env()
    mine = shard(cases, rank, world)
    todo = [c for c in mine if args.overwrite or not is_complete(c.outdir)]
    for skipped in (c for c in mine if c not in todo):
        log.info("skipping %s: already complete", skipped.outdir)
    if not todo:
        sys.stderr.write(f"all {len(mine)} case(s) of rank {rank} are already complete\n")
        return 0
    for case in todo:  # before the models load and anything is read: a bad -o must not cost a whole run
        check_output_dir(case.outdir, inputs=[case.input])
    from SmoothSegNetLib.inference.pipeline import Segmenter

    segmenter = Segmenter(options)
    progress = make_progress(args.progress)
    outputs = outputs_from_args(args)
    failures = 0
    for n, case in enumerate(todo, start=1):
        if isinstance(progress, TextProgress):
            progress.start_case(f"case {n}/{len(todo)}" if len(todo) > 1 else "")
        try:
            run_case(
                case,
                segmenter,
                outputs,
                series_uid=args.series,
                progress=progress,
                cancel=CANCEL,
                skip_plausibility_check=args.skip_plausibility_check,
            )
        except InputError as exc:
            if len(todo) == 1:
                raise
            failures += 1
            sys.stderr.write(f"error: {case.input}: {' '.join(str(exc).split())}\n")
            continue
        finally:
            if isinstance(progress, TextProgress):
                progress.finish()
        if args.progress != "jsonl":  # jsonl: stdout carries only the JSON progress records
            sys.stdout.write(summary_line(case.outdir) + "\n")
            sys.stdout.flush()
    if failures:
        sys.stderr.write(f"error: {failures} of {len(todo)} case(s) failed; the others are complete\n")
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list and args.inputs:
        raise InputError("give either INPUT paths or --list CSV, not both")
    if not args.list and not args.inputs:
        raise InputError("give an INPUT (CT file or DICOM folder) or --list CSV")
    outdir = Path(args.output)
    cases = cases_from_csv(Path(args.list), outdir) if args.list else cases_from_inputs(args.inputs, outdir)
    options = options_from_args(args, args.liver_model, args.tumor_model, args.liver_only)
    return run_cases(cases, args, options)
