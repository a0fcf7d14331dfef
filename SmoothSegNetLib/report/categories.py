"""Size categories of lesions and a Milan-criteria size check (aids, not diagnoses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from SmoothSegNetLib.report.codes import size_thresholds_mm

LIRADS_NOTE = (
    "size only: LI-RADS also needs arterial phase hyperenhancement, washout, capsule and threshold growth, "
    "which are not assessed"
)
MILAN_NOTE = (
    "size-only aid: Milan criteria also exclude macrovascular invasion and extrahepatic spread, which are not "
    "assessed; diameters are RECIST long axes of the segmented lesions"
)


def size_categories(long_axis_mm: float) -> dict[str, Any]:
    """RECIST measurability, LI-RADS size band (size only) and the paper's 10 cm split of one lesion."""
    t = size_thresholds_mm()
    low, high = t["lirads_size_only"]
    if long_axis_mm < low:
        lirads = f"<{low:g} mm"
    elif long_axis_mm < high:
        lirads = f"{low:g}-<{high:g} mm"
    else:
        lirads = f">={high:g} mm"
    split_cm = t["paper_size_split"] / 10.0
    return {
        "recist_measurable": bool(long_axis_mm >= t["recist_measurable_long_axis"]),
        "lirads_size_only": lirads,
        "paper_size_group": f">={split_cm:g} cm" if long_axis_mm >= t["paper_size_split"] else f"<{split_cm:g} cm",
    }


def milan_size_check(long_axes_mm: Sequence[float]) -> dict[str, Any]:
    """Milan criteria on size alone: one lesion <= 5 cm, or 2 to 3 lesions each <= 3 cm.

    Returns:
        ``{"within_size_limits": bool | None, "reason": str, "note": MILAN_NOTE}``; ``None`` when no lesion
        was found (the criteria do not apply).
    """
    t = size_thresholds_mm()
    n = len(long_axes_mm)
    largest = max(long_axes_mm, default=0.0)
    if n == 0:
        within, reason = None, "no lesion found: not applicable"
    elif n == 1:
        within = largest <= t["milan_single_max"]
        reason = f"1 lesion, long axis {largest:.1f} mm {'<=' if within else '>'} {t['milan_single_max']:g} mm"
    elif n <= t["milan_multiple_count"]:
        within = largest <= t["milan_multiple_max"]
        reason = (
            f"{n} lesions, largest long axis {largest:.1f} mm {'<=' if within else '>'} {t['milan_multiple_max']:g} mm"
        )
    else:
        within, reason = False, f"{n} lesions > {int(t['milan_multiple_count'])}"
    return {"within_size_limits": within, "reason": reason, "note": MILAN_NOTE}
