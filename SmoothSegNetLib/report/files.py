"""``report.json`` and ``report.csv`` writers (one CSV row per lesion, units in the headers)."""

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


def _get(entry: dict[str, Any], dotted: str) -> Any:
    value: Any = entry
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def write_report_json(path: str | Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented UTF-8 JSON (no NaN: invalid JSON is refused)."""
    with Path(path).open("w", encoding="utf-8") as stream:
        json.dump(report, stream, indent=2, allow_nan=False)
        stream.write("\n")


def write_report_csv(path: str | Path, report: dict[str, Any]) -> None:
    """One row per lesion, in lesion id order; an empty tumor burden gives the header row only.

    The last columns (:data:`CASE_COLUMNS`, the two liver volumes) are the case's, repeated on every row.
    """
    case = ["" if _get(report, key) is None else _get(report, key) for _, key in CASE_COLUMNS]
    with Path(path).open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow([header for header, _ in (*CSV_COLUMNS, *CASE_COLUMNS)])
        for lesion in report["lesions"]:
            row = []
            for _, key in CSV_COLUMNS:
                value = _get(lesion, key)
                row.append("" if value is None else value)
            writer.writerow([*row, *case])
