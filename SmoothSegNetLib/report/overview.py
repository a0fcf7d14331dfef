"""``overview.png``: axial slices through the largest lesions with contours and RECIST axes, and the lesion table.

What a radiologist looks at first: one panel per largest lesion (up to three) on the axial plane its RECIST
axes were measured on (its stored slice, or the axial plane resampled from the CT when it was stored as
sagittal, coronal or oblique slices), CT in a liver window, liver and tumor outlines, this lesion's long axis
(solid; one line per piece of a fragmented lesion) and short axis (dashed) with their lengths; below, the
lesion table, the tumor burden, the Milan size check and the model notes (synthetic-only demo weights are
said in red). A slice whose columns run to the patient's right or whose rows
run anterior is mirrored for display, so that axial slices appear in the radiological view (patient left on
screen right, anterior up); the screen edges are labelled with the patient directions.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from SmoothSegNetLib.report.codes import measurement_codes
from SmoothSegNetLib.report.recist import measurement_grid
from SmoothSegNetLib.resample import Interpolation, crop_geometry, resample
from SmoothSegNetLib.terminology import segment_for_label
from SmoothSegNetLib.volume import CTVolume, Geometry

#: Display window of the CT (HU): the liver window used by the global network.
WINDOW_HU = (-150.0, 250.0)
MAX_PANELS = 3
MAX_TABLE_ROWS = 12
MARGIN_MM = 20.0
LONG_COLOUR = "#ff3030"
SHORT_COLOUR = "#30d0ff"


def _crop(labels_ji: np.ndarray, lesion_ji: np.ndarray, spacing_xy: tuple[float, float]) -> tuple[slice, slice]:
    """Rows/columns around the liver (or the lesion alone when no liver is on the slice), plus a margin."""
    region = labels_ji > 0 if labels_ji.any() else lesion_ji
    if not region.any():
        return slice(None), slice(None)
    rows, cols = np.nonzero(region | lesion_ji)
    mj = int(np.ceil(MARGIN_MM / spacing_xy[1]))
    mi = int(np.ceil(MARGIN_MM / spacing_xy[0]))
    return (
        slice(max(rows.min() - mj, 0), rows.max() + mj + 1),
        slice(max(cols.min() - mi, 0), cols.max() + mi + 1),
    )


def _plane_through(ct: CTVolume, lesion: dict[str, Any]) -> Geometry:
    """A one-slice grid on the plane the lesion was measured on: its stored slice, or the axial plane through
    its long axis (spacing and orientation of the measurement grid of the whole CT)."""
    g = ct.geometry
    if lesion["long_axis_slice_k"] is not None:
        return crop_geometry(g, (slice(int(lesion["long_axis_slice_k"]), None), slice(None), slice(None))).with_shape(
            (1, g.shape_kji[1], g.shape_kji[2])
        )
    grid, _plane = measurement_grid(g)
    ends = np.asarray(lesion["long_axis_ends_lps_mm"], dtype=float)
    k = float(grid.lps_to_index(ends.mean(axis=0))[2])
    origin = grid.index_to_lps([0.0, 0.0, k])
    return Geometry.create((1, grid.shape_kji[1], grid.shape_kji[2]), grid.spacing_mm, origin, grid.direction_array)


def _on_plane(array: np.ndarray, g: Geometry, plane: Geometry, interpolation: Interpolation) -> np.ndarray:
    """``array`` (on ``g``) sampled on the one-slice ``plane``, reading only the slab of voxels around it."""
    corners = np.array([[i, j, 0.0] for i in (0, plane.size_ijk[0] - 1) for j in (0, plane.size_ijk[1] - 1)])
    ijk = g.lps_to_index(plane.index_to_lps(corners))
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int) - 1, 0, np.array(g.size_ijk) - 1)
    hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 2, lo + 1, np.array(g.size_ijk))
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    return resample(array[box], crop_geometry(g, box), plane, interpolation)[0]


def _draw_panel(ax: Axes, ct: CTVolume, labels: np.ndarray, lesions: np.ndarray, lesion: dict[str, Any]) -> None:
    plane = _plane_through(ct, lesion)
    spacing_xy = (plane.spacing_mm[0], plane.spacing_mm[1])
    labels_ji = _on_plane(labels, ct.geometry, plane, Interpolation.NEAREST)
    this = _on_plane(lesions, ct.geometry, plane, Interpolation.NEAREST) == lesion["id"]
    rows, cols = _crop(labels_ji, this, spacing_xy)
    r0, c0 = rows.start or 0, cols.start or 0
    image = _on_plane(ct.array, ct.geometry, plane, Interpolation.LINEAR)[rows, cols].astype(np.float32)
    ax.imshow(image, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], aspect=spacing_xy[1] / spacing_xy[0])
    liver_rgb = np.array(segment_for_label(1).color_float)
    tumor_rgb = np.array(segment_for_label(2).color_float)
    liver = (labels_ji[rows, cols] > 0).astype(float)
    tumor = (labels_ji[rows, cols] == 2).astype(float)
    if liver.any() and liver.min() == 0:
        ax.contour(liver, levels=[0.5], colors=[liver_rgb], linewidths=1.0)
    if tumor.any():
        ax.contour(tumor, levels=[0.5], colors=[tumor_rgb], linewidths=0.8, linestyles="dotted")
    if this.any():
        ax.contour(this[rows, cols].astype(float), levels=[0.5], colors=[tumor_rgb], linewidths=1.6)
    for n, (ends, colour, style, label) in enumerate(_axis_lines(lesion)):
        ijk = plane.lps_to_index(np.asarray(ends, dtype=float))
        ax.plot(ijk[:, 0] - c0, ijk[:, 1] - r0, style, color=colour, linewidth=1.8, label=label or f"_piece{n}")
        ax.plot(ijk[:, 0] - c0, ijk[:, 1] - r0, "o", color=colour, markersize=3)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.7)
    _orient(ax, plane.direction_array)
    _scale_bar(ax, spacing_xy[0])
    ax.set_title(f"Lesion {lesion['id']}: {lesion['volume_ml']:.2f} ml, {_slice_text(lesion)}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _axis_lines(lesion: dict[str, Any]) -> list[tuple[Any, str, str, str]]:
    """(end points, colour, line style, legend) of the lines to draw: the long axis of each piece (solid; one
    line per piece of a fragmented lesion, never one across the tissue between them) and the short axis."""
    short_text = f"short {lesion['short_axis_mm']:.1f} mm{_manual(lesion, 'short')}"
    short = (lesion["short_axis_ends_lps_mm"], SHORT_COLOUR, "--", short_text)
    if not lesion.get("fragments"):
        long_text = f"long {lesion['long_axis_mm']:.1f} mm{_manual(lesion, 'long')}"
        return [(lesion["long_axis_ends_lps_mm"], LONG_COLOUR, "-", long_text), short]
    parts = " + ".join(f"{f['long_axis_mm']:.1f}" for f in lesion["fragments"])
    label = f"long {parts} = {lesion['long_axis_mm']:.1f} mm ({len(lesion['fragments'])} pieces)"
    lines = [
        (f["long_axis_ends_lps_mm"], LONG_COLOUR, "-", label if n == 0 else "")
        for n, f in enumerate(lesion["fragments"])
    ]
    return [*lines, short]


def _axes_text(lesion: dict[str, Any]) -> str:
    """``auto``, ``manual`` (both axes drawn by hand), ``long manual`` or ``short manual``."""
    manual = [a for a in ("long", "short") if lesion.get(f"{a}_axis_source") == "manual"]
    return "auto" if not manual else "manual" if len(manual) == 2 else f"{manual[0]} manual"


def _manual(lesion: dict[str, Any], axis: str) -> str:
    return ", manual" if lesion.get(f"{axis}_axis_source") == "manual" else ""


def _slice_text(lesion: dict[str, Any], short: bool = False) -> str:
    """Where the lesion was measured: its stored slice k, or the axial plane's S coordinate (LPS mm)."""
    if lesion["long_axis_slice_k"] is not None:
        k = lesion["long_axis_slice_k"]
        return str(k) if short else f"slice k={k}"
    s_mm = float(np.mean([p[2] for p in lesion["long_axis_ends_lps_mm"]]))
    return f"S {s_mm:.1f}" if short else f"axial S={s_mm:.1f} mm"


def _letter(vector_lps: np.ndarray) -> str:
    """The patient direction a vector points to most (L, R, P, A, S, I)."""
    axis = int(np.argmax(np.abs(vector_lps)))
    return ("LPS" if vector_lps[axis] > 0 else "RAI")[axis]


def _orient(ax: Axes, direction: np.ndarray) -> None:
    """Show a near-axial slice in the radiological view (patient left on screen right, anterior up) and
    label the screen edges with the patient directions."""
    screen_right, screen_down = direction[:, 0].copy(), direction[:, 1].copy()
    if _letter(screen_right) == "R":
        ax.invert_xaxis()
        screen_right = -screen_right
    if _letter(screen_down) == "A":
        ax.invert_yaxis()
        screen_down = -screen_down
    style: dict[str, Any] = {"color": "white", "fontsize": 8, "fontweight": "bold", "transform": ax.transAxes}
    outline = [patheffects.withStroke(linewidth=3, foreground="black")]
    ax.text(0.01, 0.5, _letter(-screen_right), ha="left", va="center", path_effects=outline, **style)
    ax.text(0.99, 0.5, _letter(screen_right), ha="right", va="center", path_effects=outline, **style)
    ax.text(0.5, 0.99, _letter(-screen_down), ha="center", va="top", path_effects=outline, **style)


def _scale_bar(ax: Axes, spacing_x_mm: float, length_mm: float = 10.0) -> None:
    """A 10 mm bar in the lower-left corner of the screen (columns are ``spacing_x_mm`` wide)."""
    # Limits are (screen left, screen right) and (screen bottom, screen top), also for inverted axes.
    x_left, x_right = ax.get_xlim()
    y_bottom, y_top = ax.get_ylim()
    sign = 1.0 if x_right > x_left else -1.0
    x = x_left + 0.04 * (x_right - x_left)
    y = y_bottom + 0.05 * (y_top - y_bottom)
    # A black outline keeps the white bar readable on bright tissue and bone.
    outline = [patheffects.withStroke(linewidth=4, foreground="black")]
    ax.plot([x, x + sign * length_mm / spacing_x_mm], [y, y], "-", color="white", linewidth=2.5, path_effects=outline)
    ax.text(
        x,
        y + 0.02 * (y_top - y_bottom),
        f"{length_mm:g} mm",
        color="white",
        fontsize=7,
        va="bottom",
        ha="left",
        path_effects=outline,
    )


def _draw_empty(ax: Axes, ct: CTVolume, labels: np.ndarray) -> None:
    """No lesion: the axial plane (of the measurement grid) through the middle of the liver, or of the image."""
    g = ct.geometry
    grid, _plane = measurement_grid(g)
    liver_slices = np.flatnonzero(labels.any(axis=(1, 2)))
    k_mid = float(liver_slices[len(liver_slices) // 2]) if len(liver_slices) else (g.shape_kji[0] - 1) / 2.0
    j_mid, i_mid = (g.shape_kji[1] - 1) / 2.0, (g.shape_kji[2] - 1) / 2.0
    k = float(np.clip(np.round(grid.lps_to_index(g.index_to_lps([i_mid, j_mid, k_mid]))[2]), 0, grid.shape_kji[0] - 1))
    plane = Geometry.create(
        (1, grid.shape_kji[1], grid.shape_kji[2]),
        grid.spacing_mm,
        grid.index_to_lps([0.0, 0.0, k]),
        grid.direction_array,
    )
    image = _on_plane(ct.array, g, plane, Interpolation.LINEAR)
    liver = _on_plane(labels, g, plane, Interpolation.NEAREST) > 0
    aspect = plane.spacing_mm[1] / plane.spacing_mm[0]
    ax.imshow(image.astype(np.float32), cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], aspect=aspect)
    if liver.any() and not liver.all():
        ax.contour(liver.astype(float), levels=[0.5], colors=[segment_for_label(1).color_float])
    _orient(ax, plane.direction_array)
    s_mm = float(plane.index_to_lps([(plane.size_ijk[0] - 1) / 2.0, (plane.size_ijk[1] - 1) / 2.0, 0.0])[2])
    ax.set_title(f"No lesion found (axial S={s_mm:.1f} mm)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


#: Columns of the overview's lesion table: header, lesion key, format (the same keys as report.json).
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("#", "id", "{}"),
    ("Vol ml", "volume_ml", "{:.2f}"),
    ("Long mm", "long_axis_mm", "{:.1f}"),
    ("Short mm", "short_axis_mm", "{:.1f}"),
    ("3D max mm", "max_diameter_3d_mm", "{:.1f}"),
    ("Mean HU", "mean_hu", "{:.0f}"),
    ("SD HU", "std_hu", "{:.0f}"),
    ("Slice", "long_axis_slice_k", "slice"),
    ("RECIST", "categories.recist_measurable", "yesno"),
    ("LI-RADS size", "categories.lirads_size_only", "{}"),
    ("Conf", "confidence", "{:.2f}"),
    ("Edited", "edited", "yesno"),
    ("Axes", "long_axis_source", "axes"),
)


def _cell(lesion: dict[str, Any], key: str, form: str) -> str:
    value: Any = lesion
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if form == "slice":  # the stored slice k, or the axial plane's S (the lesion was measured off the stored slices)
        return _slice_text(lesion, short=True)
    if form == "axes":  # who measured the RECIST axes: the engine, or a hand-drawn line (which ones)
        return _axes_text(lesion)
    if value is None:
        return ""
    if form == "yesno":
        return "yes" if value else "no"
    return form.format(value)


def overview_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The text of the overview's lesion table: headers and one row per shown lesion (the first
    :data:`MAX_TABLE_ROWS`), each cell the report.json value at the precision its header shows.

    :func:`render_overview` draws exactly these strings (tests read them back from the figure).
    """
    headers = [header for header, _, _ in TABLE_COLUMNS]
    rows = [[_cell(e, key, form) for _, key, form in TABLE_COLUMNS] for e in report["lesions"][:MAX_TABLE_ROWS]]
    return headers, rows


def summary_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The text lines under the table, with their colours (the liver quantities named as in the SR)."""
    burden = report["tumor_burden"]
    tlvr = "n/a" if burden["tlvr"] is None else f"{100 * burden['tlvr']:.2f} %"
    milan = report["milan_size_check"]
    names = measurement_codes()
    whole, parenchyma = names["liver_volume_ml"]["name"], names["liver_parenchyma_volume_ml"]["name"]
    liver = report["liver"]
    lines = [
        (
            f"{whole} {liver['volume_ml']:.1f} ml · {parenchyma} {liver['parenchyma_volume_ml']:.1f} ml"
            f" · lesions {burden['count']} · tumor {burden['total_volume_ml']:.2f} ml · TLVR {tlvr}",
            "black",
        ),
        (f"Milan (size-only aid): {milan['reason']}; vascular invasion / extrahepatic spread not assessed", "black"),
    ]
    for m in report["models"]:
        title = m.get("title") or m["id"]
        notes = f" — {m['notes']}" if m.get("notes") else ""
        lines.append((f"Model: {title} (v{m.get('version') or '?'}, {m['id']}){notes}", "black"))
    lines.extend((w, "#c00000") for w in report["warnings"])
    if len(report["lesions"]) > MAX_TABLE_ROWS:
        lines.append((f"... {len(report['lesions']) - MAX_TABLE_ROWS} more lesions in report.csv", "black"))
    lines.append(("Research software, not for clinical use. LI-RADS bands are size only.", "#c00000"))
    return lines


def render_overview(ct: CTVolume, labels: np.ndarray, lesions: np.ndarray, report: dict[str, Any]) -> Figure:
    """The overview figure (no pyplot: safe in threads and without a display)."""
    shown = report["lesions"][:MAX_PANELS]
    panels = max(len(shown), 1)
    summary = summary_lines(report)
    headers, table_rows = overview_table(report)
    table_h = 0.35 + 0.22 * (len(table_rows) + 1)
    text_h = 0.2 * sum(len(textwrap.wrap(t, 130)) for t, _ in summary) + 0.3
    fig = Figure(figsize=(4.2 * max(panels, 2), 4.2 + table_h + text_h), dpi=110)
    FigureCanvasAgg(fig)
    total_h = 4.2 + table_h + text_h
    grid = fig.add_gridspec(3, panels, height_ratios=[4.2 / total_h, table_h / total_h, text_h / total_h])
    if shown:
        for n, lesion in enumerate(shown):
            _draw_panel(fig.add_subplot(grid[0, n]), ct, labels, lesions, lesion)
    else:
        _draw_empty(fig.add_subplot(grid[0, :]), ct, labels)
    table_ax = fig.add_subplot(grid[1, :])
    table_ax.axis("off")
    if table_rows:
        # Each column as wide as its longest text (header or cell), the whole table the axes' width: equal widths
        # let long headers ("3D max mm", "LI-RADS size") run into their neighbours.
        chars = [max(len(text) for text in column) + 2 for column in zip(headers, *table_rows)]
        widths = [n / sum(chars) for n in chars]
        table = table_ax.table(
            cellText=table_rows, colLabels=headers, colWidths=widths, loc="upper center", cellLoc="center"
        )
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.scale(1.0, 1.25)
    else:
        table_ax.text(0.5, 0.5, "No lesion: tumor burden 0", ha="center", va="center", fontsize=10)
    text_ax = fig.add_subplot(grid[2, :])
    text_ax.axis("off")
    y = 1.0
    step = 1.0 / max(sum(len(textwrap.wrap(t, 130)) for t, _ in summary), 1)
    for text, colour in summary:
        for line in textwrap.wrap(text, 130):
            text_ax.text(0.0, y, line, ha="left", va="top", fontsize=8, color=colour, transform=text_ax.transAxes)
            y -= step
    fig.suptitle("SmoothSegNet tumor report", fontsize=11, fontweight="bold")
    fig.tight_layout()
    return fig


def write_overview_png(
    path: str | Path, ct: CTVolume, labels: np.ndarray, lesions: np.ndarray, report: dict[str, Any]
) -> None:
    """Render the overview and save it as PNG at ``path``."""
    fig = render_overview(ct, labels, lesions, report)
    fig.savefig(str(path), format="png")
