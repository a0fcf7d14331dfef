"""How visible is each true lesion in its CT, and what outshines it: noise, vessels, cysts or the liver's edge?

Sections 10 and 13 of docs/small-lesions.md put the small lesions that nothing finds "at the level of the
phantoms' noise". This module measures that instead of assuming it, with a filter that knows nothing of the
networks: the **contrast filter** of radius ``r`` at a voxel is the mean HU of the true liver (lesions included)
within ``r`` of it less the mean HU of the true liver in the shell from ``r`` to ``r + shell_mm`` (a ball
matched to a lesion of that radius; computed for every voxel at once by FFT convolution, in millimetres, so an
anisotropic grid is measured in the same units as an isotropic one). Where less than 80 % of the ball or less
than half of the shell is liver, it is not defined.

For each true lesion (the evaluation's lesions: connected components of the true tumor label) and each radius
of ``RADII_MM`` up to 1.2 times its equivalent-sphere radius, the lesion's value is the filter's strongest value
(largest magnitude) over its voxels, and it is compared with the filter's **lesion-free spots**: local extremes
of the filter's magnitude (one per ball-sized neighbourhood) whose ball and shell touch no true lesion. Each spot
stronger than the lesion is put in one class, the first that applies:

* ``cyst``: its ball or shell reaches a hepatic cyst (water density; liver by the phantoms' labels);
* ``vessel``: its ball or shell reaches a hepatic or portal vein (tissue ids of the generator);
* ``edge``: it lies within ``r + shell_mm + 2`` mm of the true liver's boundary (partial volume of fat, air and
  bone);
* ``parenchyma``: none of these, only liver tissue, its texture and the CT's noise.

A lesion with no ``parenchyma`` spot ahead of it at some radius stands out from the noise and texture of its
own liver (it is **above the noise**); one with no spot at all ahead of it at some radius is the strongest spot
of its liver for that filter. ``z`` is the lesion's value over the robust spread (1.4826 times the median
absolute deviation) of the filter over the parenchyma positions, at the radius where it is largest.

This is a measurement on phantoms, whose tissue maps say where the vessels and cysts are: the true liver and the
true tissues are used, never the pipeline's. The pipeline's outcome is recorded beside it (each lesion found,
on the review list only, or missed), by the real pipeline on the seed's realistic grid, as
:mod:`SmoothSegNetLib.evaluation.phantoms` makes and segments it.

Run: ``python -m SmoothSegNetLib.evaluation.visibility --seeds 2004:2064 --out build/visibility``
(``--jobs 2``); each seed's record is kept in ``--out`` (``visibility-<seed>.json``) and read back on a rerun.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import fft, ndimage

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.evaluation.lesions import RECIST_BINS, recist_bin
from SmoothSegNetLib.outputs import atomic_path
from SmoothSegNetLib.phantom.seeds import seed_range
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE, T

log = logging.getLogger(__name__)

#: Radii (mm) of the contrast filter: lesions of about 5 to 20 mm across and the cores of larger ones.
RADII_MM = (2.5, 3.5, 5.0, 7.0, 10.0)
#: Thickness (mm) of the filter's shell.
SHELL_MM = 3.0
#: A spot this much further than the filter's reach from the liver's boundary is not at its edge (mm).
EDGE_MARGIN_MM = 2.0
#: Share of the ball (and of the shell) that must be liver for the filter to be defined.
MIN_BALL_LIVER = 0.8
MIN_SHELL_LIVER = 0.5
#: Classes of the lesion-free spots, in the order they are tried.
CLASSES = ("cyst", "vessel", "edge", "parenchyma")
OUTCOMES = ("found", "candidate", "missed")


def _distances_mm(radius_mm: float, spacing_kji: Sequence[float]) -> np.ndarray:
    """Distance (mm) of each voxel of a box of +- ``radius_mm`` from its centre voxel."""
    half = [int(math.floor(radius_mm / s + 1e-9)) for s in spacing_kji]
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing_kji)]
    k, j, i = np.meshgrid(*axes, indexing="ij")
    return np.asarray(np.sqrt(k**2 + j**2 + i**2))


def _convolve_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``image`` convolved with an odd-sized ``kernel`` by FFT, cropped to ``image``'s shape (centred; zero
    outside the image). scipy.fft only: scipy.signal imports scipy.stats, which fails where torch is blocked."""
    full = [n + k - 1 for n, k in zip(image.shape, kernel.shape)]
    size = [fft.next_fast_len(n, real=True) for n in full]
    product = fft.rfftn(image, size) * fft.rfftn(kernel, size)
    out = fft.irfftn(product, size)
    crop = tuple(slice((k - 1) // 2, (k - 1) // 2 + n) for n, k in zip(image.shape, kernel.shape))
    return np.asarray(out[crop])


def contrast_filter(
    hu: np.ndarray, liver: np.ndarray, spacing_kji: Sequence[float], radius_mm: float, shell_mm: float = SHELL_MM
) -> tuple[np.ndarray, np.ndarray]:
    """The contrast filter of ``radius_mm`` (module docstring) at every voxel: ``(value, defined)``.

    Args:
        hu: CT in HU, ``[k, j, i]``.
        liver: bool, the same shape: the voxels that count (outside, nothing is averaged).
        spacing_kji: voxel size (mm) along k, j, i.
        radius_mm: the ball's radius (mm, > 0).
        shell_mm: the shell's thickness (mm, > 0).

    Returns:
        float32 mean of the ball less mean of the shell (0 where not defined), and bool where defined.
    """
    if hu.shape != liver.shape or hu.ndim != 3:
        raise InputError(f"the contrast filter needs a 3D CT and liver of one shape: {hu.shape}, {liver.shape}")
    if not (radius_mm > 0 and shell_mm > 0):
        raise InputError(f"the contrast filter needs a radius and shell > 0 mm, got {radius_mm}, {shell_mm}")
    r = _distances_mm(radius_mm + shell_mm, spacing_kji)
    ball = (r <= radius_mm).astype(np.float32)
    shell = ((r > radius_mm) & (r <= radius_mm + shell_mm)).astype(np.float32)
    weight = liver.astype(np.float32)
    values = hu.astype(np.float32) * weight
    n_ball = _convolve_same(weight, ball)
    s_ball = _convolve_same(values, ball)
    n_shell = _convolve_same(weight, shell)
    s_shell = _convolve_same(values, shell)
    defined = (
        liver
        & (n_ball >= MIN_BALL_LIVER * float(ball.sum()) - 1e-3)
        & (n_shell >= MIN_SHELL_LIVER * float(shell.sum()) - 1e-3)
    )
    out = np.zeros(hu.shape, dtype=np.float32)
    out[defined] = s_ball[defined] / n_ball[defined] - s_shell[defined] / n_shell[defined]
    return out, defined


@dataclass(frozen=True)
class RadiusFigures:
    """One lesion under the filter of one radius."""

    radius_mm: float
    value_hu: float  # the strongest value over the lesion's voxels
    z: float  # value over the filter's robust spread over the parenchyma positions (NaN if too few)
    ahead: dict[str, int]  # lesion-free spots stronger than the lesion, per class


@dataclass(frozen=True)
class LesionVisibility:
    """One true lesion: its size, kind and the pipeline's outcome, and what outshines it."""

    seed: int
    id: int
    long_axis_mm: float
    volume_ml: float
    kind: str
    outcome: str  # found / candidate / missed
    radii: tuple[RadiusFigures, ...]

    @property
    def measured(self) -> bool:
        """The filter is defined on some of its voxels."""
        return bool(self.radii)

    @property
    def above_noise(self) -> bool:
        """No parenchyma spot is stronger at some radius."""
        return any(r.ahead["parenchyma"] == 0 for r in self.radii)

    @property
    def fewest_ahead(self) -> int:
        """The fewest lesion-free spots of any class ahead of it, over the radii."""
        return min((sum(r.ahead.values()) for r in self.radii), default=-1)  # -1: not measured

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LesionVisibility:
        radii = tuple(RadiusFigures(**r) for r in data["radii"])
        return cls(**{**data, "radii": radii})


def _structure_distances(tissues: np.ndarray, liver: np.ndarray, spacing_kji: Sequence[float]) -> dict[str, np.ndarray]:
    """Distance (mm) of each voxel from the nearest cyst, the nearest vein and (inside the liver) its boundary."""
    cyst = ndimage.distance_transform_edt(tissues != T.HEPATIC_CYST, sampling=spacing_kji)
    vein = ndimage.distance_transform_edt(~np.isin(tissues, [T.HEPATIC_VEIN, T.PORTAL_VEIN]), sampling=spacing_kji)
    inside = ndimage.distance_transform_edt(np.pad(liver, 1), sampling=spacing_kji)[1:-1, 1:-1, 1:-1]
    return {"cyst": cyst, "vessel": vein, "edge": inside}


def _spot_classes(distances: dict[str, np.ndarray], reach_mm: float) -> dict[str, np.ndarray]:
    """Where a spot whose filter reaches ``reach_mm`` falls in each class (bool maps, before precedence)."""
    return {
        "cyst": distances["cyst"] <= reach_mm,
        "vessel": distances["vessel"] <= reach_mm,
        "edge": distances["edge"] <= reach_mm + EDGE_MARGIN_MM,
    }


def lesion_visibility(
    hu: np.ndarray,
    liver: np.ndarray,
    lesion_ids: np.ndarray,
    tissues: np.ndarray,
    spacing_kji: Sequence[float],
    lesions: Sequence[dict[str, Any]],
    radii_mm: Sequence[float] = RADII_MM,
) -> list[tuple[dict[str, Any], tuple[RadiusFigures, ...]]]:
    """The filter's figures of each lesion (module docstring).

    Args:
        hu: CT (HU) ``[k, j, i]``.
        liver: bool, the true liver with its lesions.
        lesion_ids: int, lesion n = n (0: none), on the same grid.
        tissues: the phantom's tissue ids on the same grid (veins and cysts).
        spacing_kji: voxel size (mm).
        lesions: one dict per lesion with ``id`` and ``volume_ml`` (and anything else, passed back).
        radii_mm: the filter's radii to try.

    Returns:
        ``(lesion, figures per radius)`` for each lesion; no figures where the filter is defined on none of its
        voxels at any radius (a lesion mostly outside the liver, or too thin).
    """
    if not (hu.shape == liver.shape == lesion_ids.shape == tissues.shape):
        raise InputError("the CT, liver, lesions and tissues must be on one grid")
    spacing = [float(s) for s in spacing_kji]
    free_distance = ndimage.distance_transform_edt(lesion_ids == 0, sampling=spacing)
    distances = _structure_distances(tissues, liver, spacing)
    out = []
    cache: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], float]] = {}
    for lesion in lesions:
        mask = lesion_ids == int(lesion["id"])
        equivalent = (3.0 * float(lesion["volume_ml"]) * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
        figures = []
        for radius in [r for r in radii_mm if r <= max(1.2 * equivalent, min(radii_mm))]:
            if radius not in cache:
                cache[radius] = _filter_and_spots(hu, liver, distances, free_distance, spacing, radius)
            value, defined, peaks, classes, spread = cache[radius]
            inside = mask & defined
            if not inside.any():
                continue
            values = value[inside]
            strongest = float(values[int(np.argmax(np.abs(values)))])
            stronger = peaks & (np.abs(value) > abs(strongest))
            ahead = {}
            left = stronger
            for name in CLASSES[:-1]:
                ahead[name] = int(np.count_nonzero(left & classes[name]))
                left = left & ~classes[name]
            ahead["parenchyma"] = int(np.count_nonzero(left))
            z = strongest / spread if spread > 0 else math.nan
            figures.append(RadiusFigures(radius, round(strongest, 3), round(z, 3), ahead))
        out.append((lesion, tuple(figures)))
    return out


def _filter_and_spots(
    hu: np.ndarray,
    liver: np.ndarray,
    distances: dict[str, np.ndarray],
    free_distance: np.ndarray,
    spacing: list[float],
    radius: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], float]:
    value, defined = contrast_filter(hu, liver, spacing, radius)
    reach = radius + SHELL_MM
    free = defined & (free_distance > reach)
    magnitude = np.where(free, np.abs(value), 0.0)
    size = [2 * int(math.floor(radius / s)) + 1 for s in spacing]
    peaks = free & (magnitude > 0) & (magnitude == ndimage.maximum_filter(magnitude, size=size, mode="constant"))
    classes = _spot_classes(distances, reach)
    parenchyma = free & ~classes["cyst"] & ~classes["vessel"] & ~classes["edge"]
    spots = value[parenchyma]
    spread = float(1.4826 * np.median(np.abs(spots - np.median(spots)))) if spots.size >= 100 else 0.0
    return value, defined, peaks, classes, spread


def evaluate_seed(seed: int, threads: int | None = 1) -> list[LesionVisibility]:
    """Make, segment (bundled cards) and measure one phantom on its realistic grid."""
    from SmoothSegNetLib.evaluation.phantoms import segment_heldout_phantom
    from SmoothSegNetLib.inference.options import DEFAULT_LIVER_MODEL, DEFAULT_TUMOR_MODEL
    from SmoothSegNetLib.report import label_lesions

    phantom, result, case, _ = segment_heldout_phantom(seed, DEFAULT_LIVER_MODEL, DEFAULT_TUMOR_MODEL, threads)
    geometry = phantom.ct.geometry
    truth_tumor = phantom.labels == 2
    truth_ids = label_lesions(truth_tumor, geometry)
    candidates = None if result.candidates is None else result.candidates.instances
    liver = (phantom.labels == 1) | truth_tumor
    where = np.argwhere(liver)
    if where.size == 0:
        return []
    lo = np.maximum(where.min(axis=0) - 16, 0)
    hi = np.minimum(where.max(axis=0) + 17, liver.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    tissues = phantom.tissues[box]
    ids = truth_ids[box]
    listed_on = None if candidates is None else candidates[box]
    lesions = []
    for record in case.detection.lesions:
        mask = ids == record.id
        on = tissues[mask]
        on = on[on >= LESION_TISSUE_BASE]
        kind = phantom.lesions[int(np.bincount(on).argmax()) - LESION_TISSUE_BASE].kind if on.size else "unknown"
        listed = listed_on is not None and bool(np.any(listed_on[mask]))
        outcome = "found" if record.detected else "candidate" if listed else "missed"
        lesions.append(
            {
                "id": record.id,
                "volume_ml": record.volume_ml,
                "long_axis_mm": record.long_axis_mm,
                "kind": kind,
                "outcome": outcome,
            }
        )
    measured = lesion_visibility(phantom.ct.array[box], liver[box], ids, tissues, geometry.spacing_mm[::-1], lesions)
    return [
        LesionVisibility(
            seed,
            int(lesion["id"]),
            round(float(lesion["long_axis_mm"]), 3),
            round(float(lesion["volume_ml"]), 4),
            str(lesion["kind"]),
            str(lesion["outcome"]),
            figures,
        )
        for lesion, figures in measured
    ]


def collect(seed: int, out: Path, threads: int | None = 1) -> list[LesionVisibility]:
    """One seed's lesions, from its record in ``out`` or measured and recorded (written whole, then renamed)."""
    path = out / f"visibility-{seed}.json"
    if path.is_file():
        return [LesionVisibility.from_dict(d) for d in json.loads(path.read_text(encoding="utf-8"))["lesions"]]
    lesions = evaluate_seed(seed, threads)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"seed": seed, "lesions": [v.as_dict() for v in lesions]}) + "\n", encoding="utf-8")
    return lesions


def band_table(lesions: Sequence[LesionVisibility]) -> str:
    """Markdown: per size band and outcome, how many lesions stand out from their liver's noise and texture,
    how many are the strongest spot of their liver, and the median count of spots ahead per class (at the radius
    with the fewest); ``not measured``: lesions on whose voxels the filter is nowhere defined."""
    head = (
        "| band | outcome | n | not measured | above the noise | strongest spot | median z "
        "| median spots ahead: parenchyma / vessel / edge / cyst |"
    )
    rows = [head, "|---|---|---|---|---|---|---|---|"]
    for band, _, _ in RECIST_BINS:
        for outcome in OUTCOMES:
            everyone = [v for v in lesions if recist_bin(v.long_axis_mm) == band and v.outcome == outcome]
            if not everyone:
                continue
            group = [v for v in everyone if v.measured]
            best = [min(v.radii, key=lambda r: sum(r.ahead.values())) for v in group]
            z = [max(abs(r.z) for r in v.radii if not math.isnan(r.z)) if _has_z(v) else math.nan for v in group]
            medians = " / ".join(
                _median([float(b.ahead[c]) for b in best], "g") for c in ("parenchyma", "vessel", "edge", "cyst")
            )
            rows.append(
                f"| {band} | {outcome} | {len(everyone)} | {len(everyone) - len(group)} "
                f"| {sum(v.above_noise for v in group)} "
                f"| {sum(v.fewest_ahead == 0 for v in group)} | {_median(z)} | {medians} |"
            )
    return "\n".join(rows)


def _has_z(v: LesionVisibility) -> bool:
    return any(not math.isnan(r.z) for r in v.radii)


def _median(values: Sequence[float], style: str = ".1f") -> str:
    finite = [x for x in values if not math.isnan(x)]
    return format(float(np.median(finite)), style) if finite else "–"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2064", help="half-open range A:B of phantom seeds")
    parser.add_argument("--out", type=Path, default=Path("build/visibility"), help="folder of the records")
    parser.add_argument("--jobs", type=int, default=1, help="phantoms measured at once")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the networks, per job")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        seeds = seed_range(args.seeds)
        if args.jobs < 1 or args.threads < 1:
            raise InputError(f"--jobs and --threads must be >= 1, got {args.jobs}, {args.threads}")
        if args.out.exists() and not args.out.is_dir():
            raise InputError(f"--out {args.out} is not a folder")
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    lesions: list[LesionVisibility] = []
    if args.jobs == 1:
        for seed in seeds:
            lesions += collect(seed, args.out, args.threads)
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            for found in pool.map(collect, seeds, [args.out] * len(seeds), [args.threads] * len(seeds)):
                lesions += found
    sys.stdout.write(f"Seeds {seeds.start}-{seeds.stop - 1}: {len(lesions)} lesions\n\n{band_table(lesions)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
