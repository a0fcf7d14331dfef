"""``smoothsegnet train``: train one stage (liver or tumor) from a configuration file."""

from __future__ import annotations

import argparse
import sys

NAME = "train"
HELP = "train a liver or tumor network from a JSON configuration (weights + filled model card)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training configuration JSON (see Resources/Training/)")
    parser.add_argument("-o", "--output", required=True, help="run folder: checkpoints, metrics.csv, weights, card")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in the output folder from its checkpoint"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument("--progress", choices=("text", "jsonl", "none"), default="text", help="progress output")
    parser.add_argument("--iterations", type=int, default=None, help="override the config's iterations")
    parser.add_argument("--max-minutes", type=float, default=None, help="override the config's wall-time budget")
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="CARD",
        help="start from this model card's verified weights (same stage and architecture): a fine-tune",
    )
    parser.add_argument(
        "--data-workers",
        type=int,
        default=1,
        metavar="N",
        help="processes that render the training phantoms (default 1; the same cases whatever N)",
    )
    parser.add_argument(
        "--finish-within",
        type=float,
        default=None,
        metavar="MIN",
        help="write the card within MIN minutes of this command's start, rendering included: the time budget is "
        "cut to fit once the data is built (for a sitting with a hard end, e.g. a lent GPU)",
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from SmoothSegNetLib.cli import CANCEL
    from SmoothSegNetLib.progress import JsonlProgress, TextProgress, no_progress
    from SmoothSegNetLib.training.config import ConfigError, load_config
    from SmoothSegNetLib.training.run import run_training

    config = load_config(args.config)
    if args.iterations is not None:
        if args.iterations < 1:
            raise ConfigError(f"--iterations must be an integer >= 1, got {args.iterations}")
        config = dataclasses.replace(config, iterations=args.iterations)
    if args.max_minutes is not None:
        if not args.max_minutes >= 0:
            raise ConfigError(f"--max-minutes must be >= 0 (0 = no time budget), got {args.max_minutes}")
        config = dataclasses.replace(config, max_minutes=args.max_minutes)
    if args.init_from is not None:
        from pathlib import Path

        config = dataclasses.replace(config, init_from=str(Path(args.init_from).resolve()))
    if args.data_workers < 1:
        raise ConfigError(f"--data-workers must be an integer >= 1, got {args.data_workers}")
    finish_by = None
    if args.finish_within is not None:
        if not args.finish_within > 0:
            raise ConfigError(f"--finish-within must be a positive number of minutes, got {args.finish_within}")
        finish_by = time.monotonic() + 60.0 * args.finish_within
    progress = {"text": TextProgress, "jsonl": JsonlProgress}.get(args.progress, lambda: no_progress)()
    result = run_training(
        config,
        args.output,
        resume=args.resume,
        device=args.device,
        progress=progress,
        cancel=CANCEL,
        data_workers=args.data_workers,
        finish_by=finish_by,
    )
    sys.stdout.write(
        f"trained {config.stage} stage: best validation Dice {result.best_val_dice:.4f} at iteration "
        f"{result.best_iteration} ({result.iterations_run} iterations, {result.elapsed_s / 60:.1f} min)\n"
        f"weights: {result.weights_path}\ncard:    {result.card_path}\n"
        f"processes: {len(result.rank_checksums)}, parameter checksum per process: "
        f"{' '.join(f'{c:.10g}' for c in result.rank_checksums)}\n"
    )
    return 0
