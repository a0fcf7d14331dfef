"""What happens to a phantom's lesions between two visits (after TACE), and the true response it implies.

A scenario is drawn first (``CR``, ``PR``, ``SD``, ``PD_growth``, ``PD_new``) and every lesion gets the same
size factor (with a little jitter), chosen far from the RECIST 1.1 thresholds so the true response is not a
matter of a millimetre. Each surviving lesion may also take up lipiodol (very dense, > 300 HU) or become
necrotic (fluid density): it keeps its size (RECIST) but has no viable, enhancing tissue left (mRECIST).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from SmoothSegNetLib.phantom.lesions import LesionSpec, _fits, _liver_points
from SmoothSegNetLib.phantom.shapes import Ellipsoid, Waves, rotation_matrix
from SmoothSegNetLib.phantom.tissues import LesionKind, Phase
from SmoothSegNetLib.phantom.vessels import LiverTest

SCENARIOS = {"CR": 0.1, "PR": 0.3, "SD": 0.25, "PD_growth": 0.15, "PD_new": 0.2}
SCALE = {"CR": (0.0, 0.0), "PR": (0.4, 0.6), "SD": (0.93, 1.05), "PD_growth": (1.4, 1.6), "PD_new": (0.93, 1.05)}
LIPIODOL_PROBABILITY = 0.2
NECROSIS_PROBABILITY = 0.2
MEASURABLE_MM = 10.0


@dataclass(frozen=True)
class Fate:
    """One follow-up lesion's truth: ``baseline_index``/``followup_index`` 0-based (None if absent)."""

    baseline_index: int | None
    followup_index: int | None
    change: str  # shrink | grow | stable | disappear | new
    scale: float
    state: str  # viable | lipiodol | necrotic | non_enhancing


def _scaled(spec: LesionSpec, s: float) -> LesionSpec:
    e = spec.ellipsoid
    ell = Ellipsoid(e.center, tuple(v * s for v in e.semi_axes_mm), e.rotation, e.waves)  # type: ignore[arg-type]
    return dataclasses.replace(spec, ellipsoid=ell, diameters_mm=tuple(d * s for d in spec.diameters_mm))  # type: ignore[arg-type]


def _treated(spec: LesionSpec, state: str, rng: np.random.Generator, liver_hu: float) -> LesionSpec:
    if state == "lipiodol":
        delta = float(rng.uniform(450.0, 700.0)) - liver_hu
        kind = LesionKind.HYPERDENSE
    else:
        delta = float(rng.uniform(10.0, 25.0)) - liver_hu
        kind = LesionKind.HYPODENSE
    return dataclasses.replace(spec, kind=kind, delta_hu=delta, rim_delta_hu=0.0, necrosis_delta_hu=0.0, texture=None)


def viable_at_baseline(spec: LesionSpec, phase: Phase) -> bool:
    """An HCC nodule enhances in the arterial phase: hyperdense or rim-enhancing there counts as viable."""
    return phase == Phase.ARTERIAL and spec.kind in (LesionKind.HYPERDENSE, LesionKind.RIM_ENHANCING)


def draw_followup_lesions(
    rng: np.random.Generator,
    lesions: list[LesionSpec],
    liver_bbox: tuple,
    in_liver: LiverTest,
    liver_hu: float,
) -> tuple[str, list[LesionSpec], list[Fate]]:
    """The follow-up lesions (baseline survivors in order, then new ones) and each lesion's fate."""
    scenario = str(rng.choice(list(SCENARIOS), p=np.array(list(SCENARIOS.values())) / sum(SCENARIOS.values())))
    if not lesions:
        scenario = "PD_new" if rng.random() < 0.5 else "SD"
    lo, hi = SCALE[scenario]
    base = float(rng.uniform(lo, hi))
    out: list[LesionSpec] = []
    fates: list[Fate] = []
    for n, spec in enumerate(lesions):
        s = base * float(rng.uniform(0.98, 1.02)) if base > 0 else 0.0
        if s == 0.0 or spec.diameters_mm[0] * s < 4.0:
            fates.append(Fate(n, None, "disappear", 0.0, "gone"))
            continue
        change = "shrink" if s < 0.9 else ("grow" if s > 1.1 else "stable")
        u = rng.random()
        state = "lipiodol" if u < LIPIODOL_PROBABILITY else ("necrotic" if u < 0.4 else "unchanged")
        new = _scaled(spec, s)
        if state != "unchanged":
            new = _treated(new, state, rng, liver_hu)
        fates.append(Fate(n, len(out), change, round(s, 4), state))
        out.append(new)
    if scenario == "PD_new":
        new_spec = _new_lesion(rng, out, liver_bbox, in_liver)
        if new_spec is not None:
            fates.append(Fate(None, len(out), "new", 1.0, "unchanged"))
            out.append(new_spec)
    return scenario, out, fates


def _new_lesion(
    rng: np.random.Generator, others: list[LesionSpec], liver_bbox: tuple, in_liver: LiverTest
) -> LesionSpec | None:
    """A 12-25 mm arterially enhancing nodule apart from the other lesions."""
    candidates = _liver_points(rng, liver_bbox, in_liver)
    d = float(rng.uniform(12.0, 25.0))
    for _ in range(200):
        if len(candidates) == 0:
            return None
        c = candidates[int(rng.integers(len(candidates)))]
        apart = all(
            np.linalg.norm(c - np.asarray(o.ellipsoid.center)) > 1.2 * (d / 2 + o.diameters_mm[0] / 2) + 8.0
            for o in others
        )
        if apart and _fits(c, d / 2, in_liver, 0.95):
            semi = d / 2 * np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.8, 1.0)])
            ell = Ellipsoid(tuple(c.tolist()), tuple(semi.tolist()), rotation_matrix(rng.uniform(-180, 180, 3)))  # type: ignore[arg-type]
            return LesionSpec(
                kind=LesionKind.HYPERDENSE,
                ellipsoid=ell,
                diameters_mm=tuple(sorted((2 * semi).tolist(), reverse=True)),  # type: ignore[arg-type]
                delta_hu=float(rng.uniform(50.0, 80.0)),
                rim_delta_hu=0.0,
                rim_mm=2.0,
                necrosis_delta_hu=0.0,
                margin_mm=1.0,
                texture=Waves.random(rng, 3, (6.0, 20.0), 3.0),
            )
    return None


def _category(baseline: float, followup: float, new: bool, all_gone: bool) -> str:
    """RECIST-style category against the baseline (the nadir of a first follow-up is the baseline)."""
    if new:
        return "PD"
    if followup >= 1.2 * baseline and followup - baseline >= 5.0:
        return "PD"
    if all_gone:
        return "CR"
    if followup <= 0.7 * baseline:
        return "PR"
    return "SD"


def true_response(
    baseline: list[LesionSpec],
    visible_mm: list[float],
    fates: list[Fate],
    phase: Phase,
    followup_visible: dict[int, bool],
) -> dict[str, Any]:
    """The true RECIST 1.1 and mRECIST responses from the nominal diameters.

    Args:
        baseline: baseline lesion specs.
        visible_mm: nominal largest diameter of each baseline lesion if it is on the baseline grid, else 0.
        fates: from :func:`draw_followup_lesions`.
        phase: the contrast phase of both visits.
        followup_visible: follow-up index -> whether it has voxels on the follow-up grid.
    """
    by_base = {f.baseline_index: f for f in fates if f.baseline_index is not None}
    new = any(f.change == "new" and followup_visible.get(f.followup_index or 0, False) for f in fates)

    def size_after(n: int, viable: bool) -> float:
        f = by_base[n]
        if f.followup_index is None or not followup_visible.get(f.followup_index, False):
            return 0.0
        if viable and f.state in ("lipiodol", "necrotic"):
            return 0.0
        return baseline[n].diameters_mm[0] * f.scale

    out: dict[str, Any] = {}
    for method, viable in (("recist_1_1", False), ("mrecist", True)):
        pool = [n for n, d in enumerate(visible_mm) if d >= MEASURABLE_MM]
        if viable:
            pool = [n for n in pool if viable_at_baseline(baseline[n], phase)]
        targets = sorted(pool, key=lambda n: -visible_mm[n])[:2]
        if viable and phase != Phase.ARTERIAL:
            out[method] = {"response": "NE", "reason": f"phase is {phase.value}, not arterial", "targets": []}
            continue
        if not targets:
            out[method] = {"response": "NE", "reason": "no measurable target lesion at baseline", "targets": []}
            continue
        b = sum(visible_mm[n] for n in targets)
        f = sum(size_after(n, viable) for n in targets)
        counted = [n for n in by_base if visible_mm[n] > 0 and (not viable or viable_at_baseline(baseline[n], phase))]
        gone = all(size_after(n, viable) == 0.0 for n in counted)
        out[method] = {
            "response": _category(b, f, new, gone),
            "targets": [n + 1 for n in targets],
            "baseline_sum_mm": round(b, 2),
            "followup_sum_mm": round(f, 2),
        }
    return out
