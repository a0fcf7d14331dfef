"""The search for one lesion around a point, on a crop of the CT (no network run here: its probability is given).

Two ways, in the order the settings give (``network_first``): the tumor network's component at the point
(thresholded probability, closed, hole-filled), and growing from the point by contrast
(:func:`SmoothSegNetLib.correction.grow.region_grow`); when growing finds nothing and ``rim_fit`` is set, a
rim-enhancing lesion fitted around the point (:mod:`SmoothSegNetLib.correction.rim_fit`) is tried next, before
the network's component when growing comes first (on synthetic rims whose core reads as liver, the network's
component at the point scored Dice 0.16–0.75, the fit 0.87–1.0). A grown region must look like a lesion: big enough,
closed (it did not leak to the edge of its window), and standing out from the liver ring around it by
``min_contrast_hu`` and by ``min_contrast_z`` times the ring's noise. With ``recentre`` a click off the lesion's
centre is searched again from the centre it points to (:func:`find_lesion`). Arrays are ``[k, j, i]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.correction.grow import component_near, region_grow
from SmoothSegNetLib.correction.recentre import blob_centre, distance_mm, equivalent_radius_mm, mean_shift_centre
from SmoothSegNetLib.correction.rim_fit import rim_lesion
from SmoothSegNetLib.correction.settings import AddLesionSettings
from SmoothSegNetLib.inference.postprocess import chan_vese_refine
from SmoothSegNetLib.inference.preprocess import window_hu

_BALL6 = ndimage.generate_binary_structure(3, 1)
NETWORK, REGION_GROWING, RIM_FIT, CLICK_NETWORK = "network", "region_growing", "rim_fit", "click_network"


@dataclass(frozen=True)
class Found:
    """A lesion found on the crop: its mask, how (``network`` at ``threshold``, ``region_growing`` or
    ``rim_fit``), its mean HU minus the mean HU of the liver ring around it, and the crop voxel the search that
    found it started from when that was not the click (re-centring), else ``None``."""

    mask: np.ndarray
    method: str
    threshold: float | None
    contrast_hu: float
    searched_from: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Crop:
    """What the search sees: the CT (HU), the tumor probability, the allowed voxels, the point, the grid."""

    hu: np.ndarray
    q: np.ndarray
    allowed: np.ndarray
    voxel: tuple[int, int, int]
    spacing_kji: np.ndarray
    #: The click network's probability of the clicked lesion on the crop, and its threshold (``None``: not run).
    click_q: np.ndarray | None = None
    click_threshold: float = 0.5

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing_kji)) / 1000.0

    def moved(self, voxel: tuple[int, ...]) -> Crop:
        """The same crop, searched from ``voxel``."""
        k, j, i = (int(v) for v in voxel)
        return replace(self, voxel=(k, j, i))


def find_lesion(
    crop: Crop, settings: AddLesionSettings, chan_vese_iterations: int = 0, hu_window: tuple[float, float] = (-200, 250)
) -> Found | None:
    """The lesion at ``crop.voxel`` (see the module docstring), or ``None`` if nothing lesion-like is there.

    With ``settings.recentre`` the click need not be the lesion's centre (:mod:`SmoothSegNetLib.correction.recentre`):
    when nothing is found at it, the search runs again from the centre of the strongest blob that reaches it; then,
    when something is found (not by the ring fit, which is centred by its fit), once more from the centre that the
    lesion-like voxels around it imply (a mean shift), if that lies at least ``recentre_min_shift`` times the
    lesion's radius away. A lesion found from another centre is kept only if it holds the voxel clicked.

    With ``settings.click_network`` (and ``crop.click_q`` given) the click network's component at the click comes
    first, as found (it was trained on clicks off the centre); the other ways run only when it finds nothing."""
    if settings.click_network:
        by_click = _by_click_network(crop, settings)
        if by_click is not None:
            return by_click
    found = _search_at(crop, settings, chan_vese_iterations, hu_window)
    if not settings.recentre:
        return found
    click = tuple(crop.voxel)
    if found is None:
        centre = blob_centre(crop.hu, crop.allowed, click, crop.spacing_kji)
        if centre is not None and centre != click:
            found = _holding(_search_at(crop.moved(centre), settings, chan_vese_iterations, hu_window), click)
            found = replace(found, searched_from=centre) if found is not None else None
    if found is None or found.method == RIM_FIT:
        return found
    radius = equivalent_radius_mm(found.mask, crop.spacing_kji)
    centre = mean_shift_centre(
        crop.hu, crop.allowed, radius, found.contrast_hu, click, crop.spacing_kji, settings.smoothing_mm
    )
    if centre == click or not crop.allowed[centre]:
        return found
    if distance_mm(centre, click, crop.spacing_kji) < settings.recentre_min_shift * radius:
        return found
    again = _holding(_search_at(crop.moved(centre), settings, chan_vese_iterations, hu_window), click)
    return replace(again, searched_from=centre) if again is not None else found


def _search_at(
    crop: Crop, settings: AddLesionSettings, chan_vese_iterations: int, hu_window: tuple[float, float]
) -> Found | None:
    """The ways in turn at ``crop.voxel`` (no re-centring)."""
    ways = (
        (_by_network, _by_growing, _by_rim_fit) if settings.network_first else (_by_growing, _by_rim_fit, _by_network)
    )
    for way in ways:
        found = way(crop, settings, chan_vese_iterations, hu_window)
        if found is not None:
            return found
    return None


def _holding(found: Found | None, voxel: tuple[int, ...]) -> Found | None:
    """``found`` if its mask holds ``voxel`` (the one the user clicked), else ``None``."""
    return found if found is not None and bool(found.mask[voxel]) else None


def network_component(
    crop: Crop, s: AddLesionSettings, chan_vese_iterations: int = 0, hu_window: tuple[float, float] = (-200, 250)
) -> Found | None:
    """The network's component at ``crop.voxel`` (the first of ``s.thresholds`` that gives one near the point,
    closed, hole-filled, refined), or ``None``; growing is not tried."""
    return _by_network(crop, s, chan_vese_iterations, hu_window)


def _by_network(
    crop: Crop, s: AddLesionSettings, chan_vese_iterations: int, hu_window: tuple[float, float]
) -> Found | None:
    for threshold in s.thresholds:
        mask = component_near(crop.q >= threshold, crop.allowed, crop.voxel, crop.spacing_kji, s.snap_mm)
        if mask is None:
            continue
        mask = _refine(crop, mask, s, chan_vese_iterations, hu_window)
        # The network's own decision is the lesion test here (a rim-enhancing lesion's mean HU is the
        # liver's); only its size is checked.
        if np.count_nonzero(mask) * crop.voxel_ml >= s.min_volume_ml:
            return Found(mask, NETWORK, threshold, contrast_hu(crop.hu, mask, crop.allowed, crop.spacing_kji))
    return None


def _by_click_network(crop: Crop, s: AddLesionSettings) -> Found | None:
    """The click network's component at (or within ``snap_mm`` of) the click, if it is at least
    ``min_volume_ml``; the network's answer is the lesion test."""
    if crop.click_q is None:
        return None
    mask = component_near(crop.click_q >= crop.click_threshold, crop.allowed, crop.voxel, crop.spacing_kji, s.snap_mm)
    if mask is None or np.count_nonzero(mask) * crop.voxel_ml < s.min_volume_ml:
        return None
    return Found(mask, CLICK_NETWORK, crop.click_threshold, contrast_hu(crop.hu, mask, crop.allowed, crop.spacing_kji))


def _by_growing(
    crop: Crop, s: AddLesionSettings, _chan_vese_iterations: int, _hu_window: tuple[float, float]
) -> Found | None:
    if not s.region_growing:
        return None
    grown = region_grow(crop.hu, crop.allowed, crop.voxel, crop.spacing_kji, s)
    if grown is None or grown.leaked or grown.contrast_z < s.min_contrast_z or grown.radius_mm < s.min_radius_mm:
        return None
    mask = component_near(grown.mask, crop.allowed, crop.voxel, crop.spacing_kji, s.snap_mm)
    if mask is None or np.count_nonzero(mask) * crop.voxel_ml < s.min_volume_ml:
        return None
    # The contrast test was made on the profile (region_grow); this figure is only reported.
    return Found(mask, REGION_GROWING, None, contrast_hu(crop.hu, mask, crop.allowed, crop.spacing_kji))


def _by_rim_fit(
    crop: Crop, s: AddLesionSettings, _chan_vese_iterations: int, _hu_window: tuple[float, float]
) -> Found | None:
    if not s.rim_fit:
        return None
    mask = rim_lesion(
        crop.hu, crop.allowed, crop.voxel, crop.spacing_kji, s.rim_fit_min_z, s.rim_fit_min_cover, s.min_radius_mm
    )
    if mask is None or np.count_nonzero(mask) * crop.voxel_ml < s.min_volume_ml:
        return None
    return Found(mask, RIM_FIT, None, contrast_hu(crop.hu, mask, crop.allowed, crop.spacing_kji))


def _refine(
    crop: Crop, mask: np.ndarray, s: AddLesionSettings, chan_vese_iterations: int, hu_window: tuple[float, float]
) -> np.ndarray:
    spacing, voxel, allowed = crop.spacing_kji, crop.voxel, crop.allowed
    if s.closing_mm > 0:
        # Closes a rim seen as a broken ring (rim-enhancing lesions) so that filling can reach its centre.
        steps = max(1, int(round(s.closing_mm / float(spacing.min()))))
        mask = ndimage.binary_closing(np.pad(mask, steps), _BALL6, iterations=steps)[
            tuple(slice(steps, -steps) for _ in range(3))
        ]
    filled = component_near(ndimage.binary_fill_holes(mask), allowed, voxel, spacing, s.snap_mm)
    if filled is not None:  # always: it holds the component found before
        mask = filled
    iterations = s.chan_vese_iterations if s.chan_vese_iterations is not None else chan_vese_iterations
    if iterations:
        refined = chan_vese_refine(window_hu(crop.hu, hu_window), mask, allowed, iterations)
        again = component_near(refined, allowed, voxel, spacing, s.snap_mm)
        if again is not None:
            mask = again
    return mask


def contrast_hu(hu: np.ndarray, mask: np.ndarray, allowed: np.ndarray, spacing_kji: np.ndarray) -> float:
    """Mean HU of the mask minus mean HU of the allowed voxels within 4 mm around it (0 if there are none)."""
    steps = max(1, int(round(4.0 / float(spacing_kji.min()))))
    found = ndimage.find_objects(mask.astype(np.uint8))
    if not found:
        return 0.0
    sub = tuple(slice(max(0, f.start - steps), min(n, f.stop + steps)) for f, n in zip(found[0], mask.shape))
    grown = ndimage.binary_dilation(mask[sub], structure=_BALL6, iterations=steps)
    ring = grown & ~mask[sub] & allowed[sub]
    if not ring.any():
        return 0.0
    return float(hu[mask].mean()) - float(hu[sub][ring].mean())
