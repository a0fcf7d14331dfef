"""Names, colours and SNOMED codes of the result's segments, from ``Resources/Terminology/segments.json``.

TODO(helper C): read through ``SmoothSegNetLib.terminology.load_terminology`` once it exists, so the
label table has one reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from SmoothSegNetLib.slicer_support.lesion_table import RESOURCES_DIR

TERMINOLOGY_FILE = RESOURCES_DIR / "Terminology" / "segments.json"


@dataclass(frozen=True)
class Code:
    """A coded concept (DICOM: CodingSchemeDesignator, CodeValue, CodeMeaning)."""

    scheme: str
    value: str
    meaning: str


@dataclass(frozen=True)
class SegmentStyle:
    """How a label value is shown and coded in Slicer."""

    label: int
    name: str
    color_rgb: tuple[int, int, int]
    category: Code
    type: Code
    anatomic_region: Code | None = None
    lesion_name_format: str | None = None


@lru_cache(maxsize=1)
def segment_styles(path: Path = TERMINOLOGY_FILE) -> dict[int, SegmentStyle]:
    """Label value -> style, for the labels that appear in segment outputs (training-only ones left out)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    styles = {}
    for entry in data["segments"]:
        if entry.get("training_only"):
            continue
        region = entry.get("anatomic_region")
        styles[int(entry["label"])] = SegmentStyle(
            label=int(entry["label"]),
            name=str(entry["name"]),
            color_rgb=tuple(int(c) for c in entry["color_rgb"]),  # type: ignore[arg-type]
            category=Code(**entry["category"]),
            type=Code(**entry["type"]),
            anatomic_region=Code(**region) if region else None,
            lesion_name_format=entry.get("lesion_name_format"),
        )
    return styles
