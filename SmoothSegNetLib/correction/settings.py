"""Settings of ``add-lesion``, read from ``Resources/Correction/add-lesion.json`` (chosen on tuning phantoms)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.resources import RESOURCES_DIR

#: The bundled settings (a JSON table beside the model cards' folder, not inside it: the registry reads that).
SETTINGS_FILE = RESOURCES_DIR / "Correction" / "add-lesion.json"


@dataclass(frozen=True)
class AddLesionSettings:
    """How one lesion is segmented around a point.

    Attributes:
        thresholds: tumor decision probabilities tried in turn (the first that gives a component near the point
            wins); the pipeline's own threshold is 0.5.
        snap_mm: a component whose nearest voxel lies within this distance of the point counts as clicked.
        chan_vese_iterations: morphological Chan–Vese steps on the found component (``None`` = the tumor card's).
        closing_mm: morphological closing (mm, 6-connected steps) of the found component before its holes are
            filled (0 = none).
        region_growing: when the network finds nothing, grow a region of similar attenuation from the point.
        smoothing_mm: Gaussian sigma (mm) of the CT before region growing.
        opening_mm: morphological opening (mm) of the grown region, to cut thin bridges to vessels (0 = none).
        min_contrast_hu: a lesion must differ from the liver around it by at least this much (mean HU).
        min_volume_ml: smaller regions are not lesions.
        max_diameter_mm: a grown region reaching farther than half of this from the point has leaked: refused.
    """

    thresholds: tuple[float, ...] = (0.5, 0.3)
    snap_mm: float = 3.0
    chan_vese_iterations: int | None = None
    closing_mm: float = 0.0
    region_growing: bool = True
    smoothing_mm: float = 1.5
    opening_mm: float = 0.0
    min_contrast_hu: float = 10.0
    min_volume_ml: float = 0.05
    max_diameter_mm: float = 80.0

    def __post_init__(self) -> None:
        if not self.thresholds or not all(0.0 < t < 1.0 for t in self.thresholds):
            raise InputError(f"add-lesion thresholds must be numbers in (0, 1), got {self.thresholds!r}")
        for name in (
            "snap_mm",
            "closing_mm",
            "smoothing_mm",
            "opening_mm",
            "min_contrast_hu",
            "min_volume_ml",
            "max_diameter_mm",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InputError(f"add-lesion setting {name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AddLesionSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"schema", "tuning"})
        if unknown:
            raise InputError(f"unknown add-lesion settings {unknown}: known are {sorted(known)}")
        values = {k: v for k, v in data.items() if k in known}
        if "thresholds" in values:
            values["thresholds"] = tuple(float(t) for t in values["thresholds"])
        return cls(**values)


def default_settings() -> AddLesionSettings:
    """The bundled settings (``Resources/Correction/add-lesion.json``), or the defaults above if it is absent."""
    path = SETTINGS_FILE
    if not path.is_file():
        return AddLesionSettings()
    return AddLesionSettings.from_dict(json.loads(path.read_text(encoding="utf-8")))
