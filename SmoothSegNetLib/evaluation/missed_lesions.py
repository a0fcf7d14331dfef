"""Lesions the bundled models miss on phantoms: the clicks that ``add-lesion`` is tuned and evaluated on.

Each seed becomes a phantom on its realistic grid (:func:`SmoothSegNetLib.evaluation.phantoms.heldout_grid`)
with the in-plane voxels made twice as large (1.4–1.9 mm instead of 0.7–0.95 mm: four times fewer voxels, so
that 100 phantoms can be segmented on a shared 2-core machine; the tumor network works at 2 mm anyway), is
segmented by the real pipeline, and every true lesion with a RECIST long axis of at least ``min_long_mm``
that no predicted tumor voxel touches is recorded as *missed*, with its centre (the true mask's centroid, or
the mask voxel nearest to it when the centroid falls outside the mask). The segmentation is cached per seed
(``seg-<seed>.npz`` and ``missed-<seed>.json`` in the cache folder), so the phantom is made again (it is
deterministic) and only ``add-lesion`` runs when evaluating. ``--in-plane-factor 1`` makes the phantoms on the
held-out grid itself (the pixel size of a real CT): the noise per voxel is the same, but a 2 mm network or a
1.5 mm scan averages four voxels there where the coarse grid has one. Each record keeps its factor, and what
reads the cache (the crops, the click evaluation, the scan's records) makes the phantom on that grid
(:func:`record_grid`).

Run: ``python -m SmoothSegNetLib.evaluation.missed_lesions --seeds 2004:2064 --cache build/add-lesion``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE
from SmoothSegNetLib.volume import Geometry

log = logging.getLogger(__name__)

#: Smallest RECIST long axis (mm) of a missed lesion worth a click (the issue's ">= 10 mm").
MIN_LONG_AXIS_MM = 10.0


def true_lesion_mask(tissues: np.ndarray, lesion_id: int) -> np.ndarray:
    """The voxels a phantom labels as its lesion ``lesion_id`` (1-based)."""
    return tissues == LESION_TISSUE_BASE + lesion_id - 1


def centre_point(mask_kji: np.ndarray, geometry: Geometry) -> list[float]:
    """The mask's centroid (LPS mm), or the centre of the mask voxel nearest to it if it lies outside."""
    points = np.argwhere(mask_kji)
    centroid = points.mean(axis=0)
    nearest = np.rint(centroid).astype(int)
    if not mask_kji[tuple(nearest)]:
        spacing_kji = np.array(geometry.spacing_mm[::-1])
        nearest = points[int(np.argmin((((points - centroid) * spacing_kji) ** 2).sum(axis=1)))]
        centroid = nearest.astype(float)
    return [round(float(v), 3) for v in geometry.index_to_lps(centroid[::-1])]


def missed_lesions(
    predicted_tumor: np.ndarray, tissues: np.ndarray, count: int, geometry: Geometry, min_long_mm: float
) -> list[dict[str, Any]]:
    """True lesions >= ``min_long_mm`` that no predicted tumor voxel touches: id, long axis, volume, centre."""
    from SmoothSegNetLib.report.recist import recist_axes

    out = []
    for lesion_id in range(1, count + 1):
        mask = true_lesion_mask(tissues, lesion_id)
        if not mask.any() or predicted_tumor[mask].any():
            continue
        axes = recist_axes(mask, geometry)
        if axes is None or axes.long_axis_mm < min_long_mm:
            continue
        out.append(
            {
                "lesion": lesion_id,
                "long_axis_mm": round(float(axes.long_axis_mm), 2),
                "volume_ml": round(float(mask.sum()) * geometry.voxel_volume_mm3 / 1000.0, 3),
                "centre_lps_mm": centre_point(mask, geometry),
            }
        )
    return out


#: In-plane voxels of the evaluation grid are this many times those of the held-out grid (see the docstring).
IN_PLANE_FACTOR = 2.0


def evaluation_grid(
    seed: int, in_plane_factor: float = IN_PLANE_FACTOR
) -> tuple[tuple[int, int, int], tuple[float, float, float], bool]:
    """The held-out grid of ``seed`` with ``in_plane_factor`` (default :data:`IN_PLANE_FACTOR`) times larger
    in-plane voxels, same field of view; a factor of 1 is the held-out grid itself."""
    from SmoothSegNetLib.evaluation.phantoms import heldout_grid

    if not in_plane_factor >= 1.0:
        raise ValueError(f"in_plane_factor must be >= 1, not {in_plane_factor}")
    size, spacing, oblique = heldout_grid(seed)
    if in_plane_factor == 1.0:
        return size, spacing, oblique
    n_xy = int(math.ceil(size[0] / in_plane_factor))
    in_plane = round(spacing[0] * in_plane_factor, 4)
    return (n_xy, n_xy, size[2]), (in_plane, in_plane, spacing[2]), oblique


def in_plane_factor_arg(text: str) -> float:
    """``--in-plane-factor`` of the command lines: a number >= 1 (argparse prints the error and exits 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 1, not {text!r}") from None
    if not value >= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number >= 1, not {text!r}")
    return value


def record_grid(seed: int, record: dict[str, Any]) -> tuple[tuple[int, int, int], tuple[float, float, float], bool]:
    """The evaluation grid a cache record of :func:`collect_seed` was made on (records without
    ``in_plane_factor`` were made before it existed, with :data:`IN_PLANE_FACTOR`)."""
    return evaluation_grid(seed, float(record.get("in_plane_factor", IN_PLANE_FACTOR)))


def has_large_lesion(seed: int, min_long_mm: float) -> bool:
    """Whether the seed's patient has a lesion with a nominal diameter >= ``min_long_mm`` (drawn without
    rendering, so seeds without one are skipped cheaply)."""
    from SmoothSegNetLib.phantom.generator import _draw_patient

    return any(spec.diameters_mm[0] >= min_long_mm for spec in _draw_patient(seed, None).lesions)


def collect_seed(
    seed: int, cache: Path, threads: int | None, min_long_mm: float, in_plane_factor: float = IN_PLANE_FACTOR
) -> list[dict[str, Any]]:
    """Segment one phantom on :func:`evaluation_grid` (``in_plane_factor``) or read its cache, and return its
    missed lesions. The record keeps the factor, so that what reads the cache makes the phantom on that grid."""
    record = cache / f"missed-{seed}.json"
    if record.is_file():
        return list(json.loads(record.read_text(encoding="utf-8"))["missed"])
    from SmoothSegNetLib.inference import SegmentOptions, segment
    from SmoothSegNetLib.phantom import make_phantom

    size, spacing, oblique = evaluation_grid(seed, in_plane_factor)  # checks the factor before anything is written
    cache.mkdir(parents=True, exist_ok=True)
    if not has_large_lesion(seed, min_long_mm):
        skipped = {"seed": seed, "models": [], "missed": [], "skipped": True, "in_plane_factor": in_plane_factor}
        record.write_text(json.dumps(skipped) + "\n", "utf-8")
        return []
    phantom = make_phantom(seed, size, spacing, oblique)
    result = segment(phantom.ct, SegmentOptions(device="cpu", threads=threads))
    missed = missed_lesions(
        result.labelmap == 2, phantom.tissues, len(phantom.lesions), phantom.ct.geometry, min_long_mm
    )
    np.savez_compressed(cache / f"seg-{seed}.npz", labelmap=result.labelmap, lesions=result.lesions)
    data = {"seed": seed, "models": list(result.models), "missed": missed, "in_plane_factor": in_plane_factor}
    record.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    log.info("phantom %d: %d lesion(s), %d missed >= %g mm", seed, len(phantom.lesions), len(missed), min_long_mm)
    return missed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2064", help="half-open range A:B of phantom seeds")
    parser.add_argument("--cache", type=Path, default=Path("build/add-lesion"), help="cache folder")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--min-long-axis-mm", type=float, default=MIN_LONG_AXIS_MM)
    parser.add_argument(
        "--in-plane-factor",
        type=in_plane_factor_arg,
        default=IN_PLANE_FACTOR,
        help=f"in-plane voxels this many times the held-out grid's (default {IN_PLANE_FACTOR:g}; 1: the held-out grid)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    first, _, end = args.seeds.partition(":")
    total = 0
    for seed in range(int(first), int(end)):
        total += len(collect_seed(seed, args.cache, args.threads, args.min_long_axis_mm, args.in_plane_factor))
    sys.stdout.write(f"{total} missed lesion(s) >= {args.min_long_axis_mm:g} mm in seeds {args.seeds}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
