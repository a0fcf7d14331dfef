"""Cost of the fine pass (``candidate_fine_spacing_mm``): the whole segmentation with it off and at each spacing.

Run by hand (the machine may be shared: note the load when quoting figures)::

    .venv/bin/python bench/fine_pass_speed.py --threads 2 --spacings 0,1.4,1.0

One phantom (default 512x512x300 voxels of 0.75 x 0.75 x 1.0 mm) is segmented by the bundled cards, the
networks loaded once per setting; each setting is run ``--repeat`` times in turn (interleaved, so that a change
of load hits every setting alike) and the table gives the median seconds of the liver stage, the tumor stage
(with the fine pass) and the whole run, the ratio of the tumor stage to the one without the fine pass, and the
candidates each setting lists.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
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
    parser.add_argument("--spacings", default="0,1.4,1.0", help="fine-pass spacings in mm (0: off)")
    args = parser.parse_args()

    from SmoothSegNetLib.inference import SegmentOptions
    from SmoothSegNetLib.inference.pipeline import Segmenter
    from SmoothSegNetLib.phantom import make_phantom

    size = tuple(int(v) for v in args.size.split(","))
    spacing = tuple(float(v) for v in args.spacing.split(","))
    phantom = make_phantom(args.seed, size, spacing)
    fine = [float(v) for v in args.spacings.split(",")]
    segmenters = {
        s: Segmenter(SegmentOptions(device="cpu", threads=args.threads, candidate_fine_spacing_mm=s)) for s in fine
    }
    times: dict[float, list[dict[str, float]]] = {s: [] for s in fine}
    listed: dict[float, int] = {}
    for _ in range(args.repeat):
        for s, segmenter in segmenters.items():
            result = segmenter(phantom.ct)
            times[s].append(dict(result.timings_s))
            listed[s] = 0 if result.candidates is None else result.candidates.count
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"phantom seed {args.seed}, {size[0]}x{size[1]}x{size[2]} voxels of {spacing} mm, threads {args.threads}, "
          f"median of {args.repeat}, load average {load:.1f}")  # fmt: skip
    print("| fine pass | liver stage s | tumor stage s | total s | tumor stage / without | candidates |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(t["tumor_s"] for t in times[fine[0]]) if fine[0] == 0 else None
    for s in fine:
        liver = statistics.median(t["liver_s"] for t in times[s])
        tumor = statistics.median(t["tumor_s"] for t in times[s])
        total = statistics.median(t["total_s"] for t in times[s])
        ratio = f"{tumor / base:.2f}" if base else "–"
        name = "off" if s == 0 else f"{s:g} mm"
        print(f"| {name} | {liver:.2f} | {tumor:.2f} | {total:.2f} | {ratio} | {listed[s]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
