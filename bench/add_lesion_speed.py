"""Speed of ``add-lesion`` on a 512x512x300 CT: the engine's click (target: under 1 s on the CPU) and the CLI.

Run by hand (the machine may be shared: note the load when quoting figures)::

    .venv/bin/python bench/add_lesion_speed.py --threads 2

A phantom is made on 512x512x300 voxels of 0.75 x 0.75 x 1.0 mm; its exact labels without lesion 1 stand for a
segmentation that missed it. The tumor card is loaded once (as Slicer keeps it), then the click at the lesion's
centre is timed ``--repeat`` times (steps: window and crop, network window, search), and so are a click half the
lesion's radius off its centre (re-centred) and a click on normal liver, which every way of the search tries and
refuses (growing, the rim fit, the network). ``--baseline JSON`` times the same clicks with other settings in the
same run, in a second column (compare ratios, not seconds between runs). With ``--cli`` the whole
``smoothsegnet add-lesion`` (read the folder and CT, click, re-measure, write every file) is timed once too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import _phantom_bench
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "Testing"))


def main() -> int:
    parser = _phantom_bench.parser(__doc__.splitlines()[0])
    parser.add_argument("--lesion", type=int, default=1, help="the phantom's lesion taken out of its labels")
    parser.add_argument("--cli", action="store_true", help="also time the whole command line")
    parser.add_argument(
        "--settings", default="{}", help="JSON overrides of the add-lesion settings, e.g. '{\"star_directions\": 60}'"
    )
    parser.add_argument(
        "--baseline", help="JSON overrides of a second column timed in the same run, e.g. '{\"recentre\": false}'"
    )
    args = parser.parse_args()

    from _add_lesion_helpers import missed_case, write_case_folder

    from SmoothSegNetLib.correction.add_lesion import PointSegmenter
    from SmoothSegNetLib.correction.recentre import equivalent_radius_mm
    from SmoothSegNetLib.correction.settings import AddLesionSettings, default_settings
    from SmoothSegNetLib.errors import InputError
    from SmoothSegNetLib.evaluation.add_lesion_eval import normal_point

    t0 = time.perf_counter()
    phantom = _phantom_bench.phantom(args)
    made = time.perf_counter() - t0
    labels, lesions, truth, centre = missed_case(phantom, args.lesion)
    overrides = json.loads(args.settings)
    columns = {"settings": overrides}
    if args.baseline is not None:
        columns["baseline"] = json.loads(args.baseline)
    normal = normal_point(phantom.labels, labels, phantom.ct.geometry, seed=0)
    radius = equivalent_radius_mm(truth, np.asarray(phantom.ct.geometry.spacing_mm[::-1]))
    off_centre = (centre[0] + 0.5 * radius, centre[1], centre[2])
    table: dict[str, dict[str, float]] = {}
    results = {}
    for column, changes in columns.items():
        t0 = time.perf_counter()
        settings = AddLesionSettings.from_dict({**asdict(default_settings()), **changes})
        segmenter = PointSegmenter("smoothsegnet-demo-tumor", threads=args.threads, settings=settings)
        table.setdefault("tumor card + weights loaded (once)", {})[column] = time.perf_counter() - t0
        runs = []
        for _ in range(args.repeat):
            cpu0 = time.process_time()
            added = segmenter(phantom.ct, labels, lesions, tuple(centre))
            # CPU seconds of this process (all its threads): what the click costs on an idle machine's cores,
            # whatever else the (shared) machine runs meanwhile.
            runs.append({**added.timings_s, "cpu_s": time.process_time() - cpu0})
        results[column] = added
        for key, label in (
            ("prepare_s", "window and crop"),
            ("network_s", "network window + map back"),
            ("search_s", "search"),
            ("total_s", "click total"),
            ("cpu_s", "click CPU time, all threads"),
        ):
            if all(key in r for r in runs):
                table.setdefault(f"{label} (median of {args.repeat})", {})[column] = statistics.median(
                    r[key] for r in runs
                )
        for name, point in (
            ("off-centre click, half the radius along x", off_centre),
            ("refused click on normal liver", normal),
        ):
            seconds = []
            for _ in range(args.repeat if point is not None else 0):
                t0 = time.perf_counter()
                try:
                    segmenter(phantom.ct, labels, lesions, tuple(point))  # type: ignore[arg-type]
                except InputError:
                    pass
                seconds.append(time.perf_counter() - t0)
            if seconds:
                table.setdefault(f"{name}, total (median of {len(seconds)})", {})[column] = statistics.median(seconds)
    rows = [("phantom made (not part of a click)", {"settings": made}), *table.items()]
    if args.cli:
        with tempfile.TemporaryDirectory() as tmp:
            out = write_case_folder(Path(tmp), phantom, labels, lesions)
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "SmoothSegNetLib", "add-lesion", str(out), "--at=" + ",".join(map(str, centre)),
                 "--threads", str(args.threads)],
                check=True, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
            )  # fmt: skip
            rows.append(
                ("smoothsegnet add-lesion (whole command, bundled settings)", {"settings": time.perf_counter() - t0})
            )
    load_avg = os.getloadavg()[0]
    sys.stdout.write(
        f"add-lesion on {args.size} @ {args.spacing} mm, {args.threads} thread(s), load {load_avg:.1f}, "
        f"settings overrides {overrides}"
        + (f", baseline overrides {columns['baseline']}" if "baseline" in columns else "")
        + "\n"
    )
    names = list(columns)
    sys.stdout.write("| step | " + " | ".join(f"{n} s" for n in names) + " |\n|---|" + "---|" * len(names) + "\n")
    for label, values in rows:
        cells = " | ".join(f"{values[n]:.2f}" if n in values else "" for n in names)
        sys.stdout.write(f"| {label} | {cells} |\n")
    added = results["settings"]
    mask = np.zeros(truth.shape, dtype=bool)
    mask[added.box] = added.mask
    overlap = 2.0 * np.count_nonzero(mask & truth) / (np.count_nonzero(mask) + np.count_nonzero(truth))
    sys.stdout.write(f"added {added.voxel_count} voxels by {added.method}; Dice {overlap:.3f} (true lesion)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
