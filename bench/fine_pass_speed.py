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

import sys
from pathlib import Path

import _phantom_bench

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = _phantom_bench.parser(__doc__.splitlines()[0])
    parser.add_argument("--spacings", default="0,1.4,1.0", help="fine-pass spacings in mm (0: off)")
    args = parser.parse_args()

    from SmoothSegNetLib.inference import SegmentOptions
    from SmoothSegNetLib.inference.pipeline import Segmenter

    phantom = _phantom_bench.phantom(args)
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
    print(_phantom_bench.heading(args, f"median of {args.repeat}"))
    rows = [("off" if s == 0 else f"{s:g} mm", times[s], listed[s]) for s in fine]
    print("\n".join(_phantom_bench.stage_table("fine pass", rows, "tumor_s")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
