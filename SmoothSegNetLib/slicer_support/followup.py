"""Logic of the Slicer "Compare with prior study" section that needs no Slicer: the child-process command,
the tracked-lesion table rows, and where to centre each study when a row is clicked.

The widget runs :func:`followup_command` in the child process (progress as JSON lines), reads
``followup.json`` back and shows :func:`tracked_lesion_rows`; a click centres the prior (baseline) view on
``baseline`` and the current (follow-up) view on ``followup`` from :func:`row_centres_ras`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.volume import LPS_TO_RAS

TABLE_COLUMNS = (
    ("tracking_id", "Lesion"),
    ("status", "Status"),
    ("baseline_long_axis_mm", "Prior long axis (mm)"),
    ("followup_long_axis_mm", "Current long axis (mm)"),
    ("long_axis_change_percent", "Change (%)"),
    ("baseline_volume_ml", "Prior volume (ml)"),
    ("followup_volume_ml", "Current volume (ml)"),
)


def followup_command(
    prior: Path, current: Path, outdir: Path, *, phase: str = "unknown", python_executable: str | None = None
) -> list[str]:
    """``python -m SmoothSegNetLib followup PRIOR CURRENT -o OUTDIR --progress jsonl --phase PHASE``."""
    command = [python_executable or sys.executable, "-m", "SmoothSegNetLib", "followup", str(prior), str(current)]
    return [*command, "-o", str(outdir), "--progress", "jsonl", "--phase", phase]


def tracked_lesion_rows(data: dict[str, Any], visit: int | None = None) -> list[list[str]]:
    """Table cells (strings) of the tracked lesions of ``visit`` (default: the last follow-up)."""
    last = max((r["visit"] for r in data["lesions"]), default=1)
    wanted = last if visit is None else visit
    rows = []
    for row in data["lesions"]:
        if row["visit"] != wanted:
            continue
        cells = []
        for key, _title in TABLE_COLUMNS:
            value = row.get(key)
            cells.append("" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value)))
        rows.append(cells)
    return rows


def _ras(lps: Any) -> tuple[float, float, float] | None:
    if lps is None:
        return None
    x, y, z = (float(v) for v in LPS_TO_RAS @ [float(c) for c in lps])
    return (x, y, z)


def row_centres_ras(data: dict[str, Any], tracking_id: str, visit: int) -> dict[str, tuple[float, float, float] | None]:
    """RAS centres of one tracked lesion in the prior and the current study (None where it is absent)."""
    for row in data["lesions"]:
        if row["tracking_id"] == tracking_id and row["visit"] == visit:
            return {
                "baseline": _ras(row["baseline_centroid_lps_mm"]),
                "followup": _ras(row["followup_centroid_lps_mm"]),
            }
    raise KeyError(f"no tracked lesion {tracking_id!r} at visit {visit} in followup.json")


def row_view_centres_ras(
    data: dict[str, Any], tracking_id: str, visit: int
) -> dict[str, tuple[float, float, float] | None]:
    """Where to centre each study's views on a row click (RAS).

    Where the lesion exists, its centroid (as :func:`row_centres_ras`). Where it is absent (a new lesion has
    no prior, a disappeared one no current position), the other study's centroid mapped through the visit's
    affine registration (``registration[].affine_lps`` maps baseline LPS to follow-up LPS), so that both
    views show the same anatomy.
    """
    row = next((r for r in data["lesions"] if r["tracking_id"] == tracking_id and r["visit"] == visit), None)
    if row is None:
        raise KeyError(f"no tracked lesion {tracking_id!r} at visit {visit} in followup.json")
    base, follow = row["baseline_centroid_lps_mm"], row["followup_centroid_lps_mm"]
    entry = next((e for e in data.get("registration", []) if e["visit"] == visit), None)
    if entry is not None and (base is None) != (follow is None):
        affine = np.asarray(entry["affine_lps"], dtype=float)
        if base is None:
            base = (np.linalg.inv(affine) @ [*map(float, follow), 1.0])[:3]
        else:
            follow = (affine @ [*map(float, base), 1.0])[:3]
    return {"baseline": _ras(base), "followup": _ras(follow)}


def response_summary(data: dict[str, Any]) -> str:
    """One line per method for the section's status label."""
    recist, mrecist, volume = data["recist"], data["mrecist"], data["volumetric"]
    change = volume["change_from_baseline_percent"][-1] if volume["change_from_baseline_percent"] else None
    lines = [
        f"RECIST 1.1: {recist['response']} ({recist['reason']})",
        f"mRECIST: {mrecist['response']} ({mrecist['reason']})",
        "Total tumour volume: " + ("n/a" if change is None else f"{change:+.1f} %"),
    ]
    return "\n".join(lines)
