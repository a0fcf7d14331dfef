"""Components with their features and their truth, for fitting and checking the lesion classifier (tuning only).

Each phantom is segmented by the real pipeline with every floor off and its probability kept. Each tumor component
gets its features (:mod:`SmoothSegNetLib.inference.lesion_features`, computed as the pipeline computes them) and
the true lesions it touches (the phantom's own ids). Each true lesion keeps its RECIST band. The phantoms are
made on the held-out grid of their seed with twice the in-plane voxel size, as
:mod:`SmoothSegNetLib.evaluation.small_lesions` does (``--in-plane-factor 1``: on the held-out grid itself, the
voxel sizes of the held-out evaluation).

Run: ``python -m SmoothSegNetLib.evaluation.lesion_features --seeds 2004:2064 --cache build/lesion-features``
(``--jobs 2`` segments two phantoms at a time; ``--liver-model`` and ``--tumor-model`` name cards other than the
bundled ones, as ``scripts/train_demo.sh`` does for the weights it has just trained).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.evaluation.missed_lesions import IN_PLANE_FACTOR, in_plane_factor_arg

log = logging.getLogger(__name__)


def collect(
    seed: int,
    cache: Path,
    threads: int | None,
    tumor_model: str | None,
    liver_model: str | None = None,
    in_plane_factor: float = IN_PLANE_FACTOR,
) -> dict[str, Any]:
    """One phantom's components and lesions (read from ``cache`` when there)."""
    record = cache / f"features-{seed}.json"
    if record.is_file():
        return dict(json.loads(record.read_text(encoding="utf-8")))
    from SmoothSegNetLib.evaluation.lesions import recist_bin
    from SmoothSegNetLib.evaluation.small_lesions import segment_without_floors, write_record
    from SmoothSegNetLib.inference.lesion_features import component_features
    from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE
    from SmoothSegNetLib.report.recist import recist_axes

    models = {"tumor_model": tumor_model, "liver_model": liver_model}
    phantom, result = segment_without_floors(seed, threads, {k: v for k, v in models.items() if v}, in_plane_factor)
    geometry = phantom.ct.geometry
    assert result.probability is not None
    q = result.probability["tumor"].astype(np.float32)
    components = result.lesions.astype(np.int32)
    truth = np.where(phantom.tissues >= LESION_TISSUE_BASE, phantom.tissues - LESION_TISSUE_BASE + 1, 0)
    lesions = []
    for n in np.unique(truth)[1:]:
        axes = recist_axes(truth == n, geometry)
        long_mm = 0.0 if axes is None else float(axes.long_axis_mm)
        lesions.append({"lesion": int(n), "long_axis_mm": round(long_mm, 2), "band": recist_bin(long_mm)})
    features = component_features(components, q, phantom.ct.array, result.labelmap > 0, geometry)
    boxes = ndimage.find_objects(components)
    records = []
    for n, f in features.items():
        inside = components[boxes[n - 1]] == n  # the component's own box, not the whole grid per component
        hit = np.unique(truth[boxes[n - 1]][inside])
        records.append(
            {
                "ml": round(float(inside.sum()) * geometry.voxel_volume_mm3 / 1000.0, 4),
                "lesions": [int(t) for t in hit if t],
                **{k: round(v, 4) for k, v in f.items()},
            }
        )
    data = {"seed": seed, "lesions": lesions, "components": records}
    write_record(record, data)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2064", help="half-open range A:B of (tuning) phantom seeds")
    parser.add_argument("--cache", type=Path, default=Path("build/lesion-features"), help="cache folder")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the networks")
    parser.add_argument("--tumor-model", default=None, help="tumor model card (default: the bundled one)")
    parser.add_argument("--liver-model", default=None, help="liver model card (default: the bundled one)")
    parser.add_argument("--jobs", type=int, default=1, help="phantoms segmented in parallel processes")
    parser.add_argument(
        "--in-plane-factor",
        type=in_plane_factor_arg,
        default=IN_PLANE_FACTOR,
        help=f"in-plane voxels this many times the held-out grid's (default {IN_PLANE_FACTOR:g}; 1: the held-out grid)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    first, _, end = args.seeds.partition(":")
    seeds = range(int(first), int(end))
    work = (args.cache, args.threads, args.tumor_model, args.liver_model, args.in_plane_factor)
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            cases = list(pool.map(collect, seeds, *([w] * len(seeds) for w in work)))
    else:
        cases = [collect(seed, *work) for seed in seeds]
    for data in cases:
        log.info(
            "phantom %d: %d component(s), %d lesion(s)", data["seed"], len(data["components"]), len(data["lesions"])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
