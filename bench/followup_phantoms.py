"""Follow-up accuracy over phantom pairs: registration error at landmarks, lesion matching, response tables.

Run by hand (not by the tests)::

    .venv/bin/python bench/followup_phantoms.py                  # baseline seeds 1..24, follow-up seed 1
    .venv/bin/python bench/followup_phantoms.py --seeds 1-30 --size 96,96,64 --spacing 4,4,4

Each pair is ``make_phantom(seed, phase=arterial)`` and ``make_followup_phantom(seed, 1, phase=arterial)``.
The segmentation is the phantoms' **true** labelmap with the true lesion instances (each drawn lesion is one
instance), measured by ``report.measure`` exactly as the ``report`` command does; so the figures isolate
registration, matching and response assessment from segmentation errors. Then ``run_followup`` runs as the
``followup`` command does. Measured against the generator's truth (``clinical.json`` ground_truth.followup):

- registration error: 300 follow-up liver voxel centres q per pair, their true baseline position p = T(q)
  (the phantom's recorded motion); error = |R(p) - q| with R the registration (baseline -> follow-up).
- matching: each true correspondence (matched / disappeared / new) reproduced with the same lesion ids.
- response: confusion tables (truth rows, predicted columns) for RECIST 1.1 and mRECIST.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.followup.engine import run_followup
from SmoothSegNetLib.followup.visits import Visit
from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.phantom.followup import make_followup_phantom
from SmoothSegNetLib.phantom.motion import VisitTransform
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE
from SmoothSegNetLib.report import measure

CATEGORIES = ("CR", "PR", "SD", "PD", "NE")


def _visit(index: int, phantom: Any) -> tuple[Visit, dict[int, int]]:
    """A visit from the phantom's true labels; returns it and phantom lesion number -> report id."""
    labels = np.where(np.isin(phantom.labels, (1, 2)), phantom.labels, 0).astype(np.uint8)
    present = [n for n in range(1, len(phantom.lesions) + 1) if np.any(phantom.tissues == LESION_TISSUE_BASE + n - 1)]
    lesions = np.zeros(labels.shape, np.uint16)
    for new_id, n in enumerate(present, start=1):
        lesions[phantom.tissues == LESION_TISSUE_BASE + n - 1] = new_id
    report = measure(phantom.ct, labels, lesions)
    folder = Path(f"phantom-{phantom.info['seed']}-visit-{index}")
    visit = Visit(index, folder, report, phantom.ct, "(in memory)", labels, lesions, "arterial")
    return visit, {n: k for k, n in enumerate(present, start=1)}


def _truth_rows(truth: dict, base_ids: dict[int, int], fu_ids: dict[int, int]) -> set[tuple]:
    rows = set()
    for t in truth["lesions"]:
        b = base_ids.get(t["baseline_lesion"]) if t["baseline_lesion"] else None
        f = fu_ids.get(t["followup_lesion"]) if t["followup_lesion"] else None
        if b is None and f is None:
            continue
        rows.add(("matched" if b and f else ("new" if f else "disappeared"), b, f))
    return rows


def _landmark_errors(fu: Any, reg: Any, count: int = 300) -> np.ndarray:
    transform = VisitTransform.from_dict(fu.clinical["ground_truth"]["followup"]["transform"])
    k, j, i = np.nonzero(fu.labels == 1)
    pick = np.random.default_rng(0).choice(len(k), min(count, len(k)), replace=False)
    q = fu.ct.geometry.index_to_lps(np.stack([i[pick], j[pick], k[pick]], axis=1))
    return np.asarray(np.linalg.norm(reg.map_points(transform(q)) - q, axis=1))


def _table(name: str, pairs: list[tuple[str, str]]) -> str:
    counts = Counter(pairs)
    lines = [f"{name} (rows truth, columns predicted)", "truth\\pred " + " ".join(f"{c:>4}" for c in CATEGORIES)]
    for t in CATEGORIES:
        lines.append(f"{t:<10} " + " ".join(f"{counts[(t, p)]:>4}" for p in CATEGORIES))
    agree = sum(n for (t, p), n in counts.items() if t == p)
    lines.append(f"agreement {agree}/{len(pairs)}")
    return "\n".join(lines)


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-24")
    parser.add_argument("--size", default="96,96,64")
    parser.add_argument("--spacing", default="4,4,4")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split(","))
    spacing = tuple(float(v) for v in args.spacing.split(","))
    errors, rows_ok, rows_all, recist, mrecist = [], 0, 0, [], []
    out = sys.stdout
    out.write("seed scenario  lesions  dice   err_mean err_max  match  RECIST(t/p) mRECIST(t/p)  s\n")
    for seed in _seeds(args.seeds):
        start = time.perf_counter()
        base = make_phantom(seed, size, spacing, phase="arterial")
        fu = make_followup_phantom(seed, 1, size, spacing, phase="arterial")
        truth = fu.clinical["ground_truth"]["followup"]
        vb, base_ids = _visit(0, base)
        vf, fu_ids = _visit(1, fu)
        result = run_followup([vb, vf])
        err = _landmark_errors(fu, result.registrations[0])
        errors.append(err)
        predicted = {(m.status, m.baseline_id, m.followup_id) for m in result.matches[0]}
        expected = _truth_rows(truth, base_ids, fu_ids)
        rows_ok += len(expected & predicted)
        rows_all += len(expected)
        r = (truth["response"]["recist_1_1"]["response"], result.data["recist"]["response"])
        m = (truth["response"]["mrecist"]["response"], result.data["mrecist"]["response"])
        recist.append(r)
        mrecist.append(m)
        out.write(
            f"{seed:>4} {truth['scenario']:<9} {len(expected):>7}  {result.data['registration'][0]['liver_dice']:.3f}"
            f"  {err.mean():>7.2f} {err.max():>7.2f}  {len(expected & predicted)}/{len(expected)}"
            f"   {r[0]}/{r[1]}        {m[0]}/{m[1]}      {time.perf_counter() - start:.1f}\n"
        )
        out.flush()
    every = np.concatenate(errors)
    out.write(f"\npairs {len(errors)}; grid {size} at {spacing} mm; true labelmaps as the segmentation\n")
    out.write(
        f"registration error at landmarks: mean {every.mean():.2f} mm, max {every.max():.2f} mm "
        f"(worst pair mean {max(e.mean() for e in errors):.2f} mm)\n"
    )
    out.write(
        f"lesion matching: {rows_ok}/{rows_all} true correspondences reproduced ({100 * rows_ok / rows_all:.1f} %)\n\n"
    )
    out.write(_table("RECIST 1.1", recist) + "\n\n" + _table("mRECIST", mrecist) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
