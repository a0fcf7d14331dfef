"""Why lesions are missed: the pipeline stage that loses each true lesion, per RECIST size band.

Each tuning phantom (never a held-out one) is segmented by the real pipeline with its probability maps kept;
every true lesion (the phantom's own lesion ids, so touching lesions stay apart) is then followed through the
stages in order and given the first stage that loses it:

* ``outside liver``: under half of its voxels lie in the liver mask (the tumor network never looks there);
* ``low probability``: the tumor probability reaches 0.5 nowhere in it;
* ``refinement``: a voxel reaches 0.5 but no tumor component touches it after hole filling and the Chan–Vese
  refinement;
* ``volume floor`` / ``confidence floor``: the components that touch it are all under the volume floor, or
  some reach it but not the confidence floor;
* ``detected``: a component that passes both floors touches it.

The phantoms are segmented with no floors at all, so every floor can be applied afterwards.

Besides the stage, each record keeps the lesion's size, kind, contrast, its highest and mean probability and the
components that touch it, and each case keeps every tumor component with its volume, confidence and whether it
touches a true lesion, so that floors can be tried without running the networks again (:func:`sweep_floors`).
The phantoms are made on the held-out grid of their seed with twice the in-plane voxel size (as
:mod:`SmoothSegNetLib.evaluation.missed_lesions` does; the tumor network works at 2 mm).

Run: ``python -m SmoothSegNetLib.evaluation.small_lesions --seeds 2004:2064 --cache build/small-lesions``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.evaluation.lesions import RECIST_BINS, recist_bin
from SmoothSegNetLib.evaluation.missed_lesions import IN_PLANE_FACTOR

log = logging.getLogger(__name__)

Floors = tuple[float, "float | None"]

#: ``min_lesion_hu`` that keeps every component (no median is under the lowest CT value).
NO_HU_FLOOR = -1024.0

#: Segment options that switch every lesion floor off (the card's included).
FLOORS_OFF: dict[str, Any] = {
    "min_lesion_ml": 0.0,
    "min_lesion_confidence": 0.0,
    "min_lesion_hu": NO_HU_FLOOR,
    "min_lesion_score": 0.0,
}

STAGES = ("outside liver", "low probability", "refinement", "volume floor", "confidence floor", "detected")


def lesion_stage(in_liver: float, max_probability: float, found: Sequence[dict[str, float]], floors: Floors) -> str:
    """The first stage that loses a lesion (see the module docstring).

    Args:
        in_liver: share of the lesion's voxels in the liver mask.
        max_probability: highest tumor probability in it.
        found: the tumor components (found with no floor) that touch it: ``volume_ml`` and ``confidence``.
        floors: ``(min_lesion_ml, min_lesion_confidence or None)``.
    """
    min_ml, min_conf = floors
    if any(c["volume_ml"] >= min_ml and (min_conf is None or c["confidence"] >= min_conf) for c in found):
        return "detected"
    if in_liver < 0.5:
        return "outside liver"
    if max_probability < 0.5:
        return "low probability"
    if not found:
        return "refinement"
    return "volume floor" if all(c["volume_ml"] < min_ml for c in found) else "confidence floor"


def analyse_case(phantom: Any, result: Any) -> dict[str, Any]:
    """Records of one phantom segmented with no lesion floors (``segment`` with ``probability_map`` and
    ``min_lesion_ml=0``): per true lesion its size, look, probabilities and touching components; and every
    predicted component with its volume, confidence, median HU, the phantom tissue under most of it and whether
    it touches a true lesion."""
    from scipy import ndimage

    from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE
    from SmoothSegNetLib.report.recist import recist_axes

    geometry = phantom.ct.geometry
    voxel_ml = geometry.voxel_volume_mm3 / 1000.0
    liver = result.labelmap > 0
    q = result.probability["tumor"].astype(np.float32)
    ids = result.lesions
    count = int(ids.max())
    sizes = np.bincount(ids.ravel(), minlength=count + 1)
    comp = {
        n: {"volume_ml": round(float(sizes[n]) * voxel_ml, 4), "confidence": round(float(result.confidence[n]), 4)}
        for n in range(1, count + 1)
    }
    liver_hu = float(np.median(phantom.ct.array[phantom.labels == 1]))
    records = []
    for lesion in phantom.lesions:
        mask = phantom.tissues == LESION_TISSUE_BASE + lesion.id - 1
        if not mask.any():
            continue
        axes = recist_axes(mask, geometry)
        median = float(np.median(phantom.ct.array[mask]))
        records.append(
            {
                "lesion": lesion.id,
                "kind": lesion.kind,
                "long_axis_mm": round(0.0 if axes is None else float(axes.long_axis_mm), 2),
                "volume_ml": round(float(mask.sum()) * voxel_ml, 4),
                "delta_hu": round(float(lesion.delta_hu), 1),
                "contrast_hu": round(median - liver_hu, 1),
                "median_hu": round(median, 1),
                "in_liver": round(float(liver[mask].mean()), 3),
                "max_probability": round(float(q[mask].max()), 3),
                "mean_probability": round(float(q[mask].mean()), 3),
                "found": [comp[int(n)] for n in np.unique(ids[mask]) if n],
            }
        )
    index = np.arange(1, count + 1)
    touches = ndimage.maximum((phantom.labels == 2).astype(np.uint8), ids, index)
    median_hu = np.atleast_1d(ndimage.median(phantom.ct.array.astype(np.float32), ids, index))
    boxes = ndimage.find_objects(ids, max_label=count)
    components = [
        {
            **comp[n],
            "true": bool(touches[n - 1]),
            "median_hu": round(float(median_hu[n - 1]), 1),
            "on": _tissue_under(phantom.tissues[boxes[n - 1]][ids[boxes[n - 1]] == n]),
        }
        for n in range(1, count + 1)
    ]
    return {"lesions": records, "components": components}


def _tissue_under(tissues: np.ndarray) -> str:
    """The phantom tissue under most of a component's voxels (``lesion`` for any lesion tissue)."""
    from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE, T

    values, counts = np.unique(tissues, return_counts=True)
    top = int(values[np.argmax(counts)])
    return "lesion" if top >= LESION_TISSUE_BASE else T(top).name.lower()


def segment_without_floors(
    seed: int, threads: int | None, options: dict[str, Any], in_plane_factor: float = IN_PLANE_FACTOR
) -> tuple[Any, Any]:
    """``(phantom, result)``: one phantom on its evaluation grid (``in_plane_factor`` times the held-out grid's
    in-plane voxels, :func:`~SmoothSegNetLib.evaluation.missed_lesions.evaluation_grid`),
    segmented by the real pipeline with its probability maps kept and every lesion floor off (the card's
    included: a confidence or score floor would hide the components under it)."""
    from SmoothSegNetLib.evaluation.missed_lesions import evaluation_grid
    from SmoothSegNetLib.inference import SegmentOptions, segment
    from SmoothSegNetLib.phantom import make_phantom

    size, spacing, oblique = evaluation_grid(seed, in_plane_factor)
    phantom = make_phantom(seed, size, spacing, oblique)
    result = segment(
        phantom.ct, SegmentOptions(device="cpu", threads=threads, probability_map=True, **{**FLOORS_OFF, **options})
    )
    return phantom, result


def write_record(record: Path, data: dict[str, Any]) -> None:
    """Write one case's JSON record whole (a temporary name, then renamed)."""
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
    tmp.replace(record)


def collect(seed: int, cache: Path, threads: int | None, options: dict[str, Any]) -> dict[str, Any]:
    """Segment one phantom (or read its cache) and analyse it."""
    record = cache / f"stages-{seed}.json"
    if record.is_file():
        return dict(json.loads(record.read_text(encoding="utf-8")))
    phantom, result = segment_without_floors(seed, threads, options)
    data = {"seed": seed, "phase": str(phantom.info.get("phase")), **analyse_case(phantom, result)}
    write_record(record, data)
    return data


def stage_table(cases: Sequence[dict[str, Any]], floors: Floors) -> str:
    """Markdown table: per RECIST band, how many lesions each stage loses with the given floors."""
    rows = ["| band | n | " + " | ".join(STAGES) + " | median max p |", "|---" * (len(STAGES) + 3) + "|"]
    for band, _, _ in RECIST_BINS:
        recs = _band(cases, band)
        counts = dict.fromkeys(STAGES, 0)
        for r in recs:
            counts[_stage(r, floors)] += 1
        med = float(np.median([r["max_probability"] for r in recs])) if recs else math.nan
        rows.append(f"| {band} | {len(recs)} | " + " | ".join(str(counts[s]) for s in STAGES) + f" | {med:.2f} |")
    return "\n".join(rows)


def candidate_catch(cases: Sequence[dict[str, Any]], floors: Floors) -> tuple[int, int]:
    """``(caught, missed)``: of the true lesions that no accepted lesion touches, how many a candidate (a
    component the floors dropped, listed for review) touches."""
    stages = [_stage(r, floors) for c in cases for r in c["lesions"]]
    missed = [s for s in stages if s != "detected"]
    return sum(s in ("volume floor", "confidence floor") for s in missed), len(missed)


def _band(cases: Sequence[dict[str, Any]], band: str) -> list[dict[str, Any]]:
    return [r for c in cases for r in c["lesions"] if recist_bin(r["long_axis_mm"]) == band]


def _stage(record: dict[str, Any], floors: Floors) -> str:
    return lesion_stage(record["in_liver"], record["max_probability"], record["found"], floors)


def sweep_floors(
    cases: Sequence[dict[str, Any]], min_mls: Sequence[float], min_confs: Sequence[float | None]
) -> list[dict[str, Any]]:
    """Recall per band (hits, n) and precision for each pair of floors, from the cached components."""
    out = []
    for min_ml in min_mls:
        for min_conf in min_confs:
            row: dict[str, Any] = {"min_lesion_ml": min_ml, "min_lesion_confidence": min_conf}
            for band, _, _ in RECIST_BINS:
                recs = _band(cases, band)
                row[band] = (sum(_stage(r, (min_ml, min_conf)) == "detected" for r in recs), len(recs))
            kept = [
                comp
                for c in cases
                for comp in c["components"]
                if comp["volume_ml"] >= min_ml and (min_conf is None or comp["confidence"] >= min_conf)
            ]
            row["predicted"] = len(kept)
            row["precision"] = sum(k["true"] for k in kept) / len(kept) if kept else math.nan
            out.append(row)
    return out


def sweep_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`sweep_floors`."""
    bands = [b for b, _, _ in RECIST_BINS]
    out = ["| min ml | min confidence | " + " | ".join(f"recall {b}" for b in bands) + " | predicted | precision |"]
    out.append("|---" * (len(bands) + 4) + "|")
    for r in rows:
        cells = [f"{r[b][0] / r[b][1]:.2f} ({r[b][0]}/{r[b][1]})" if r[b][1] else "-" for b in bands]
        conf = "none" if r["min_lesion_confidence"] is None else f"{r['min_lesion_confidence']:g}"
        out.append(
            f"| {r['min_lesion_ml']:g} | {conf} | "
            + " | ".join(cells)
            + f" | {r['predicted']} | {r['precision']:.2f} |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2064", help="half-open range A:B of (tuning) phantom seeds")
    parser.add_argument("--cache", type=Path, default=Path("build/small-lesions"), help="cache folder")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the networks")
    parser.add_argument("--liver-model", default=None, help="liver model card (default: the bundled one)")
    parser.add_argument("--tumor-model", default=None, help="tumor model card (default: the bundled one)")
    parser.add_argument("--min-lesion-ml", type=float, default=0.5, help="volume floor of the stage table")
    parser.add_argument("--min-lesion-confidence", type=float, default=None, help="confidence floor of the table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    first, _, end = args.seeds.partition(":")
    options = {k: v for k, v in (("liver_model", args.liver_model), ("tumor_model", args.tumor_model)) if v}
    cases = []
    for seed in range(int(first), int(end)):
        cases.append(collect(seed, args.cache, args.threads, options))
        log.info("phantom %d: %d lesion(s)", seed, len(cases[-1]["lesions"]))
    floors = (args.min_lesion_ml, args.min_lesion_confidence)
    caught, missed = candidate_catch(cases, floors)
    sys.stdout.write(f"Seeds {args.seeds}, floors {floors}:\n\n{stage_table(cases, floors)}\n\n")
    sys.stdout.write(f"candidates catch {caught} of the {missed} lesions that the accepted lesions miss\n\n")
    sweep = sweep_floors(cases, [0.0, 0.02, 0.05, 0.1, 0.2, 0.5], [None, 0.6, 0.7, 0.8, 0.9])
    sys.stdout.write(sweep_table(sweep) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
