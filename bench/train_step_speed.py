"""Seconds per training step of a config, with activations in the default layout and in channels-last.

Run by hand (the machine may be shared: note the load when quoting figures)::

    .venv/bin/python bench/train_step_speed.py [--config Resources/Training/demo-tumor-balanced-scratch.json]
        [--threads 1,2] [--steps 8]

A few of the config's training phantoms are prepared, then for each thread count and each layout (config
``channels_last`` false / true) a fresh session of the real trainer (``training.trainer._Session``: batch, augment,
forward, loss, backward, AdamW) runs one warm-up step and ``--steps`` timed steps. Both layouts start from the same
weights and draw the same patches, so the table also gives how far their losses part (the same arithmetic in
another order: float32 rounding only).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "Resources/Training/demo-tumor-balanced-scratch.json"))
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per row (median)")
    parser.add_argument("--cases", type=int, default=4, help="training phantoms to prepare")
    args = parser.parse_args()

    import torch

    from SmoothSegNetLib.models import card_from_dict
    from SmoothSegNetLib.training import distributed, trainer
    from SmoothSegNetLib.training.config import load_config
    from SmoothSegNetLib.training.phantom_data import phantom_cases
    from SmoothSegNetLib.training.run import card_template_for

    config = load_config(args.config)
    template = card_template_for(config)
    card = card_from_dict(copy.deepcopy(template))
    first = config.data.train_seeds[0]
    cases, _ = phantom_cases(list(range(first, first + args.cases)), card, config.data)
    patch = "x".join(str(n) for n in config.patch_size_ijk)
    print(
        f"{Path(args.config).name}: batch {config.batch_size} of {patch} voxels, {args.cases} phantoms, "
        f"median of {args.steps} steps"
    )
    print()
    print("| threads | layout | s per step | speed-up | loss of the last step |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for threads in (int(n) for n in args.threads.split(",")):
            torch.set_num_threads(threads)
            base = None
            for channels_last in (False, True):
                run = dataclasses.replace(config, channels_last=channels_last)
                session = trainer._Session(run, template, Path(folder), torch.device("cpu"), distributed.DistInfo())
                session.step(cases, config.learning_rate)
                times, loss = [], 0.0
                for _ in range(args.steps):
                    start = time.perf_counter()
                    loss = session.step(cases, config.learning_rate)
                    times.append(time.perf_counter() - start)
                seconds = statistics.median(times)
                base = base or seconds
                layout = "channels-last" if channels_last else "default"
                print(f"| {threads} | {layout} | {seconds:.2f} | {base / seconds:.2f} | {loss:.6f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
