"""Settings of ``add-lesion``, read from ``Resources/Correction/add-lesion.json`` (chosen on tuning phantoms)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
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
        max_diameter_mm: the side of the window (mm, centred on the point) the region is grown in; a region
            reaching its edge has leaked.
        seed_radius_mm: the lesion's attenuation is the median of the smoothed CT in a ball of this radius.
        rounds: threshold rounds; after each, the liver's value is taken again from the ring around the region.
        ring_mm: inner and outer distance (mm) of that ring from the region.
        threshold_fraction: the region's edge lies this far from the liver's value towards the lesion's (0.5:
            half-way).
        rim_max_mm: a rim of the opposite sign (an enhancing rim around a dark core) is looked for up to this far
            out from the region (0 = never).
        rim_step_mm: width of the shells that profile the rim.
        rim_min_hu: a rim counts if it rises at least this much (HU) over the liver.
        skip_edge: leave the liver's edge voxels (in-plane) out of the statistics.
        min_radius_mm: a grown lesion's profile edge must lie at least this far from the point (smaller blobs of
            the liver's noise and texture are not lesions).
        min_contrast_z: a grown lesion's contrast must be at least this many times the ring's noise.
        network_first: try the network's component before growing from the point (else only when growing finds
            nothing).
        star_directions: rays of the star-shaped lesion (:mod:`SmoothSegNetLib.correction.star`; 0 = the ball of
            the shells' edge radius).
        star_cone_deg: a ray's stretch of the radial profile is fitted to the voxels within this angle of it.
        star_smooth_deg: each ray's stretch is the median of those of the rays within this angle of it.
        star_radius_range: the stretches tried: multiples of the shells' edge radius (low <= 1 <= high).
        fine_network_spacing_mm: when neither growing nor the network window at the card's spacing finds a lesion,
            run the network once more in a window of the card's ``roi_size_ijk`` at this isotropic spacing (mm),
            centred on the point, and take its component there (0 = never). A small or faint lesion spans more
            voxels on the finer grid.
        rim_fit: when growing finds nothing, fit a rim-enhancing lesion centred on the point
            (:mod:`SmoothSegNetLib.correction.rim_fit`; before the network's component unless ``network_first``):
            for a lesion whose centre has the liver's value.
        rim_fit_min_z: the fitted rim's amplitude must be at least this many standard errors (voxels closer than
            ``rim_fit.INDEPENDENT_MM`` count as one noise sample).
        rim_fit_min_cover: the fitted rim must stand out in at least this share (0–1) of the 14 direction sectors.
        recentre: the click need not be the lesion's centre: search again from the centre of the nearest blob when
            nothing is found at the click, and from the centre the lesion-like voxels imply when something is
            (:mod:`SmoothSegNetLib.correction.recentre`); a lesion found so must hold the voxel clicked.
        recentre_min_shift: the second search runs only if that centre lies at least this many times the found
            lesion's radius from the click (a click near the centre keeps its own lesion).
        click_network: first take the click network's component at the point
            (:mod:`SmoothSegNetLib.correction.click_net`, threshold from its ``click-net.json``); the other ways only
            when it finds nothing there.
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
    seed_radius_mm: float = 2.0
    rounds: int = 1
    ring_mm: tuple[float, float] = (2.0, 6.0)
    threshold_fraction: float = 0.5
    rim_max_mm: float = 0.0
    rim_step_mm: float = 1.0
    rim_min_hu: float = 10.0
    skip_edge: bool = True
    min_radius_mm: float = 0.0
    min_contrast_z: float = 0.0
    network_first: bool = True
    star_directions: int = 0
    star_cone_deg: float = 40.0
    star_smooth_deg: float = 30.0
    star_radius_range: tuple[float, float] = (0.7, 1.4)
    fine_network_spacing_mm: float = 0.0
    rim_fit: bool = False
    rim_fit_min_z: float = 8.0
    rim_fit_min_cover: float = 0.5
    recentre: bool = False
    recentre_min_shift: float = 0.5
    click_network: bool = False

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
            "seed_radius_mm",
            "threshold_fraction",
            "rim_max_mm",
            "rim_min_hu",
            "min_contrast_z",
            "min_radius_mm",
            "star_cone_deg",
            "star_smooth_deg",
            "fine_network_spacing_mm",
            "rim_fit_min_z",
            "recentre_min_shift",
        ):
            require_number(self, name, "add-lesion")
        if not (isinstance(self.rim_fit_min_cover, int | float) and 0 <= self.rim_fit_min_cover <= 1):
            raise InputError(
                f"add-lesion setting rim_fit_min_cover must be a number in [0, 1], got {self.rim_fit_min_cover!r}"
            )
        for flag in ("rim_fit", "region_growing", "network_first", "skip_edge", "recentre", "click_network"):
            if not isinstance(getattr(self, flag), bool):
                raise InputError(f"add-lesion setting {flag} must be true or false, got {getattr(self, flag)!r}")
        if not (isinstance(self.rounds, int) and self.rounds >= 0):
            raise InputError(f"add-lesion setting rounds must be an integer >= 0, got {self.rounds!r}")
        if not (isinstance(self.rim_step_mm, int | float) and self.rim_step_mm > 0):
            raise InputError(f"add-lesion setting rim_step_mm must be a number > 0, got {self.rim_step_mm!r}")
        if not (isinstance(self.star_directions, int) and self.star_directions >= 0):
            raise InputError(
                f"add-lesion setting star_directions must be an integer >= 0, got {self.star_directions!r}"
            )
        low, high = self.star_radius_range
        if not (0 < low <= 1.0 <= high):
            raise InputError(
                f"add-lesion setting star_radius_range must be [low, high] with 0 < low <= 1 <= high, "
                f"got {self.star_radius_range!r}"
            )
        inner, outer = self.ring_mm
        if not (0 <= inner < outer):
            raise InputError(
                f"add-lesion setting ring_mm must be [inner, outer] with 0 <= inner < outer, got {self.ring_mm!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AddLesionSettings:
        values = settings_values(cls, data, "add-lesion", ("thresholds", "ring_mm", "star_radius_range"))
        return cls(**values)


def require_number(settings: Any, name: str, what: str, above_zero: bool = False) -> None:
    """InputError unless the setting ``name`` of ``settings`` is a finite number >= 0 (> 0 with ``above_zero``)."""
    value = getattr(settings, name)
    if not (isinstance(value, int | float) and math.isfinite(value) and (value > 0 if above_zero else value >= 0)):
        bound = "> 0" if above_zero else ">= 0"
        raise InputError(f"{what} setting {name} must be a finite number {bound}, got {value!r}")


def settings_values(cls: type, data: Mapping[str, Any], what: str, tuples: tuple[str, ...]) -> dict[str, Any]:
    """The fields of the settings dataclass ``cls`` in ``data`` (its ``schema`` and ``tuning`` notes left out),
    the ``tuples`` made tuples of floats; an unknown key is an InputError naming ``what``."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known - {"schema", "tuning"})
    if unknown:
        raise InputError(f"unknown {what} settings {unknown}: known are {sorted(known)}")
    values = {k: v for k, v in data.items() if k in known}
    for name in tuples:
        if name in values:
            values[name] = tuple(float(t) for t in values[name])
    return values


def default_settings() -> AddLesionSettings:
    """The bundled settings (``Resources/Correction/add-lesion.json``), or the defaults above if it is absent."""
    path = SETTINGS_FILE
    if not path.is_file():
        return AddLesionSettings()
    return AddLesionSettings.from_dict(json.loads(path.read_text(encoding="utf-8")))
