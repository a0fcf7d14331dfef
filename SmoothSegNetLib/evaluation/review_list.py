"""How much of what the accepted lesions miss the review list holds, for each faint-region setting (tuning only).

Each tuning phantom (never a held-out one) is segmented by the real pipeline with the tumor card's floors, its
probability map kept and no faint regions listed (``candidate_probability`` 0); then, for every pair of
``candidate_probability`` and ``candidate_limit`` asked for, the faint regions are added to the floor candidates
by the pipeline's own :func:`~SmoothSegNetLib.inference.thresholds.add_low_probability` (inside the liver the
pipeline found; the pipeline itself uses the tumor stage's context, that liver grown by the card's dilation).
Per setting: of the true lesions (the phantom's own ids) that no accepted lesion touches, how many a candidate
touches, and how many candidates touch no true lesion. The phantoms are made on the held-out grid of their
seed with twice the in-plane voxel size, as :mod:`SmoothSegNetLib.evaluation.small_lesions` does.

Run: ``python -m SmoothSegNetLib.evaluation.review_list --seeds 2004:2034 --tumor-model CARD``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from SmoothSegNetLib.evaluation.lesions import RECIST_BINS, candidate_review, proportion_text, recist_bin

log = logging.getLogger(__name__)

Setting = tuple[float, "int | None"]


def review_case(
    truth_ids: np.ndarray,
    bands: dict[int, str],
    lesions: np.ndarray,
    floor_candidates: Any,
    q: np.ndarray,
    liver: np.ndarray,
    geometry: Any,
    settings: Sequence[Setting],
    min_ml: float,
    q_fine: np.ndarray | None = None,
) -> dict[Setting, dict[str, Any]]:
    """Per setting: ``missed`` and ``caught`` per band, ``candidates`` and ``false`` counts of one case.

    Args:
        truth_ids: the true lesions, uint16 (lesion n = n).
        bands: lesion id -> RECIST band.
        lesions: the accepted lesions (uint16).
        floor_candidates: the :class:`~SmoothSegNetLib.report.candidates.Candidates` the floors dropped.
        q: the tumor probability on the same grid.
        liver: the liver the pipeline found (bool).
        geometry: the grid.
        settings: ``(candidate_probability, candidate_limit)`` pairs (probability 0: floor candidates only).
        min_ml: the smallest faint region listed.
        q_fine: the tumor probability of the fine pass (``None``: no fine pass); its components are added after
            the faint regions, with the same limit, by the pipeline's
            :func:`~SmoothSegNetLib.inference.thresholds.add_fine_pass`.
    """
    from SmoothSegNetLib.inference.thresholds import add_fine_pass, add_low_probability

    missed = [n for n in bands if not np.any(lesions[truth_ids == n])]
    out: dict[Setting, dict[str, Any]] = {}
    for probability, limit in settings:
        candidates = floor_candidates
        if probability > 0:
            candidates = add_low_probability(floor_candidates, q, liver, lesions, probability, geometry, min_ml, limit)
        if q_fine is not None:
            candidates = add_fine_pass(candidates, q, q_fine, liver, lesions, geometry, min_ml, limit)
        caught, listed, false = candidate_review(candidates.instances, truth_ids, missed)
        out[(probability, limit)] = {
            "missed": [bands[n] for n in missed],
            "caught": [bands[n] for n in caught],
            "candidates": listed,
            "false": false,
        }
    return out


def collect(
    seed: int, tumor_model: str, threads: int | None, settings: Sequence[Setting], fine_spacing_mm: float = 0.0
) -> dict[Setting, Any]:
    """Segment one tuning phantom and review it under every setting (with the fine pass's components when
    ``fine_spacing_mm`` > 0)."""
    from SmoothSegNetLib.evaluation.missed_lesions import evaluation_grid
    from SmoothSegNetLib.inference import SegmentOptions
    from SmoothSegNetLib.inference.pipeline import LOW_PROBABILITY_MIN_ML, Segmenter, tumor_box
    from SmoothSegNetLib.phantom import make_phantom
    from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE
    from SmoothSegNetLib.progress import no_progress
    from SmoothSegNetLib.report.recist import recist_axes
    from SmoothSegNetLib.resample import crop_geometry

    size, spacing, oblique = evaluation_grid(seed)
    phantom = make_phantom(seed, size, spacing, oblique)
    options = SegmentOptions(
        tumor_model=tumor_model, device="cpu", threads=threads, probability_map=True, candidate_probability=0.0
    )
    segmenter = Segmenter(options)
    result = segmenter(phantom.ct)
    geometry = phantom.ct.geometry
    q_fine = None
    if fine_spacing_mm > 0:
        # On the tumor stage's box around the liver, as the pipeline runs it.
        liver = result.labelmap > 0
        assert segmenter.tumor_card is not None
        box = tumor_box(liver, geometry, segmenter.tumor_card)
        q_fine = np.zeros(liver.shape, np.float32)
        crop = crop_geometry(geometry, box)
        q_fine[box] = segmenter.fine_pass(
            phantom.ct.array[box], liver[box], crop, fine_spacing_mm, no_progress, None, []
        )
    truth_ids = np.where(phantom.tissues >= LESION_TISSUE_BASE, phantom.tissues - LESION_TISSUE_BASE + 1, 0)
    bands = {}
    for n in np.unique(truth_ids)[1:]:
        axes = recist_axes(truth_ids == n, geometry)
        bands[int(n)] = recist_bin(0.0 if axes is None else float(axes.long_axis_mm))
    assert result.candidates is not None and result.probability is not None
    q = result.probability["tumor"].astype(np.float32)
    return review_case(
        truth_ids, bands, result.lesions, result.candidates, q, result.labelmap > 0, geometry, settings,
        LOW_PROBABILITY_MIN_ML, q_fine,
    )  # fmt: skip


def review_table(cases: Sequence[dict[Setting, Any]], settings: Sequence[Setting]) -> str:
    """Markdown: per setting, the missed lesions a candidate touches (all and per band) and the candidates."""
    bands = [band for band, _, _ in RECIST_BINS]
    head = "| candidate probability | limit | missed lesions in candidates | " + " | ".join(bands)
    rows = [head + " | candidates per case | on no lesion |", "|---" * (len(bands) + 5) + "|"]
    for setting in settings:
        missed = [b for c in cases for b in c[setting]["missed"]]
        caught = [b for c in cases for b in c[setting]["caught"]]
        per_band = " | ".join(f"{caught.count(b)}/{missed.count(b)}" for b in bands)
        listed = sum(c[setting]["candidates"] for c in cases)
        false = sum(c[setting]["false"] for c in cases)
        probability = "off" if setting[0] == 0 else f"{setting[0]:g}"
        limit = "–" if setting[1] is None else str(setting[1])
        rows.append(
            f"| {probability} | {limit} | {proportion_text(len(caught), len(missed))} | {per_band} "
            f"| {listed / max(len(cases), 1):.1f} | {false} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2034", help="half-open range A:B of tuning phantom seeds")
    parser.add_argument("--tumor-model", default="smoothsegnet-demo-tumor", help="tumor card id or file")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--probabilities", default="0,0.15,0.2,0.3", help="candidate probabilities (0: off)")
    parser.add_argument("--limits", default="1,2,3,5,0", help="candidate limits (0: no limit)")
    parser.add_argument(
        "--fine-spacing", type=float, default=0.0, help="also add the components of a fine pass at MM (0: none)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    first, _, end = args.seeds.partition(":")
    probabilities = [float(p) for p in args.probabilities.split(",")]
    limits = [int(n) or None for n in args.limits.split(",")]
    settings: list[Setting] = [(0.0, None)] if 0.0 in probabilities else []
    if args.fine_spacing > 0 and 0.0 in probabilities:  # the fine pass alone, at each limit
        settings += [(0.0, n) for n in limits if n is not None]
    settings += [(p, n) for p in probabilities if p > 0 for n in limits]
    cases = []
    for seed in range(int(first), int(end)):
        cases.append(collect(seed, args.tumor_model, args.threads, settings, args.fine_spacing))
        log.info("phantom %d reviewed", seed)
    sys.stdout.write(review_table(cases, settings) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
