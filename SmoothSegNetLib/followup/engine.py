"""The follow-up of one patient: register each later visit to the baseline, track lesions, assess response.

Numbers come from each visit's report.json (long axes, volumes, centroids): they are not measured again.
The viable long axes for mRECIST are measured here (:mod:`~SmoothSegNetLib.followup.viable`), once.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from SmoothSegNetLib import __version__
from SmoothSegNetLib.followup.matching import Match, match_lesions
from SmoothSegNetLib.followup.registration import (
    Registration,
    RegistrationOptions,
    inverse_points,
    register_liver,
    warp_to,
)
from SmoothSegNetLib.followup.response import VisitSizes, assess, volumetric
from SmoothSegNetLib.followup.viable import RULE, viable_long_axes
from SmoothSegNetLib.followup.visits import Visit
from SmoothSegNetLib.progress import ProgressCallback, no_progress

SCHEMA_ID = "smoothsegnet.followup/1"


@dataclass
class FollowupResult:
    """``data`` is followup.json; ``registrations[v - 1]`` and ``matches[v - 1]`` belong to visit v."""

    data: dict[str, Any]
    registrations: list[Registration] = field(default_factory=list)
    matches: list[list[Match]] = field(default_factory=list)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _change(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old <= 0:
        return None
    return round(100.0 * (new - old) / old, 2)


def _followup_centroids(visit: Visit, reg: Registration, base: Visit) -> dict[int, np.ndarray]:
    """Follow-up lesion centroids mapped into baseline LPS (through the inverse of the registration)."""
    entries = visit.lesion_entries()
    ids = sorted(entries)
    if not ids:
        return {}
    points = np.array([entries[i]["centroid_lps_mm"] for i in ids], dtype=float)
    mapped = inverse_points(reg, points)
    return {i: mapped[n] for n, i in enumerate(ids)}


def _phase_reason(visit: Visit) -> str | None:
    if visit.phase == "arterial":
        return None
    if visit.phase == "unknown":
        return f"visit {visit.index}: contrast phase unknown (pass --phase {visit.index}=arterial if it is arterial)"
    return f"visit {visit.index}: phase is {visit.phase}, not arterial"


def _rows(visit: Visit, base: Visit, matches: Sequence[Match], viable: list[dict[int, float] | None]) -> list[dict]:
    b_entries, f_entries = base.lesion_entries(), visit.lesion_entries()
    rows = []
    for m in matches:
        b = b_entries.get(m.baseline_id) if m.baseline_id is not None else None
        f = f_entries.get(m.followup_id) if m.followup_id is not None else None
        b_axis = b["long_axis_mm"] if b else None
        f_axis = f["long_axis_mm"] if f else (0.0 if m.status == "disappeared" else None)
        b_vol = b["volume_ml"] if b else None
        f_vol = f["volume_ml"] if f else (0.0 if m.status == "disappeared" else None)
        bv, fv = viable[0], viable[visit.index]
        rows.append(
            {
                "visit": visit.index,
                "tracking_id": f"L{m.baseline_id}" if m.baseline_id is not None else f"N{visit.index}.{m.followup_id}",
                "status": m.status,
                "baseline_id": m.baseline_id,
                "followup_id": m.followup_id,
                "baseline_long_axis_mm": b_axis,
                "followup_long_axis_mm": f_axis,
                "long_axis_change_percent": _change(f_axis, b_axis),
                "baseline_volume_ml": b_vol,
                "followup_volume_ml": f_vol,
                "volume_change_percent": _change(f_vol, b_vol),
                "baseline_centroid_lps_mm": b["centroid_lps_mm"] if b else None,
                "followup_centroid_lps_mm": f["centroid_lps_mm"] if f else None,
                "baseline_viable_long_axis_mm": bv.get(m.baseline_id) if bv and m.baseline_id else None,
                "followup_viable_long_axis_mm": fv.get(m.followup_id) if fv and m.followup_id else None,
            }
        )
    return rows


def _visit_entry(visit: Visit) -> dict[str, Any]:
    lesions = visit.report.get("lesions", [])
    return {
        "index": visit.index,
        "role": "baseline" if visit.index == 0 else "follow-up",
        "folder": str(visit.folder.resolve()),
        "ct": str(visit.ct_path),
        "patient_id": visit.patient_id,
        "study_date": visit.study_date,
        "phase": visit.phase,
        "lesion_count": len(lesions),
        "total_tumor_volume_ml": round(sum(float(e["volume_ml"]) for e in lesions), 4),
        "liver_volume_ml": visit.report.get("liver", {}).get("volume_ml"),
    }


def run_followup(
    visits: Sequence[Visit],
    options: RegistrationOptions | None = None,
    progress: ProgressCallback = no_progress,
) -> FollowupResult:
    """Register, match and assess; ``visits[0]`` is the baseline.

    Raises:
        InputError: a follow-up cannot be registered (liver Dice under the floor).
    """
    options = options or RegistrationOptions()
    base = visits[0]
    result = FollowupResult(data={})
    warnings: list[str] = []
    viable: list[dict[int, float] | None] = []
    for visit in visits:
        progress("viable", visit.index / len(visits), f"viable tissue, visit {visit.index}")
        arterial = _phase_reason(visit) is None
        viable.append(
            viable_long_axes(visit.ct.array, visit.labels, visit.lesions, visit.ct.geometry) if arterial else None
        )
    registration_entries, rows = [], []
    for visit in visits[1:]:
        progress("register", (visit.index - 1) / max(len(visits) - 1, 1), f"registering visit {visit.index}")
        reg = register_liver(base.labels, base.ct.geometry, visit.labels, visit.ct.geometry, options)
        if reg.dice["final"] < options.warn_below:
            warnings.append(
                f"registration_low_dice: visit {visit.index} liver Dice after registration {reg.dice['final']:.3f} "
                f"< {options.warn_below:.2f}; check the lesion matches by eye"
            )
        warped = warp_to(visit.lesions, visit.ct.geometry, base.ct.geometry, reg.transform, nearest=True)
        b_centroids = {i: np.asarray(e["centroid_lps_mm"], float) for i, e in base.lesion_entries().items()}
        matches = match_lesions(base.lesions, warped, b_centroids, _followup_centroids(visit, reg, base))
        result.registrations.append(reg)
        result.matches.append(matches)
        entry = {"visit": visit.index, **reg.as_dict(f"transforms/visit_{visit.index}.tfm")}
        registration_entries.append(entry)
        rows += _rows(visit, base, matches, viable)
    tracking = {i: f"L{i}" for i in base.lesion_entries()}
    long_axes = [{i: float(e["long_axis_mm"]) for i, e in v.lesion_entries().items()} for v in visits]
    recist = assess(long_axes[0], [VisitSizes(m, long_axes[n + 1]) for n, m in enumerate(result.matches)], tracking)
    base_reason = _phase_reason(base)
    mvisits = [
        VisitSizes(m, viable[n + 1] or {}, base_reason or _phase_reason(visits[n + 1]))
        for n, m in enumerate(result.matches)
    ]
    mrecist = assess(viable[0] or {}, mvisits, tracking)
    mrecist["rule"] = RULE
    totals = [sum(float(e["volume_ml"]) for e in v.report.get("lesions", [])) for v in visits]
    result.data = {
        "schema": SCHEMA_ID,
        "software": {"name": "SmoothSegNet", "version": __version__},
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "visits": [_visit_entry(v) for v in visits],
        "registration": registration_entries,
        "lesions": rows,
        "recist": recist,
        "mrecist": mrecist,
        "volumetric": volumetric(totals),
        "warnings": warnings,
        "notes": [
            "RECIST 1.1: at most two target lesions in the liver (one organ); sizes are the reports' long axes",
            "tracking ids: L<baseline id> for baseline lesions, N<visit>.<follow-up id> for new lesions",
        ],
    }
    progress("followup", 1.0, "done")
    return result
