"""The quantity codes (SNOMED CT / DCM / IBSI) and UCUM units of every measurement, from ``Resources/Report``."""

from __future__ import annotations

import functools
import json
from typing import Any

from SmoothSegNetLib.resources import RESOURCES_DIR

#: The table of quantity codes, units and size thresholds (one source for JSON, CSV and DICOM SR).
MEASUREMENTS_JSON = RESOURCES_DIR / "Report" / "measurements.json"


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    with MEASUREMENTS_JSON.open(encoding="utf-8") as stream:
        data: dict[str, Any] = json.load(stream)
    return data


def measurement_codes() -> dict[str, dict[str, Any]]:
    """``{field name: {"quantity": {scheme, value, meaning}, "unit": {...}}}`` (a fresh copy)."""
    return json.loads(json.dumps(_table()["measurements"]))  # type: ignore[no-any-return]


def size_thresholds_mm() -> dict[str, Any]:
    """Size thresholds (mm) for RECIST, LI-RADS (size only), the paper's split and Milan."""
    return dict(_table()["size_thresholds_mm"])


def sr_concepts() -> dict[str, dict[str, str]]:
    """Other coded concepts of the DICOM SR (segmentation method, RECIST), ``{name: {scheme, value, meaning}}``."""
    return {k: dict(v) for k, v in _table()["sr_concepts"].items() if not k.startswith("_")}
