"""Held-out evaluation of a liver/tumor model pair on synthetic phantoms, through the real pipeline.

Each seed becomes a phantom on a *realistic* CT grid drawn from the seed (in-plane 0.70–0.95 mm, slices
2–5 mm, a 320–400 mm field of view, oblique for a quarter of the seeds), is segmented by
:func:`SmoothSegNetLib.inference.segment` exactly as a user's CT would be, and is compared with the
phantom's exact labels by :func:`SmoothSegNetLib.evaluation.evaluate_case`.

Run: ``python -m SmoothSegNetLib.evaluation.phantoms --seeds 3000:3020 --markdown FILE --csv FILE``.
Seeds used for training must not be passed here (the demo configs train on 1000–1059 and validate on
2000–2003; seeds 2004–2063 tune inference and post-processing settings such as the minimum lesion volume;
3000+ are the held-out test).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from SmoothSegNetLib.evaluation.evaluate import CaseResult, evaluate_case
from SmoothSegNetLib.evaluation.summary import format_table, summary_rows
from SmoothSegNetLib.volume import Geometry

if TYPE_CHECKING:
    from SmoothSegNetLib.inference.options import SegmentationResult
    from SmoothSegNetLib.phantom.generator import Phantom

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldOutCase:
    """One evaluated phantom: its grid, the figures, and the pipeline's wall time."""

    seed: int
    size_ijk: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    oblique: bool
    result: CaseResult
    seconds: float
    review: Review = field(default_factory=lambda: Review(0, 0, 0, 0))


@dataclass(frozen=True)
class Review:
    """The review list of one case against the truth: of the ``missed`` reference lesions (touched by no
    accepted lesion), how many a candidate touches (``caught``); how many candidates there are and how many of
    them touch no reference lesion (``false``)."""

    missed: int
    caught: int
    candidates: int
    false: int


def review_figures(
    candidates: np.ndarray | None, truth_tumor: np.ndarray, geometry: Geometry, result: CaseResult
) -> Review:
    """:class:`Review` of a case's candidate map (uint16, candidate n = value n; ``None``: none listed)."""
    from SmoothSegNetLib.evaluation.lesions import candidate_review
    from SmoothSegNetLib.report import label_lesions

    missed = [r.id for r in result.lesions if not r.detected]
    if candidates is None or not candidates.any():
        return Review(len(missed), 0, 0, 0)
    # The reference lesions numbered as detect_lesions numbers them (its records' ids).
    truth_ids = label_lesions(np.asarray(truth_tumor, dtype=bool), geometry)
    caught, listed, false = candidate_review(candidates, truth_ids, missed)
    return Review(len(missed), len(caught), listed, false)


def heldout_grid(seed: int) -> tuple[tuple[int, int, int], tuple[float, float, float], bool]:
    """The realistic grid of a held-out seed: ``(size_ijk, spacing_mm, oblique)``."""
    rng = np.random.default_rng([seed, 99])
    in_plane = float(rng.uniform(0.70, 0.95))
    slice_mm = float(rng.choice([2.0, 2.5, 3.0, 5.0]))
    fov_xy = float(rng.uniform(320.0, 400.0))
    fov_z = float(rng.uniform(200.0, 300.0))
    n_xy = int(math.ceil(fov_xy / in_plane))
    size = (n_xy, n_xy, int(math.ceil(fov_z / slice_mm)))
    return size, (round(in_plane, 4), round(in_plane, 4), slice_mm), bool(rng.random() < 0.25)


def segment_heldout_phantom(
    seed: int, liver_model: str, tumor_model: str, threads: int | None
) -> tuple[Phantom, SegmentationResult, CaseResult, float]:
    """Make one phantom on its realistic grid (:func:`heldout_grid`), segment it by the real pipeline on the CPU
    and evaluate it: the phantom, the pipeline's result, the figures and the pipeline's wall time (s)."""
    from SmoothSegNetLib.inference import SegmentOptions, segment
    from SmoothSegNetLib.phantom import make_phantom

    size, spacing, oblique = heldout_grid(seed)
    phantom = make_phantom(seed, size, spacing, oblique)
    options = SegmentOptions(liver_model=liver_model, tumor_model=tumor_model, device="cpu", threads=threads)
    t0 = time.perf_counter()
    result = segment(phantom.ct, options)
    seconds = time.perf_counter() - t0
    figures = evaluate_case(f"phantom-{seed}", result.labelmap, phantom.labels, phantom.ct.geometry)
    return phantom, result, figures, seconds


def evaluate_seed(seed: int, liver_model: str, tumor_model: str, threads: int | None) -> HeldOutCase:
    """Make, segment and evaluate one held-out phantom."""
    size, spacing, oblique = heldout_grid(seed)
    phantom, result, figures, seconds = segment_heldout_phantom(seed, liver_model, tumor_model, threads)
    candidates = None if result.candidates is None else result.candidates.instances
    review = review_figures(candidates, phantom.labels == 2, phantom.ct.geometry, figures)
    return HeldOutCase(seed, size, spacing, oblique, figures, seconds, review)


def _cell(value: float, digits: int = 3) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def case_table(cases: Sequence[HeldOutCase]) -> str:
    """A markdown table with one row per phantom."""
    lines = [
        "| phantom | grid (i×j×k @ mm) | oblique | liver Dice | liver HD95 mm | tumor Dice "
        "| lesions ref / pred / found | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        r = c.result
        found = sum(x.detected for x in r.lesions)
        tumor = _cell(r.tumor.dice) if r.lesions else "no tumor"
        size = "×".join(str(n) for n in c.size_ijk)
        grid = f"{size} @ {c.spacing_mm[0]:.2f}×{c.spacing_mm[1]:.2f}×{c.spacing_mm[2]:.1f}"
        lines.append(
            f"| {c.seed} | {grid} | {'yes' if c.oblique else 'no'} | {_cell(r.liver.dice)} "
            f"| {_cell(r.liver.hd95_mm, 1)} "
            f"| {tumor} | {len(r.lesions)} / {r.detection.predicted_count} / {found} | {c.seconds:.1f} |"
        )
    return "\n".join(lines)


def write_csv(path: Path, cases: Sequence[HeldOutCase]) -> None:
    fields = [
        "seed",
        "size_ijk",
        "spacing_mm",
        "oblique",
        "liver_dice",
        "liver_hd95_mm",
        "liver_assd_mm",
        "tumor_dice",
        "tumor_hd95_mm",
        "lesions_reference",
        "lesions_predicted",
        "lesions_found",
        "largest_long_axis_mm",
        "seconds",
        "lesions_missed",
        "missed_in_candidates",
        "candidates",
        "candidates_on_no_lesion",
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        for c in cases:
            r = c.result
            writer.writerow([
                c.seed, "x".join(map(str, c.size_ijk)), "x".join(f"{s:g}" for s in c.spacing_mm), int(c.oblique),
                f"{r.liver.dice:.4f}", _cell(r.liver.hd95_mm, 2), _cell(r.liver.assd_mm, 2),
                f"{r.tumor.dice:.4f}" if r.lesions else "", _cell(r.tumor.hd95_mm, 2), len(r.lesions),
                r.detection.predicted_count, sum(x.detected for x in r.lesions), f"{r.largest_long_axis_mm:.1f}",
                f"{c.seconds:.1f}", c.review.missed, c.review.caught, c.review.candidates, c.review.false,
            ])  # fmt: skip


def markdown_report(cases: Sequence[HeldOutCase], liver_model: str, tumor_model: str, command: str) -> str:
    """The evaluation document (summary table, per-case table, how it was made)."""
    results = [c.result for c in cases]
    seeds = [c.seed for c in cases]
    return "\n".join(
        [
            "# Demo weights: evaluation on held-out synthetic phantoms",
            "",
            "DEMO weights trained on synthetic phantoms — not for clinical use. These figures say how well the",
            "networks learned the phantom generator; they say nothing about patient CT.",
            "",
            f"- Phantoms: seeds {min(seeds)}–{max(seeds)} ({len(seeds)} cases), never used in training (1000–1059),",
            "  validation (2000–2003) or tuning of inference and post-processing (2004–2063); realistic grids",
            "  drawn per seed (in-plane 0.70–0.95 mm, slices 2–5 mm, a quarter oblique).",
            f"- Models: `{liver_model}` and `{tumor_model}`, run by `SmoothSegNetLib.inference.segment` on CPU",
            "  (the real pipeline).",
            "- Reference: the phantoms' exact labels; liver = liver + tumor; portal vein and aorta are background.",
            "- Tumor Dice is averaged over cases that have a tumor; lesion detection matches lesions by overlap.",
            f"- Command: `{command}`",
            "",
            "## Summary",
            "",
            format_table(summary_rows(results), markdown=True),
            "",
            "## Review list (candidates)",
            "",
            review_text(cases),
            "",
            "## Per case",
            "",
            case_table(cases),
            "",
        ]
    )


def review_text(cases: Sequence[HeldOutCase]) -> str:
    """One sentence: how many of the lesions the accepted lesions miss the candidates catch, at what cost."""
    from SmoothSegNetLib.evaluation.lesions import proportion_text

    missed = sum(c.review.missed for c in cases)
    caught = sum(c.review.caught for c in cases)
    listed = sum(c.review.candidates for c in cases)
    false = sum(c.review.false for c in cases)
    return (
        f"Reference lesions that no accepted lesion touches: {missed}; a candidate touches "
        f"{proportion_text(caught, missed)} of them. Candidates listed: {listed} in {len(cases)} cases "
        f"({listed / max(len(cases), 1):.1f} per case), {false} of them on no reference lesion."
    )


def record_in_cards(cases: Sequence[HeldOutCase], card_paths: Sequence[Path], document: str) -> None:
    """Add the held-out figures to the ``training`` field of model card files (the weights are unchanged)."""
    import json

    from SmoothSegNetLib.evaluation.summary import summary_dict
    from SmoothSegNetLib.models.card import write_card_file

    summary = summary_dict([c.result for c in cases])
    summary["seeds"] = f"{min(c.seed for c in cases)}..{max(c.seed for c in cases)}"
    summary["pipeline"] = "SmoothSegNetLib.inference.segment on realistic grids, CPU"
    summary["report"] = document
    summary["review_list"] = {
        "missed_lesions": sum(c.review.missed for c in cases),
        "missed_in_candidates": sum(c.review.caught for c in cases),
        "candidates": sum(c.review.candidates for c in cases),
        "candidates_on_no_lesion": sum(c.review.false for c in cases),
    }
    for path in card_paths:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
        card["training"]["held_out_evaluation"] = summary
        write_card_file(path, card)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="3000:3020", help="half-open range A:B of held-out phantom seeds")
    parser.add_argument("--liver-model", default="smoothsegnet-demo-liver", help="liver card id or file")
    parser.add_argument("--tumor-model", default="smoothsegnet-demo-tumor", help="tumor card id or file")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (per process)")
    parser.add_argument("--jobs", type=int, default=1, help="phantoms evaluated in parallel processes")
    parser.add_argument("--markdown", type=Path, help="write the evaluation document here")
    parser.add_argument("--csv", type=Path, help="write the per-case figures here")
    parser.add_argument(
        "--record-in-cards", action="store_true", help="add the figures to the two card files given as models"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    first, _, end = args.seeds.partition(":")
    seeds = list(range(int(first), int(end)))
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(evaluate_seed, s, args.liver_model, args.tumor_model, args.threads) for s in seeds]
            cases = [f.result() for f in futures]
    else:
        cases = [evaluate_seed(s, args.liver_model, args.tumor_model, args.threads) for s in seeds]
    for case in cases:
        log.info(
            "phantom %d: liver Dice %.4f, tumor Dice %.4f, %.1f s",
            case.seed,
            case.result.liver.dice,
            case.result.tumor.dice,
            case.seconds,
        )
    command = "python -m SmoothSegNetLib.evaluation.phantoms " + " ".join(argv if argv is not None else sys.argv[1:])
    document = markdown_report(cases, args.liver_model, args.tumor_model, command)
    if args.markdown:
        args.markdown.write_text(document, encoding="utf-8")
    if args.csv:
        write_csv(args.csv, cases)
    if args.record_in_cards:
        name = args.markdown.name if args.markdown else "not written"
        record_in_cards(cases, [Path(args.liver_model), Path(args.tumor_model)], name)
    sys.stdout.write(format_table(summary_rows([c.result for c in cases])) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
