"""``smoothsegnet evaluate``: compare predicted labelmaps with reference labelmaps, case by case."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "evaluate"
HELP = "per-case liver/tumor Dice, IoU, HD95, ASSD and lesion detection by size group (CSV, table, PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, help="folder of predictions: <case>.nrrd or <case>/segmentation.nrrd")
    parser.add_argument("--truth", required=True, help="folder of reference labelmaps <case>.nrrd (1 liver, 2 tumor)")
    parser.add_argument(
        "-o", "--output", help="folder for cases.csv, lesions.csv, summary.json, summary.md, evaluation.png"
    )
    parser.add_argument("--progress", choices=("text", "jsonl", "none"), default="none", help="progress output")


def run(args: argparse.Namespace) -> int:
    from SmoothSegNetLib.cli import CANCEL
    from SmoothSegNetLib.evaluation.evaluate import evaluate_folders
    from SmoothSegNetLib.evaluation.summary import (
        CASE_FIELDS,
        LESION_FIELDS,
        case_rows,
        format_table,
        lesion_rows,
        plot_results,
        summary_dict,
        summary_rows,
        write_csv,
    )
    from SmoothSegNetLib.outputs import StagedOutputDir
    from SmoothSegNetLib.progress import JsonlProgress, TextProgress, no_progress

    progress = {"text": TextProgress, "jsonl": JsonlProgress}.get(args.progress, lambda: no_progress)()
    results = evaluate_folders(args.pred, args.truth, progress=progress, cancel=CANCEL)
    rows = summary_rows(results)
    if args.output:
        with StagedOutputDir(args.output, protect=[args.pred, args.truth]) as stage:
            write_csv(stage.path("cases.csv"), CASE_FIELDS, case_rows(results))
            write_csv(stage.path("lesions.csv"), LESION_FIELDS, lesion_rows(results))
            stage.path("summary.json").write_text(json.dumps(summary_dict(results), indent=2) + "\n", encoding="utf-8")
            stage.path("summary.md").write_text(format_table(rows, markdown=True) + "\n", encoding="utf-8")
            plot_results(results, stage.path("evaluation.png"))
    sys.stdout.write(format_table(rows) + "\n")
    return 0
