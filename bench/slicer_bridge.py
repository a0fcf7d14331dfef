"""Timings of the Slicer bridge on a real MRML scene (slicer-core), side by side with Slicer's own export.

Run by hand (not by the tests)::

    .venv/bin/python bench/slicer_bridge.py            # 512 x 512 x {120, 400} slices, 1 / 10 / 30 lesions
    .venv/bin/python bench/slicer_bridge.py --quick    # 256 x 256 x {40, 120} slices, same lesion counts

For each size a synthetic CT (an elliptic liver of 60 HU in 40 HU soft tissue, air outside, uniform noise
of +-20 HU) is put in a real scene; for each lesion count, spherical lesions (radius 4-15 mm, 140 HU) are
placed inside the liver and a ``segment``-like output folder is written (not timed). Columns, in seconds
(best of ``--repeats``):

- ``CT write``: the input CT written for the child process, as ``SmoothSegNetRunner.process`` writes it
  (:func:`SmoothSegNetLib.io.writers.write_volume`, gzip NRRD) and uncompressed (``raw``).
- ``import``: :func:`SmoothSegNetLib.mrml.import_result` (files -> segmentation node, one segment per lesion).
- ``Slicer export``: one ``vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode`` of all
  segments onto the CT grid, plus ``arrayFromVolume``: Slicer's own cost of turning segments into voxels.
- ``to labelmap``: :func:`SmoothSegNetLib.mrml.labelmap_from_segmentation` (what re-measuring starts with),
  and its ratio to ``Slicer export`` (the issue-15 target is at most 2x).
- ``re-measure``: the report of the current segments (``slicer_support.session.recompute_report``).
- ``table``: :func:`SmoothSegNetLib.mrml.table_from_report` (report -> table node).
- ``export``: ``slicer_support.session.write_export`` (NRRDs, report.json/csv and overview.png).

The machine may be shared: compare the ratios, not the seconds, between runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib import mrml
from SmoothSegNetLib.io.writers import write_labelmap, write_volume
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.slicer_support.session import EditedResult, recompute_report, write_export
from SmoothSegNetLib.volume import CTVolume, Geometry

SPACING_MM = (0.75, 0.75, 2.5)
LESION_COUNTS = (1, 10, 30)


def best_of(repeats: int, function: Callable[[], Any]) -> tuple[float, Any]:
    """The shortest of ``repeats`` wall-clock times of ``function()`` (s) and its last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_case(columns: int, slices: int, lesion_count: int, seed: int) -> tuple[CTVolume, np.ndarray, np.ndarray]:
    """(CT, labelmap 1 liver 2 tumor, lesions 1..n) with ``lesion_count`` non-touching spheres in the liver."""
    shape = (slices, columns, columns)
    geometry = Geometry.create(shape, SPACING_MM, (-190.0, -190.0, 0.0))
    k, j, i = np.ogrid[0:slices, 0:columns, 0:columns]
    body = ((i - columns / 2) / (0.45 * columns)) ** 2 + ((j - columns / 2) / (0.35 * columns)) ** 2 <= 1.0
    centre = np.array([slices / 2, 0.45 * columns, 0.38 * columns])
    radii = np.array([0.4 * slices, 0.2 * columns, 0.2 * columns])
    liver = ((k - centre[0]) / radii[0]) ** 2 + ((j - centre[1]) / radii[1]) ** 2 + ((i - centre[2]) / radii[2]) ** 2
    liver = liver <= 1.0
    labelmap = liver.astype(np.uint8)
    lesions = np.zeros(shape, np.uint16)
    rng = np.random.default_rng(seed)
    spacing_kji = np.array(SPACING_MM[::-1])
    placed: list[tuple[np.ndarray, float]] = []
    while len(placed) < lesion_count:
        radius_mm = float(rng.uniform(4.0, 15.0))
        point = centre + rng.uniform(-0.6, 0.6, 3) * radii
        if any(np.linalg.norm((point - p) * spacing_kji) < radius_mm + r + 2.0 for p, r in placed):
            continue
        placed.append((point, radius_mm))
    for n, (point, radius_mm) in enumerate(sorted(placed, key=lambda pr: -pr[1]), start=1):
        r = np.ceil(radius_mm / spacing_kji).astype(int) + 1
        low = np.maximum(np.round(point).astype(int) - r, 0)
        high = np.minimum(np.round(point).astype(int) + r + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(low, high))
        grid = np.ogrid[box]
        sphere = sum(((g - p) * s) ** 2 for g, p, s in zip(grid, point, spacing_kji)) <= radius_mm**2
        sphere &= liver[box]
        lesions[box][sphere] = n
        labelmap[box][sphere] = 2
    ct = np.broadcast_to(np.where(body, 40, -1000).astype(np.int16), shape).copy()
    ct[labelmap == 1] = 60
    ct[labelmap == 2] = 140
    ct += rng.integers(-20, 21, size=shape, dtype=np.int16)  # noise: a real CT does not gzip to nothing
    return CTVolume(ct, geometry), labelmap, lesions


def slicer_export_all(node: Any, volume: Any) -> np.ndarray:
    """Slicer's own export of every segment into one labelmap node on the CT grid (the yardstick)."""
    import slicer

    scene = node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__bench__")
    try:
        ids = [node.GetSegmentation().GetNthSegmentID(n) for n in range(node.GetSegmentation().GetNumberOfSegments())]
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            node, ids, labelmap, volume, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        )
        if not ok:
            raise RuntimeError("ExportSegmentsToLabelmapNode failed")
        return np.array(slicer.util.arrayFromVolume(labelmap))
    finally:
        scene.RemoveNode(labelmap)


def add_volume(scene: Any, ct: CTVolume) -> Any:
    import slicer

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    slicer.util.updateVolumeFromArray(node, ct.array)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ct.geometry.ijk_to_ras()))
    return node


def bench_case(ct: CTVolume, labelmap: np.ndarray, lesions: np.ndarray, work: Path, repeats: int) -> dict[str, float]:
    folder = work / "segment"
    folder.mkdir(parents=True, exist_ok=True)
    write_labelmap(folder / "segmentation.nrrd", labelmap, ct.geometry)
    write_labelmap(folder / "lesions.nrrd", lesions, ct.geometry)
    (folder / "report.json").write_text(json.dumps(measure(ct, labelmap, lesions)), encoding="utf-8")
    headless = mrml.create_headless_scene()
    volume = add_volume(headless.scene, ct)
    times: dict[str, float] = {}
    times["import"], node = best_of(repeats, lambda: mrml.import_result(headless.scene, folder, volume))
    times["slicer"], _ = best_of(repeats, lambda: slicer_export_all(node, volume))
    times["labelmap"], arrays = best_of(repeats, lambda: mrml.labelmap_from_segmentation(node, volume))
    if not np.array_equal(arrays.labelmap, labelmap) or not np.array_equal(arrays.lesions, lesions):
        raise RuntimeError("labelmap_from_segmentation did not give back the imported labelmap")
    result = EditedResult(arrays.labelmap, arrays.lesions, arrays.lesion_ids, arrays.edited_lesion_ids)
    times["measure"], report = best_of(repeats, lambda: recompute_report(ct, result, None))
    times["table"], _ = best_of(repeats, lambda: mrml.table_from_report(headless.scene, report))
    counter = iter(range(10**6))
    times["export"], _ = best_of(repeats, lambda: write_export(work / f"export{next(counter)}", ct, result, report))
    return times


def bench_ct_write(ct: CTVolume, work: Path, repeats: int) -> tuple[float, float]:
    """(gzip NRRD as the runner writes it today, uncompressed NRRD) seconds."""
    import SimpleITK as sitk

    counter = iter(range(10**6))
    gzip_s, _ = best_of(repeats, lambda: write_volume(work / f"gz{next(counter)}.nrrd", ct))

    def raw() -> None:
        image = sitk.GetImageFromArray(ct.array)
        image.SetSpacing(ct.geometry.spacing_mm)
        sitk.WriteImage(image, str(work / f"raw{next(counter)}.nrrd"), useCompression=False)

    raw_s, _ = best_of(repeats, raw)
    return gzip_s, raw_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 x 256 x {40, 120} instead of 512 x 512 x {120, 400}")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs per step")
    parser.add_argument("--lesions", type=int, nargs="+", default=list(LESION_COUNTS), help="lesion counts")
    args = parser.parse_args(argv)
    columns, slice_counts = (256, (40, 120)) if args.quick else (512, (120, 400))
    header = (
        f"{'size':>14} {'lesions':>7} {'CT write gz/raw':>16} {'import':>7} {'Slicer export':>13} "
        f"{'to labelmap':>11} {'ratio':>6} {'re-measure':>10} {'table':>6} {'export':>7}"
    )
    print(header)
    print("-" * len(header))
    for slices in slice_counts:
        for count in args.lesions:
            ct, labelmap, lesions = make_case(columns, slices, count, seed=slices + count)
            with tempfile.TemporaryDirectory(prefix="bench-bridge-") as folder:
                gzip_s, raw_s = bench_ct_write(ct, Path(folder), args.repeats)
                t = bench_case(ct, labelmap, lesions, Path(folder), args.repeats)
            print(
                f"{f'{columns}x{columns}x{slices}':>14} {count:>7} {f'{gzip_s:.2f}/{raw_s:.2f}':>16} "
                f"{t['import']:>7.2f} {t['slicer']:>13.2f} {t['labelmap']:>11.2f} "
                f"{t['labelmap'] / t['slicer']:>5.1f}x {t['measure']:>10.2f} {t['table']:>6.2f} {t['export']:>7.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
