"""Crops of the clicks ``add-lesion`` is tuned on, saved once so that settings can be tried in seconds.

For every missed lesion of the cache of :mod:`SmoothSegNetLib.evaluation.missed_lesions` (and one normal-liver
click per phantom, as :mod:`SmoothSegNetLib.evaluation.add_lesion_eval` chooses it) the box of input voxels
that :class:`SmoothSegNetLib.correction.add_lesion.PointSegmenter` works on is saved (``cases/<seed>-<n>.npz``:
the CT, the pipeline's labelmap and lesions, the true mask, the tumor network's probability of the click's
window) with what the phantom drew for that lesion (kind, contrast, rim, diameters, noise). A click's search
step (:meth:`PointSegmenter.search`) then runs on the crop alone, without remaking the phantom or running the
network again. The figures quoted for ``add-lesion`` still come from ``add_lesion_eval`` (the whole click).

Run: ``python -m SmoothSegNetLib.evaluation.add_lesion_cases --seeds 2004:2064 --cache build/add-lesion``.
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

from SmoothSegNetLib.evaluation.missed_lesions import record_grid, true_lesion_mask

log = logging.getLogger(__name__)

#: Lesion index of the normal-liver click of a phantom in the crop files (``<seed>-0.npz``; the extra ones
#: drawn with ``--normals`` for tuning are ``<seed>-n1.npz``, ...).
NORMAL = 0


def lesion_facts(seed: int, lesion: int) -> dict[str, Any]:
    """What the phantom drew for its lesion ``lesion`` (1-based) and its look (noise, phase, liver HU)."""
    from SmoothSegNetLib.phantom.generator import _draw_patient
    from SmoothSegNetLib.phantom.tissues import T

    patient = _draw_patient(seed, None)
    look = patient.look
    facts: dict[str, Any] = {
        "phase": look.phase.value,
        "noise_sigma_hu": round(look.noise_sigma_hu, 1),
        "psf_sigma_mm": round(look.psf_sigma_mm, 2),
        "liver_hu": round(float(look.hu_by_tissue[T.LIVER]), 1),
        "portal_vein_hu": round(float(look.hu_by_tissue[T.PORTAL_VEIN]), 1),
    }
    if lesion > 0:
        spec = patient.lesions[lesion - 1]
        facts.update(
            kind=spec.kind.value,
            diameters_mm=[round(d, 1) for d in spec.diameters_mm],
            delta_hu=round(spec.delta_hu, 1),
            rim_delta_hu=round(spec.rim_delta_hu, 1),
            rim_mm=round(spec.rim_mm, 1),
            necrosis_delta_hu=round(spec.necrosis_delta_hu, 1),
            margin_mm=round(spec.margin_mm, 2),
        )
    return facts


def save_seed(seed: int, cache: Path, normals: int = 1) -> int:
    """Save the crops of one cached phantom's clicks; the number saved."""
    from SmoothSegNetLib.correction.add_lesion import PointSegmenter, _point_voxel
    from SmoothSegNetLib.evaluation.add_lesion_eval import normal_point
    from SmoothSegNetLib.phantom import make_phantom
    from SmoothSegNetLib.resample import crop_geometry

    record = json.loads((cache / f"missed-{seed}.json").read_text(encoding="utf-8"))
    if not record["missed"]:
        return 0
    out = cache / "cases"
    out.mkdir(parents=True, exist_ok=True)
    size, spacing, oblique = record_grid(seed, record)
    phantom = make_phantom(seed, size, spacing, oblique)
    stored = np.load(cache / f"seg-{seed}.npz")
    labelmap, lesions = stored["labelmap"], stored["lesions"]
    geometry = phantom.ct.geometry
    segmenter = PointSegmenter("smoothsegnet-demo-tumor", threads=1)
    clicks = [(int(item["lesion"]), tuple(item["centre_lps_mm"])) for item in record["missed"]]
    for draw in range(normals):
        normal = normal_point(phantom.labels, labelmap, geometry, seed, draw)
        if normal is not None:
            clicks.append((NORMAL - draw, normal))
    for lesion, point in clicks:
        voxel = _point_voxel(point, geometry)  # type: ignore[arg-type]
        window, box = segmenter._window(geometry, point)  # type: ignore[arg-type]
        crop = crop_geometry(geometry, box)
        q = segmenter._probability(phantom.ct.array[box], labelmap[box] > 0, crop, window)
        truth = true_lesion_mask(phantom.tissues, lesion)[box] if lesion > 0 else np.zeros(q.shape, bool)
        facts = lesion_facts(seed, max(lesion, 0))
        facts.update(seed=seed, lesion=lesion, point_lps_mm=list(point))
        np.savez_compressed(
            out / (f"{seed}-{lesion}.npz" if lesion >= 0 else f"{seed}-n{-lesion}.npz"),
            hu=phantom.ct.array[box],
            labelmap=labelmap[box],
            lesions=lesions[box],
            phantom_labels=phantom.labels[box],
            truth=truth,
            q=q.astype(np.float16),
            voxel=np.array([v - b.start for v, b in zip(voxel, box)]),
            spacing_kji=np.array(crop.spacing_mm[::-1]),
            facts=json.dumps(facts),
        )
    return len(clicks)


def load_case(path: Path) -> dict[str, Any]:
    """One saved crop as a dict of arrays (``q`` as float32) and ``facts``."""
    with np.load(path) as data:
        case = {k: data[k] for k in data.files}
    case["q"] = case["q"].astype(np.float32)
    case["voxel"] = tuple(int(v) for v in case["voxel"])
    case["facts"] = json.loads(str(case["facts"]))
    return case


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2064", help="half-open range A:B of phantom seeds")
    parser.add_argument("--cache", type=Path, default=Path("build/add-lesion"))
    parser.add_argument("--normals", type=int, default=1, help="normal-liver clicks per phantom (1: the evaluation's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    first, _, end = args.seeds.partition(":")
    total = 0
    for seed in range(int(first), int(end)):
        if (args.cache / f"missed-{seed}.json").is_file():
            total += save_seed(seed, args.cache, args.normals)
    sys.stdout.write(f"{total} crop(s) saved under {args.cache / 'cases'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
