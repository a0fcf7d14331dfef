"""Resampling onto a network grid: SimpleITK against the SciPy path that training takes without SimpleITK.

Run by hand (the machine may be shared: note the load when quoting figures)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/resample_speed.py [--repeat 3]

A CT-sized array (float32 HU, and a uint8 label map) on an axis-aligned and on an oblique grid is resampled onto
the canonical 2 mm PLI grid (the tumor stage's) and onto 1.5 mm LPS, with linear (CT) and nearest (labels)
interpolation, by both paths in turn. The table gives the median seconds of each and their ratio, and how many
voxels differ (linear: by more than 1e-3; nearest: voxels that take another source voxel's label; they lie where
a destination centre falls exactly half-way between two source centres, see Testing/test_resample_without_simpleitk.py,
so only on label edges that cross such a plane). The labels are two nested balls, as a segmentation's are.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _seconds(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument("--shape", default="300,512,512", help="source shape k,j,i (default 300,512,512)")
    args = parser.parse_args()

    import numpy as np
    from scipy.spatial.transform import Rotation

    from SmoothSegNetLib import resample as r
    from SmoothSegNetLib.volume import Geometry

    shape = tuple(int(n) for n in args.shape.split(","))
    rng = np.random.default_rng(0)
    ct = rng.normal(60, 40, shape).astype(np.float32)
    # Labels like a segmentation: a 150 mm "liver" ball holding a 40 mm "lesion" ball (mm from the grid's centre).
    k, j, i = (np.arange(n, dtype=np.float32) - n / 2 for n in shape)
    r2 = (k[:, None, None] * 1.0) ** 2 + (j[None, :, None] * 0.75) ** 2 + (i[None, None, :] * 0.75) ** 2
    lesion2 = (k[:, None, None] - 20.0) ** 2 + ((j[None, :, None] - 30.0) * 0.75) ** 2 + (i[None, None, :] * 0.75) ** 2
    labels = ((r2 < 75.0**2).astype(np.uint8) + (lesion2 < 20.0**2)).astype(np.uint8)
    tilt = Rotation.from_euler("xz", [12, 7], degrees=True).as_matrix()
    sources = {
        "axis-aligned": Geometry.create(shape, (0.75, 0.75, 1.0), (-190.0, -190.0, 0.0)),
        "oblique": Geometry.create(shape, (0.75, 0.75, 1.0), (-190.0, -190.0, 0.0), tilt),
    }
    print(f"source {shape[2]}x{shape[1]}x{shape[0]} voxels of 0.75 x 0.75 x 1.0 mm, median of {args.repeat}")
    print()
    print("| source | destination | data | SimpleITK s | SciPy s | SciPy / SimpleITK | voxels that differ |")
    print("|---|---|---|---|---|---|---|")
    for name, src in sources.items():
        for label, dst in (
            ("2 mm PLI", r.canonical_geometry(src, 2.0, "PLI")),
            ("1.5 mm LPS", r.canonical_geometry(src, 1.5, "LPS")),
        ):
            for data, array, method in (("CT, linear", ct, "linear"), ("labels, nearest", labels, "nearest")):
                how = r.Interpolation(method)
                job = (array, src, dst, how, 0)
                itk_s, itk = _seconds(functools.partial(r._resample_sitk, *job), args.repeat)
                ours_s, ours = _seconds(functools.partial(r._resample_scipy, *job), args.repeat)
                a, b = np.asarray(itk, dtype=float), np.asarray(ours, dtype=float)
                differ = int(np.count_nonzero(np.abs(a - b) > 1e-3))
                print(
                    f"| {name} | {label} {dst.size_ijk[0]}x{dst.size_ijk[1]}x{dst.size_ijk[2]} | {data} "
                    f"| {itk_s:.2f} | {ours_s:.2f} | {ours_s / itk_s:.1f} | {differ} of {a.size} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
