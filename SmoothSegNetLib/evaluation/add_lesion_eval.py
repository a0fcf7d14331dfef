"""Evaluation of ``add-lesion``: one click at the centre of every lesion the bundled models missed.

Reads the cache of :mod:`SmoothSegNetLib.evaluation.missed_lesions` (the pipeline's segmentation of each phantom
and its missed lesions >= 10 mm), makes each phantom again, clicks at each missed lesion's centre with
:class:`SmoothSegNetLib.correction.add_lesion.PointSegmenter`, and scores the added lesion by Dice against the
lesion's true mask (a refused click scores 0). It also clicks once per phantom on normal liver (a liver voxel
at least 20 mm from every true lesion) and counts how often something is added there (it should not be).

Run: ``python -m SmoothSegNetLib.evaluation.add_lesion_eval --seeds 2004:2064 --cache build/add-lesion``
(tuning seeds: settings may be chosen on them; 3000:3040 only for the final figure).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.correction.settings import AddLesionSettings, default_settings
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.evaluation.missed_lesions import evaluation_grid, true_lesion_mask

log = logging.getLogger(__name__)

#: A normal-liver click lies at least this far (mm) from every true lesion.
NORMAL_CLEARANCE_MM = 20.0


@dataclass(frozen=True)
class Click:
    seed: int
    lesion: int
    long_axis_mm: float
    dice: float
    method: str
    seconds: float


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.count_nonzero(a & b)) / total if total else 1.0


def normal_point(  # type: ignore[no-untyped-def]
    phantom_labels: np.ndarray, labelmap: np.ndarray, geometry, seed: int, draw: int = 0
) -> tuple[float, ...] | None:
    """A voxel that the segmentation calls liver, far from every true lesion (deterministic per seed; ``draw``
    > 0 gives other points of the same phantom, for tuning only)."""
    far = ndimage.distance_transform_edt(phantom_labels != 2, sampling=geometry.spacing_mm[::-1]) >= NORMAL_CLEARANCE_MM
    inner = ndimage.binary_erosion(labelmap == 1, iterations=3)
    candidates = np.argwhere(far & inner & (phantom_labels == 1))
    if not len(candidates):
        return None
    rng = np.random.default_rng(seed if draw == 0 else [seed, draw])
    kji = candidates[rng.integers(len(candidates))]
    return tuple(float(v) for v in geometry.index_to_lps(kji[::-1].astype(float)))


def evaluate_seed(
    seed: int, cache: Path, variants: dict[str, AddLesionSettings], normals: int = 1
) -> tuple[dict[str, list[Click]], dict[str, tuple[int, int]]]:
    """Clicks of one cached phantom for each settings variant; and, per variant, how many of its ``normals``
    normal-liver clicks added something, and how many were made."""
    from SmoothSegNetLib.correction.add_lesion import PointSegmenter
    from SmoothSegNetLib.phantom import make_phantom

    record = json.loads((cache / f"missed-{seed}.json").read_text(encoding="utf-8"))
    clicks: dict[str, list[Click]] = {name: [] for name in variants}
    normal: dict[str, tuple[int, int]] = {}
    if not record["missed"]:
        return clicks, {}
    size, spacing, oblique = evaluation_grid(seed)
    phantom = make_phantom(seed, size, spacing, oblique)
    stored = np.load(cache / f"seg-{seed}.npz")
    labelmap, lesions = stored["labelmap"], stored["lesions"]
    geometry = phantom.ct.geometry
    normal_clicks = [normal_point(phantom.labels, labelmap, geometry, seed, draw) for draw in range(normals)]
    normal_clicks = [p for p in normal_clicks if p is not None]
    for name, settings in variants.items():
        segmenter = PointSegmenter("smoothsegnet-demo-tumor", settings=settings, threads=1)
        for item in record["missed"]:
            truth = true_lesion_mask(phantom.tissues, item["lesion"])
            try:
                added = segmenter(phantom.ct, labelmap, lesions, tuple(item["centre_lps_mm"]))
            except InputError as exc:
                log.info("seed %d lesion %d (%s): refused: %s", seed, item["lesion"], name, exc)
                clicks[name].append(Click(seed, item["lesion"], item["long_axis_mm"], 0.0, "refused", 0.0))
                continue
            mask = np.zeros(truth.shape, dtype=bool)
            mask[added.box] = added.mask
            log.info(
                "seed %d lesion %d (%s): dice %.3f by %s", seed, item["lesion"], name, dice(mask, truth), added.method
            )
            clicks[name].append(
                Click(
                    seed,
                    item["lesion"],
                    item["long_axis_mm"],
                    dice(mask, truth),
                    added.method,
                    added.timings_s["total_s"],
                )
            )
        added_normal = 0
        for draw, point in enumerate(normal_clicks):
            try:
                segmenter(phantom.ct, labelmap, lesions, point)  # type: ignore[arg-type]
                added_normal += 1
                log.info("seed %d normal liver %d (%s): something was added", seed, draw, name)
            except InputError:
                pass
        if normal_clicks:
            normal[name] = (added_normal, len(normal_clicks))
    return clicks, normal


def distribution(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {
        "n": float(len(v)),
        "min": q[0],
        "q1": q[1],
        "median": q[2],
        "q3": q[3],
        "max": q[4],
        "mean": float(v.mean()),
        "ge_0.7": float((v >= 0.7).mean()),
    }


def table(rows: dict[str, tuple[list[Click], int, int]]) -> str:
    lines = [
        "| settings | clicks | min | Q1 | median | Q3 | max | mean | Dice >= 0.7 | normal-liver clicks that added |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (clicks, added, tried) in rows.items():
        if not clicks:
            continue
        d = distribution([c.dice for c in clicks])
        lines.append(
            f"| {name} | {int(d['n'])} | {d['min']:.3f} | {d['q1']:.3f} | {d['median']:.3f} | {d['q3']:.3f} "
            f"| {d['max']:.3f} | {d['mean']:.3f} | {d['ge_0.7']:.0%} | {added} / {tried} |"
        )
    return "\n".join(lines)


VARIANTS: dict[str, dict[str, object]] = {
    "bundled": {},
    "t0.5-only": {"thresholds": (0.5,)},
    "no-growing": {"region_growing": False},
    "no-chan-vese": {"chan_vese_iterations": 0},
    "network-first": {"network_first": True},
    "fine-network-1.0": {"fine_network_spacing_mm": 1.0},
    "fine-network-1.4": {"fine_network_spacing_mm": 1.4},
    "no-fine-network": {"fine_network_spacing_mm": 0.0},
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2064", help="half-open range A:B of phantom seeds")
    parser.add_argument("--cache", type=Path, default=Path("build/add-lesion"))
    parser.add_argument("--variants", default="bundled", help=f"comma-separated, of {sorted(VARIANTS)}")
    parser.add_argument("--json", type=Path, help="write every click here")
    parser.add_argument("--wait-s", type=float, default=0.0, help="wait this long for each seed's cache to appear")
    parser.add_argument("--normals", type=int, default=1, help="normal-liver clicks per phantom (more: tuning only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    base = default_settings()
    variants = {n: replace(base, **VARIANTS[n]) for n in args.variants.split(",")}  # type: ignore[arg-type]
    first, _, end = args.seeds.partition(":")
    rows: dict[str, tuple[list[Click], int, int]] = {n: ([], 0, 0) for n in variants}
    for seed in range(int(first), int(end)):
        waited = 0.0
        while not (args.cache / f"missed-{seed}.json").is_file() and waited < args.wait_s:
            time.sleep(10.0)  # the collection (missed_lesions) may still be running
            waited += 10.0
        if not (args.cache / f"missed-{seed}.json").is_file():
            log.warning("seed %d is not in the cache %s: run missed_lesions first", seed, args.cache)
            continue
        clicks, normal = evaluate_seed(seed, args.cache, variants, args.normals)
        for name in variants:
            old = rows[name]
            added, tried = normal.get(name, (0, 0))
            rows[name] = (old[0] + clicks[name], old[1] + added, old[2] + tried)
    if args.json:
        data = {n: [c.__dict__ for c in r[0]] for n, r in rows.items()}
        args.json.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(table(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
