"""Response assessment over visits: RECIST 1.1 on lesion long axes, mRECIST on their viable part, volumes.

Rules (RECIST 1.1, Eisenhauer 2009; mRECIST, Lencioni & Llovet 2010), applied to the liver as one organ:

- Target lesions: measurable at baseline (long axis >= 10 mm), at most two per organ: the two largest
  (ties: lower lesion id). mRECIST takes them among lesions whose *viable* long axis is >= 10 mm.
- Follow-up size of a target: its matched lesion's size; 0 if it disappeared; the sum of the fragments if it
  split; the coalesced lesion's size if it merged (given to the first target of the merge, 0 to the others).
- Nadir: the smallest sum on study before this visit (the baseline included).
- PD: any new lesion, or sum >= 120 % of the nadir and >= 5 mm above it. CR: every target and every other
  lesion gone (no viable tissue left, for mRECIST). PR: sum <= 70 % of the baseline sum. Otherwise SD.
- NE: no target at baseline, or (mRECIST) a visit whose phase is not arterial, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from SmoothSegNetLib.followup.matching import Match

MEASURABLE_MM = 10.0
TARGETS_PER_ORGAN = 2
PD_PERCENT = 20.0
PD_ABSOLUTE_MM = 5.0
PR_PERCENT = -30.0
_EPS = 1e-9


def select_targets(sizes_mm: dict[int, float]) -> list[int]:
    """Baseline lesion ids of the targets: the two largest with size >= 10 mm (ties: lower id)."""
    pool = [(-size, lesion) for lesion, size in sizes_mm.items() if size >= MEASURABLE_MM - _EPS]
    return [lesion for _, lesion in sorted(pool)[:TARGETS_PER_ORGAN]]


def followup_sizes(targets: Sequence[int], matches: Sequence[Match], sizes_mm: dict[int, float]) -> dict[int, float]:
    """Each target's size at one follow-up (see the module rules for split and merged lesions)."""
    out: dict[int, float] = {}
    merged_given: set[int] = set()
    for target in targets:
        rows = [m for m in matches if m.baseline_id == target]
        size = 0.0
        for row in rows:
            if row.followup_id is None:
                continue
            if row.status == "merged":
                if row.followup_id in merged_given:
                    continue
                merged_given.add(row.followup_id)
            size += sizes_mm.get(row.followup_id, 0.0)
        out[target] = size
    return out


def classify(
    baseline_sum: float, nadir_sum: float, followup_sum: float, new_lesions: int, all_gone: bool
) -> tuple[str, str]:
    """``(response, reason)`` from the sums (mm), the count of new lesions and whether every lesion is gone."""
    if new_lesions:
        return "PD", f"{new_lesions} new lesion(s)"
    if followup_sum - nadir_sum >= PD_ABSOLUTE_MM - _EPS and followup_sum >= nadir_sum * (1 + PD_PERCENT / 100) - _EPS:
        return "PD", f"sum {followup_sum:.1f} mm is >= 20 % and >= 5 mm above the nadir {nadir_sum:.1f} mm"
    if all_gone:
        return "CR", "all lesions gone"
    if followup_sum <= baseline_sum * (1 + PR_PERCENT / 100) + _EPS:
        return "PR", f"sum {followup_sum:.1f} mm is >= 30 % below the baseline {baseline_sum:.1f} mm"
    return "SD", "neither PR nor PD"


def _percent(value: float, reference: float) -> float | None:
    return round(100.0 * (value - reference) / reference, 2) if reference > 0 else None


@dataclass(frozen=True)
class VisitSizes:
    """One follow-up: the tracking rows and each follow-up lesion's size (mm) for the method."""

    matches: Sequence[Match]
    sizes_mm: dict[int, float]
    assessable: str | None = None  # None, or why this visit cannot be assessed (e.g. not arterial)


def assess(baseline_sizes_mm: dict[int, float], visits: Sequence[VisitSizes], tracking: dict[int, str]) -> dict:
    """The response block of one method over all follow-ups (top level: the last follow-up).

    Args:
        baseline_sizes_mm: baseline lesion id -> size (long axis or viable long axis).
        visits: the follow-ups in order.
        tracking: baseline lesion id -> tracking id.
    """
    targets = select_targets(baseline_sizes_mm)
    baseline_sum = round(sum(baseline_sizes_mm[t] for t in targets), 2)
    rows: list[dict[str, Any]] = []
    history = [baseline_sum]
    for n, visit in enumerate(visits, start=1):
        new = sum(1 for m in visit.matches if m.status == "new")
        row: dict[str, Any] = {"visit": n, "new_lesions": new, "nadir_sum_mm": round(min(history), 2)}
        if not targets or visit.assessable is not None:
            reason = visit.assessable or "no measurable target lesion (>= 10 mm) at baseline"
            row.update(followup_sum_mm=None, change_from_baseline_percent=None, change_from_nadir_percent=None)
            row.update(response="NE", reason=reason)
            rows.append(row)
            continue
        sizes = followup_sizes(targets, visit.matches, visit.sizes_mm)
        total = round(sum(sizes.values()), 2)
        others = [m.followup_id for m in visit.matches if m.followup_id is not None and m.status != "new"]
        all_gone = total == 0 and all(visit.sizes_mm.get(f, 0.0) == 0 for f in others)
        response, reason = classify(baseline_sum, min(history), total, new, all_gone)
        row.update(
            followup_sum_mm=total,
            change_from_baseline_percent=_percent(total, baseline_sum),
            change_from_nadir_percent=_percent(total, min(history)),
            response=response,
            reason=reason,
        )
        rows.append(row)
        history.append(total)
    last = rows[-1] if rows else {}
    return {
        "target_lesions": [tracking[t] for t in targets],
        "baseline_sum_mm": baseline_sum if targets else None,
        **{k: last.get(k) for k in ("nadir_sum_mm", "followup_sum_mm", "change_from_baseline_percent")},
        **{k: last.get(k) for k in ("change_from_nadir_percent", "new_lesions", "response", "reason")},
        "visits": rows,
    }


def volumetric(totals_ml: Sequence[float]) -> dict[str, Any]:
    """Total tumour volume per visit (baseline first) and its change from the baseline."""
    base = totals_ml[0] if totals_ml else 0.0
    return {
        "total_volume_ml": [round(float(v), 4) for v in totals_ml],
        "change_from_baseline_percent": [_percent(v, base) for v in totals_ml[1:]],
    }
