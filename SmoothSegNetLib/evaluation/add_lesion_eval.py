"""Evaluation of ``add-lesion``: one click at the centre of every lesion the bundled models missed.

Reads the cache of :mod:`SmoothSegNetLib.evaluation.missed_lesions` (the pipeline's segmentation of each phantom
and its missed lesions >= 10 mm), makes each phantom again, clicks at each missed lesion's centre with
:class:`SmoothSegNetLib.correction.add_lesion.PointSegmenter`, and scores the added lesion by Dice against the
lesion's true mask (a refused click scores 0). It also clicks once per phantom on normal liver (a liver voxel
at least 20 mm from every true lesion) and counts how often something is added there (it should not be). With
``--off-centre F`` every missed lesion also gets four clicks off its centre, as a user's click lands: F times the
radius of a ball of the lesion's volume away, to the left, right, front and back (LPS x and y, the axial plane
the user clicks in); a point that falls outside the true lesion is not clicked, and counted.

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
from SmoothSegNetLib.evaluation.missed_lesions import record_grid, true_lesion_mask

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
    offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)


def off_centre_points(
    centre_lps_mm: Sequence[float], volume_ml: float, fraction: float
) -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
    """The four off-centre clicks of a lesion: ``(point, offset)`` in LPS mm, ``fraction`` times the radius of a
    ball of ``volume_ml`` from ``centre_lps_mm`` along -x, +x, -y, +y (the axial plane)."""
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    step = fraction * radius
    out = []
    for offset in ((-step, 0.0, 0.0), (step, 0.0, 0.0), (0.0, -step, 0.0), (0.0, step, 0.0)):
        point = tuple(float(c) + o for c, o in zip(centre_lps_mm, offset))
        out.append(((point[0], point[1], point[2]), offset))
    return out


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
    seed: int, cache: Path, variants: dict[str, AddLesionSettings], normals: int = 1, off_centre: float = 0.0
) -> tuple[dict[str, list[Click]], dict[str, tuple[int, int]]]:
    """Clicks of one cached phantom for each settings variant; and, per variant, how many of its ``normals``
    normal-liver clicks added something, and how many were made. With ``off_centre`` > 0 each missed lesion's
    four off-centre clicks (:func:`off_centre_points`) follow its centre click; one outside the true lesion is
    recorded with method ``outside_lesion`` and no Dice (NaN)."""
    from SmoothSegNetLib.correction.add_lesion import PointSegmenter
    from SmoothSegNetLib.phantom import make_phantom

    record = json.loads((cache / f"missed-{seed}.json").read_text(encoding="utf-8"))
    clicks: dict[str, list[Click]] = {name: [] for name in variants}
    normal: dict[str, tuple[int, int]] = {}
    if not record["missed"]:
        return clicks, {}
    size, spacing, oblique = record_grid(seed, record)
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
            centre = tuple(float(v) for v in item["centre_lps_mm"])
            points = [((centre[0], centre[1], centre[2]), (0.0, 0.0, 0.0))]
            if off_centre > 0:
                points += off_centre_points(centre, item["volume_ml"], off_centre)
            for at, offset in points:
                clicks[name].append(_click(segmenter, seed, phantom, labelmap, lesions, truth, item, at, offset, name))
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


def _click(  # type: ignore[no-untyped-def]
    segmenter, seed: int, phantom, labelmap, lesions, truth: np.ndarray, item: dict, point, offset, name: str
) -> Click:
    """One click at ``point`` (LPS mm) on phantom ``seed``, scored against ``truth``."""
    lesion, long_axis = item["lesion"], item["long_axis_mm"]
    index = np.rint(phantom.ct.geometry.lps_to_index(np.asarray(point, dtype=float))).astype(int)[::-1]
    if not all(0 <= v < n for v, n in zip(index, truth.shape)) or not truth[tuple(index)]:
        log.info("seed %d lesion %d (%s): the click %s lies outside the lesion", seed, lesion, name, offset)
        return Click(seed, lesion, long_axis, float("nan"), "outside_lesion", 0.0, offset)
    try:
        added = segmenter(phantom.ct, labelmap, lesions, point)
    except InputError as exc:
        log.info("seed %d lesion %d (%s, offset %s): refused: %s", seed, lesion, name, offset, exc)
        return Click(seed, lesion, long_axis, 0.0, "refused", 0.0, offset)
    mask = np.zeros(truth.shape, dtype=bool)
    mask[added.box] = added.mask
    score = dice(mask, truth)
    log.info("seed %d lesion %d (%s, offset %s): dice %.3f by %s", seed, lesion, name, offset, score, added.method)
    return Click(seed, lesion, long_axis, score, added.method, added.timings_s["total_s"], offset)


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
        centred = [c.dice for c in clicks if c.offset_mm == (0.0, 0.0, 0.0)]
        off = [c.dice for c in clicks if c.offset_mm != (0.0, 0.0, 0.0) and c.method != "outside_lesion"]
        outside = sum(c.method == "outside_lesion" for c in clicks)
        for label, values, normal in ((name, centred, f"{added} / {tried}"), (f"{name}, off centre", off, "")):
            if not values:
                continue
            d = distribution(values)
            lines.append(
                f"| {label} | {int(d['n'])} | {d['min']:.3f} | {d['q1']:.3f} | {d['median']:.3f} | {d['q3']:.3f} "
                f"| {d['max']:.3f} | {d['mean']:.3f} | {d['ge_0.7']:.0%} | {normal} |"
            )
        if outside:
            lines.append(f"| {name}, off centre outside the lesion (not clicked) | {outside} | | | | | | | | |")
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
    "no-recentre": {"recentre": False},
    "click-network": {"click_network": True},
    "no-click-network": {"click_network": False},
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2064", help="half-open range A:B of phantom seeds")
    parser.add_argument("--cache", type=Path, default=Path("build/add-lesion"))
    parser.add_argument("--variants", default="bundled", help=f"comma-separated, of {sorted(VARIANTS)}")
    parser.add_argument("--json", type=Path, help="write every click here")
    parser.add_argument("--wait-s", type=float, default=0.0, help="wait this long for each seed's cache to appear")
    parser.add_argument("--normals", type=int, default=1, help="normal-liver clicks per phantom (more: tuning only)")
    parser.add_argument(
        "--off-centre", type=float, default=0.0, help="also click 4 times this fraction of the lesion's radius off"
    )
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
        clicks, normal = evaluate_seed(seed, args.cache, variants, args.normals, args.off_centre)
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
