"""What the phantom benchmarks share: their grid and timing options, the phantom they time, and their first line.

Each benchmark segments one phantom (default 512x512x300 voxels of 0.75 x 0.75 x 1.0 mm, seed 11) and states
the load average of the (possibly shared) machine with its figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Sequence
from typing import Any


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with ``--size``, ``--spacing``, ``--seed``, ``--threads`` and ``--repeat``."""
    out = argparse.ArgumentParser(description=description)
    out.add_argument("--size", default="512,512,300", help="grid size i,j,k")
    out.add_argument("--spacing", default="0.75,0.75,1.0", help="voxel size mm")
    out.add_argument("--seed", type=int, default=11, help="phantom seed")
    out.add_argument("--threads", type=int, default=2, help="CPU threads for the networks")
    out.add_argument("--repeat", type=int, default=3, help="runs per setting (the median is given)")
    return out


def grid(args: argparse.Namespace) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The ``(size, spacing)`` the options ask for."""
    return tuple(int(v) for v in args.size.split(",")), tuple(float(v) for v in args.spacing.split(","))


def phantom(args: argparse.Namespace) -> Any:
    """The phantom of ``--seed`` on the grid of ``--size`` and ``--spacing``."""
    from SmoothSegNetLib.phantom import make_phantom

    size, spacing = grid(args)
    return make_phantom(args.seed, size, spacing)


def heading(args: argparse.Namespace, what: str) -> str:
    """The line above a benchmark's table: the phantom, the grid, the threads, ``what`` and the load average."""
    size, spacing = grid(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    shape = "x".join(str(n) for n in size)
    return (
        f"phantom seed {args.seed}, {shape} voxels of {spacing} mm, threads {args.threads}, {what}, "
        f"load average {load:.1f}"
    )


def stage_table(setting: str, rows: Sequence[tuple[str, Sequence[dict[str, float]], int]], ratio_of: str) -> list[str]:
    """The table of a benchmark that runs the pipeline with several settings: per setting (its name, the
    ``timings_s`` of each run, the candidates it lists), the median seconds of the liver stage, the tumor stage
    and the whole run, and the ratio of the median ``ratio_of`` (``tumor_s`` or ``total_s``) to the first
    setting's (the one without the option; "-" if the first setting is not named ``off``)."""
    label = "tumor stage" if ratio_of == "tumor_s" else "total"
    lines = [
        f"| {setting} | liver stage s | tumor stage s | total s | {label} / without | candidates |",
        "|---|---|---|---|---|---|",
    ]
    base = statistics.median(t[ratio_of] for t in rows[0][1]) if rows and rows[0][0] == "off" else None
    for name, times, listed in rows:
        liver, tumor, total = (statistics.median(t[key] for t in times) for key in ("liver_s", "tumor_s", "total_s"))
        ratio = f"{statistics.median(t[ratio_of] for t in times) / base:.2f}" if base else "–"
        lines.append(f"| {name} | {liver:.2f} | {tumor:.2f} | {total:.2f} | {ratio} | {listed} |")
    return lines
