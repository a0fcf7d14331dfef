"""``followup.png``: each target and new lesion at every visit side by side, aligned, with RECIST long axes.

Every follow-up CT is resampled onto the baseline grid through its registration, so one row shows the same
anatomy (the baseline slice through the lesion's long axis) at each visit. The long axis of each visit's
lesion is measured on its own grid (the report's rule) and its end points are carried into the baseline frame.
Below: the responses per method and the sum of target diameters and total tumour volume over the visits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from SmoothSegNetLib.followup.engine import FollowupResult
from SmoothSegNetLib.followup.registration import inverse_points, warp_to
from SmoothSegNetLib.followup.visits import Visit
from SmoothSegNetLib.report.recist import recist_axes

WINDOW_HU = (-150.0, 250.0)
HALF_FIELD_MM = 45.0
MAX_ROWS = 5
MAX_FOLLOWUPS = 3


def _long_axis_lps(visit: Visit, lesion_id: int) -> np.ndarray | None:
    """The two end points (LPS) of a lesion's RECIST long axis on its own grid."""
    axes = recist_axes(visit.lesions == lesion_id, visit.ct.geometry)
    if axes is None:
        return None
    return np.asarray(axes.long_ends_lps_mm, dtype=float)


def _panel(ax: Axes, image_kji: np.ndarray, base: Visit, center_lps: np.ndarray, line_lps: np.ndarray | None) -> None:
    g = base.ct.geometry
    i, j, k = np.rint(g.lps_to_index(center_lps)).astype(int)
    k = int(np.clip(k, 0, g.shape_kji[0] - 1))
    hi, hj = (int(np.ceil(HALF_FIELD_MM / s)) for s in g.spacing_mm[:2])
    rows = slice(max(j - hj, 0), min(j + hj + 1, g.shape_kji[1]))
    cols = slice(max(i - hi, 0), min(i + hi + 1, g.shape_kji[2]))
    aspect = g.spacing_mm[1] / g.spacing_mm[0]
    ax.imshow(image_kji[k][rows, cols], cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], aspect=aspect)
    if line_lps is not None:
        ends = g.lps_to_index(line_lps)
        ax.plot(ends[:, 0] - cols.start, ends[:, 1] - rows.start, color="#ff3030", linewidth=1.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _rows_to_show(result: FollowupResult) -> list[tuple[str, int | None, dict[int, int | None]]]:
    """(tracking id, baseline id, {visit: follow-up id}) for the targets, then the new lesions."""
    data = result.data
    shown: list[tuple[str, int | None, dict[int, int | None]]] = []
    for tracking_id in data["recist"]["target_lesions"]:
        rows = [r for r in data["lesions"] if r["tracking_id"] == tracking_id]
        shown.append((tracking_id, rows[0]["baseline_id"], {r["visit"]: r["followup_id"] for r in rows}))
    for r in data["lesions"]:
        if r["status"] == "new":
            shown.append((r["tracking_id"], None, {r["visit"]: r["followup_id"]}))
    return shown[:MAX_ROWS]


def _center(base: Visit, visits: Sequence[Visit], result: FollowupResult, b_id: int | None, f_ids: dict) -> np.ndarray:
    if b_id is not None:
        line = _long_axis_lps(base, b_id)
        if line is not None:
            return np.asarray(line.mean(axis=0))
    visit_index, f_id = next((v, f) for v, f in f_ids.items() if f is not None)
    entry = visits[visit_index].lesion_entries()[f_id]
    return inverse_points(result.registrations[visit_index - 1], np.asarray([entry["centroid_lps_mm"]]))[0]


def _plot_trend(ax: Axes, result: FollowupResult) -> None:
    data = result.data
    recist = data["recist"]
    sums = [recist["baseline_sum_mm"], *[v["followup_sum_mm"] for v in recist["visits"]]]
    x = list(range(len(sums)))
    ax.plot(x, [np.nan if s is None else s for s in sums], "o-", color="#c03030", label="RECIST sum (mm)")
    ax.set_xlabel("visit (0 = baseline)")
    ax.set_ylabel("sum of target long axes (mm)")
    ax.set_xticks(x)
    twin = ax.twinx()
    twin.plot(x, data["volumetric"]["total_volume_ml"], "s--", color="#3060c0", label="total tumour volume (ml)")
    twin.set_ylabel("total tumour volume (ml)")
    ax.legend(loc="upper left", fontsize=7)
    twin.legend(loc="upper right", fontsize=7)


def _responses(result: FollowupResult) -> str:
    data = result.data
    lines = []
    for name, key in (("RECIST 1.1", "recist"), ("mRECIST", "mrecist")):
        parts = [f"visit {v['visit']}: {v['response']}" for v in data[key]["visits"]]
        lines.append(f"{name}: " + ", ".join(parts))
    change = data["volumetric"]["change_from_baseline_percent"]
    lines.append("total tumour volume change: " + ", ".join("n/a" if c is None else f"{c:+.1f} %" for c in change))
    return "\n".join(lines)


def save_followup_figure(path: Path, visits: Sequence[Visit], result: FollowupResult) -> None:
    """Write the figure (PNG) to ``path``."""
    base = visits[0]
    followups = list(visits[1 : 1 + MAX_FOLLOWUPS])
    warped = [
        warp_to(
            v.ct.array,
            v.ct.geometry,
            base.ct.geometry,
            result.registrations[v.index - 1].transform,
            nearest=False,
            default=-1024,
        )
        for v in followups
    ]
    shown = _rows_to_show(result)
    cols = 1 + len(followups)
    nrows = max(len(shown), 1) + 1
    fig = Figure(figsize=(2.6 * max(cols, 2), 2.6 * nrows), dpi=90)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(nrows, max(cols, 2))
    for r, (tracking_id, b_id, f_ids) in enumerate(shown):
        center = _center(base, visits, result, b_id, f_ids)
        ax = fig.add_subplot(grid[r, 0])
        _panel(ax, base.ct.array, base, center, _long_axis_lps(base, b_id) if b_id is not None else None)
        ax.set_title(f"{tracking_id} baseline", fontsize=8)
        for c, (visit, image) in enumerate(zip(followups, warped), start=1):
            f_id = f_ids.get(visit.index)
            line = None
            if f_id is not None:
                own = _long_axis_lps(visit, f_id)
                line = None if own is None else inverse_points(result.registrations[visit.index - 1], own)
            ax = fig.add_subplot(grid[r, c])
            _panel(ax, image, base, center, line)
            ax.set_title(f"{tracking_id} visit {visit.index}", fontsize=8)
    ax = fig.add_subplot(grid[nrows - 1, : max(cols, 2)])
    _plot_trend(ax, result)
    ax.set_title(_responses(result), fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(str(path), format="png")


def responses_table(result: FollowupResult) -> list[dict[str, Any]]:
    """One row per follow-up visit and method (for the command's summary line)."""
    return [
        {"visit": v["visit"], "method": key, "response": v["response"]}
        for key in ("recist", "mrecist")
        for v in result.data[key]["visits"]
    ]
