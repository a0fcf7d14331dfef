"""The lesion table: columns from ``Resources/Slicer/lesion_table.json``, rows from a report.json dict."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from SmoothSegNetLib.resources import RESOURCES_DIR

TABLE_FILE = RESOURCES_DIR / "Slicer" / "lesion_table.json"
KINDS = ("integer", "number", "text")
SCOPES = ("lesion", "case")


@dataclass(frozen=True)
class LesionTableColumn:
    """One column: ``title`` (header without unit), report ``key`` (``index`` into a vector value)."""

    title: str
    key: str
    kind: str
    unit: str = ""
    visible: bool = True
    description: str = ""
    index: int | None = None
    scope: str = "lesion"

    @property
    def header(self) -> str:
        """Header text with the unit, e.g. ``Volume (ml)`` (``Mean HU`` already says its unit)."""
        return f"{self.title} ({self.unit})" if self.unit and self.unit not in self.title.split() else self.title


@lru_cache(maxsize=1)
def lesion_table_columns(path: Path = TABLE_FILE) -> tuple[LesionTableColumn, ...]:
    """The columns, in order. Raises ValueError when the table file is malformed."""
    data = json.loads(path.read_text(encoding="utf-8"))
    columns = tuple(
        LesionTableColumn(**{k: v for k, v in entry.items() if not k.startswith("_")}) for entry in data["columns"]
    )
    for column in columns:
        if column.kind not in KINDS:
            raise ValueError(f"{path}: column {column.title!r} has kind {column.kind!r}; allowed: {', '.join(KINDS)}")
        if column.scope not in SCOPES:
            raise ValueError(
                f"{path}: column {column.title!r} has scope {column.scope!r}; allowed: {', '.join(SCOPES)}"
            )
    return columns


def _case_value(report: dict[str, Any], dotted: str) -> Any:
    value: Any = report
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _value(
    report: dict[str, Any], lesion: dict[str, Any], column: LesionTableColumn, edited: bool, lesion_name: str
) -> Any:
    if column.key == "edited":
        # RECIST lines drawn by hand (markups, --manual-axes): report.json's long/short_axis_source
        manual = "manual" in (lesion.get("long_axis_source"), lesion.get("short_axis_source"))
        marks = (("yes", edited or bool(lesion.get("edited"))), ("manual axes", manual))
        return ", ".join(text for text, on in marks if on)
    if column.key == "segment":
        return lesion_name
    value = _case_value(report, column.key) if column.scope == "case" else lesion.get(column.key)
    if column.index is not None and value is not None:
        value = value[column.index]
    if value is None and column.kind == "number":
        return math.nan
    return value


def lesion_table_rows(
    report: dict[str, Any], edited_lesion_ids: tuple[int, ...] = (), name_format: str = "Lesion {id}"
) -> list[list[Any]]:
    """One row per lesion of ``report["lesions"]`` (in report order), values as in the report.

    A lesion is marked edited when its id is in ``edited_lesion_ids`` or its report entry says ``edited``.

    A number missing from the report (e.g. ``confidence`` after a manual edit) is NaN.
    """
    columns = lesion_table_columns()
    rows = []
    for lesion in report["lesions"]:
        lesion_id = int(lesion["id"])
        name = name_format.format(id=lesion_id)
        rows.append([_value(report, lesion, column, lesion_id in edited_lesion_ids, name) for column in columns])
    return rows


def format_cell(value: Any, column: LesionTableColumn) -> str:
    """Text for the panel: numbers to one decimal (confidence two), NaN as an em dash."""
    if column.kind == "number":
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "—"
        return f"{float(value):.2f}" if column.key == "confidence" else f"{float(value):.1f}"
    return str(value)


#: What each candidate's reason (report.json ``candidates[].reason``) means, in the panel's words; report.json
#: keeps the codes. One entry per :class:`SmoothSegNetLib.report.candidates.DropReason` (a test checks).
CANDIDATE_REASON_TEXT = {
    "below_min_lesion_ml": "under the size floor",
    "below_min_lesion_confidence": "network confidence under the floor",
    "below_min_lesion_hu": "fluid density (likely a cyst)",
    "below_min_lesion_score": "lesion classifier score under the floor",
    "low_tumor_probability": "faint tumor probability",
    "fine_pass": "found by the fine pass",
    "ct_scan": "CT scan: the network saw nothing (confidence = scan score)",
}


def candidate_reason_text(reason: Any) -> str:
    """The panel's words for a candidate's reason (an unknown code as it is)."""
    return CANDIDATE_REASON_TEXT.get(str(reason), str(reason))
