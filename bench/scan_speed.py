"""Cost of the liver scan (``candidate_scan``): the whole segmentation with the scan off and on.

Run by hand (the machine may be shared: note the load when quoting figures)::

    .venv/bin/python bench/scan_speed.py --threads 2 --limits 0,3

One phantom (default 512x512x300 voxels of 0.75 x 0.75 x 1.0 mm) is segmented by the bundled cards, the
networks loaded once per setting; each setting is run ``--repeat`` times in turn (interleaved, so that a change
of load hits every setting alike). The table gives the median seconds of the liver stage, the tumor stage (with
the scan), the whole run, the ratio of the whole run to the one without the scan, and the candidates each setting
lists; then the scan itself, timed alone on the whole CT with the last run's lesions, with the bundled settings
and without small findings (``small_radius_mm`` 0).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import _phantom_bench

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = _phantom_bench.parser(__doc__.splitlines()[0])
    parser.add_argument("--limits", default="0,3", help="scan limits (0: off)")
    args = parser.parse_args()

    from dataclasses import replace

    import numpy as np

    from SmoothSegNetLib.correction.scan import default_scan_settings, scan_liver
    from SmoothSegNetLib.inference import SegmentOptions
    from SmoothSegNetLib.inference.pipeline import Segmenter

    phantom = _phantom_bench.phantom(args)
    limits = [int(v) for v in args.limits.split(",")]
    segmenters = {n: Segmenter(SegmentOptions(device="cpu", threads=args.threads, candidate_scan=n)) for n in limits}
    times: dict[int, list[dict[str, float]]] = {n: [] for n in limits}
    listed: dict[int, int] = {}
    alone: list[float] = []
    bundled = default_scan_settings()
    without_small = replace(bundled, small_radius_mm=0.0)
    alone_large: list[float] = []
    count: dict[str, int] = {}
    for _ in range(args.repeat):
        for n, segmenter in segmenters.items():
            result = segmenter(phantom.ct)
            times[n].append(dict(result.timings_s))
            listed[n] = 0 if result.candidates is None else result.candidates.count
        for settings, times_of, name in ((bundled, alone, "bundled"), (without_small, alone_large, "no small")):
            t0 = time.perf_counter()
            found = scan_liver(phantom.ct.array, phantom.ct.geometry, result.labelmap, result.lesions, None, settings)
            times_of.append(time.perf_counter() - t0)
            count[name] = len(found)
    print(_phantom_bench.heading(args, f"median of {args.repeat}"))
    rows = [("off" if n == 0 else f"on ({n})", times[n], listed[n]) for n in limits]
    print("\n".join(_phantom_bench.stage_table("scan (findings kept)", rows, "total_s")))
    print("\nthe scan alone, every finding scored (as the pipeline runs it), on the last run's lesions:\n")
    print("| scan settings | s | findings |")
    print("|---|---|---|")
    print(
        f"| bundled (small findings within {bundled.small_radius_mm:g} mm) | {float(np.median(alone)):.2f} "
        f"| {count['bundled']} |"
    )
    print(f"| without small findings | {float(np.median(alone_large)):.2f} | {count['no small']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
