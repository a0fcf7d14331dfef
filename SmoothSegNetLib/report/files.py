"""``report.json`` and ``report.csv`` writers (one CSV row per lesion, units in the headers).

After the lesions, report.csv lists the candidates (tumor components under a lesion threshold, not counted in
the burden) with ``status`` ``candidate`` and their ``reason``; a lesion row has ``status`` ``lesion``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

#: CSV columns: header -> how to get the value from a lesion entry of report.json.
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("lesion_id", "id"),
    ("volume_ml", "volume_ml"),
    ("long_axis_mm", "long_axis_mm"),
    ("short_axis_mm", "short_axis_mm"),
    ("max_diameter_3d_mm", "max_diameter_3d_mm"),
    ("long_axis_slice_k", "long_axis_slice_k"),
    ("mean_hu", "mean_hu"),
    ("std_hu", "std_hu"),
    ("min_hu", "min_hu"),
    ("max_hu", "max_hu"),
    ("centroid_l_mm", "centroid_lps_mm.0"),
    ("centroid_p_mm", "centroid_lps_mm.1"),
    ("centroid_s_mm", "centroid_lps_mm.2"),
    ("confidence", "confidence"),
    ("edited", "edited"),
    ("long_axis_source", "long_axis_source"),
    ("short_axis_source", "short_axis_source"),
    ("recist_measurable", "categories.recist_measurable"),
    ("lirads_size_only", "categories.lirads_size_only"),
    ("paper_size_group", "categories.paper_size_group"),
    ("touches_outside_liver", "touches_outside_liver"),
)
#: Case-level CSV columns, the same on every lesion row: header -> dotted key into report.json.
CASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("liver_volume_ml", "liver.volume_ml"),
    ("liver_parenchyma_volume_ml", "liver.parenchyma_volume_ml"),
)
#: Trailing columns: whether the row is a lesion or a dropped candidate, and why it was dropped.
STATUS_COLUMNS = ("status", "reason")


def _get(entry: dict[str, Any], dotted: str) -> Any:
    """The value at ``dotted`` (``a.b.0``); ``None`` where the entry has no such key (a candidate's HU)."""
    value: Any = entry
    for part in dotted.split("."):
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value


def write_report_json(path: str | Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented UTF-8 JSON (no NaN: invalid JSON is refused)."""
    with Path(path).open("w", encoding="utf-8") as stream:
        json.dump(report, stream, indent=2, allow_nan=False)
        stream.write("\n")


def write_report_csv(path: str | Path, report: dict[str, Any]) -> None:
    """One row per lesion (id order), then one per candidate; no lesion and no candidate: the header only.

    :data:`CASE_COLUMNS` (the two liver volumes) are the case's, repeated on every row; the last two columns
    (:data:`STATUS_COLUMNS`) say whether the row is a lesion or a dropped candidate, and why it was dropped.
    """
    case = ["" if _get(report, key) is None else _get(report, key) for _, key in CASE_COLUMNS]
    with Path(path).open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([*(header for header, _ in (*CSV_COLUMNS, *CASE_COLUMNS)), *STATUS_COLUMNS])
        rows = [(lesion, "lesion") for lesion in report["lesions"]]
        rows += [(candidate, "candidate") for candidate in report.get("candidates", [])]
        for entry, status in rows:
            row = []
            for _, key in CSV_COLUMNS:
                value = _get(entry, key)
                row.append("" if value is None else value)
            writer.writerow([*row, *case, status, entry.get("reason", "")])
