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

import statistics
import sys
import time
from pathlib import Path

import _phantom_bench

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = _phantom_bench.parser(__doc__.splitlines()[0])
    parser.add_argument("--tumor-model", required=True, help="a tumor card with a lesion classifier")
    args = parser.parse_args()

    import numpy as np

    from SmoothSegNetLib.evaluation.small_lesions import FLOORS_OFF
    from SmoothSegNetLib.inference import SegmentOptions
    from SmoothSegNetLib.inference.pipeline import Segmenter, tumor_box
    from SmoothSegNetLib.inference.thresholds import lesion_scores
    from SmoothSegNetLib.resample import crop_geometry

    phantom = _phantom_bench.phantom(args)
    options = SegmentOptions(
        tumor_model=args.tumor_model, device="cpu", threads=args.threads, probability_map=True, **FLOORS_OFF
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
    scoring = statistics.median(seconds)
    tumor = result.timings_s["tumor_s"]
    print(_phantom_bench.heading(args, f"scoring median of {args.repeat}"))
    print("| components | scored (under max_ml) | liver stage s | tumor stage s | scoring s | scoring / tumor stage |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {int(components.max())} | {len(scores)} | {result.timings_s['liver_s']:.2f} | {tumor:.2f} "
        f"| {scoring:.3f} | {scoring / tumor:.3f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
