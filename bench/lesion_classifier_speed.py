"""Cost of the lesion classifier (``min_lesion_score``): scoring every tumor component, beside the tumor stage.

Run by hand (the machine may be shared: note the load when quoting figures)::

    .venv/bin/python bench/lesion_classifier_speed.py --threads 2 --tumor-model CARD

One phantom (default 512x512x300 voxels of 0.75 x 0.75 x 1.0 mm) is segmented once with every lesion floor off
(its components are what the classifier scores), then the features and scores of all its components are
computed ``--repeat`` times (:func:`~SmoothSegNetLib.inference.thresholds.lesion_scores`, as the pipeline calls
it on the tumor stage's box). The table gives the median seconds of the liver stage, the tumor stage and the
scoring, and the scoring's share of the tumor stage.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512,512,300", help="grid size i,j,k")
    parser.add_argument("--spacing", default="0.75,0.75,1.0", help="voxel size mm")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tumor-model", required=True, help="a tumor card with a lesion classifier")
    args = parser.parse_args()

    import numpy as np

    from SmoothSegNetLib.evaluation.small_lesions import NO_HU_FLOOR
    from SmoothSegNetLib.inference import SegmentOptions
    from SmoothSegNetLib.inference.pipeline import Segmenter, tumor_box
    from SmoothSegNetLib.inference.thresholds import lesion_scores
    from SmoothSegNetLib.phantom import make_phantom
    from SmoothSegNetLib.resample import crop_geometry

    size = tuple(int(v) for v in args.size.split(","))
    spacing = tuple(float(v) for v in args.spacing.split(","))
    phantom = make_phantom(args.seed, size, spacing)
    options = SegmentOptions(
        tumor_model=args.tumor_model,
        device="cpu",
        threads=args.threads,
        probability_map=True,
        min_lesion_ml=0.0,
        min_lesion_confidence=0.0,
        min_lesion_hu=NO_HU_FLOOR,
        min_lesion_score=0.0,
    )
    segmenter = Segmenter(options)
    assert segmenter.lesion_classifier is not None and segmenter.tumor_card is not None, "no classifier"
    result = segmenter(phantom.ct)
    assert result.probability is not None
    box = tumor_box(result.labelmap > 0, phantom.ct.geometry, segmenter.tumor_card)
    crop = crop_geometry(phantom.ct.geometry, box)
    components = result.lesions[box].astype(np.int32)
    q = result.probability["tumor"][box].astype(np.float32)
    hu = phantom.ct.array[box]
    liver = result.labelmap[box] > 0
    seconds = []
    scores: dict[int, float] = {}
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        scores = lesion_scores(components, q, hu, liver, crop, segmenter.lesion_classifier)
        seconds.append(time.perf_counter() - t0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    scoring = statistics.median(seconds)
    tumor = result.timings_s["tumor_s"]
    print(f"phantom seed {args.seed}, {size[0]}x{size[1]}x{size[2]} voxels of {spacing} mm, threads {args.threads}, "
          f"scoring median of {args.repeat}, load average {load:.1f}")  # fmt: skip
    print("| components | scored (under max_ml) | liver stage s | tumor stage s | scoring s | scoring / tumor stage |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {int(components.max())} | {len(scores)} | {result.timings_s['liver_s']:.2f} | {tumor:.2f} "
        f"| {scoring:.3f} | {scoring / tumor:.3f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
