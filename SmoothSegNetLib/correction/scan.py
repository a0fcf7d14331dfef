"""A scan of the liver for lesions the tumor network missed: a second reader for the review list.

The lesions the network misses are those it gives no probability (docs/small-lesions.md, section 1), so the
review list cannot hold them unless something else looks at the CT. This scan does, in four steps (arrays
``[k, j, i]``, distances in millimetres):

1. **A coarse grid.** The liver's box is averaged in blocks of whole voxels to about ``grid_mm`` (2 x 2 x 1
   voxels of a 0.75 x 0.75 x 1 mm CT), so the scan costs the same on any input and a coarse voxel is exactly
   a block of input voxels (no resampling; the way back is a copy of each coarse voxel into its block).
2. **Blob seeds.** The liver's CT (clipped to ``clip_hu`` around its median; outside the liver, the median) is
   described at each scale of ``scales_mm`` by the Hessian of its Gaussian smoothing: a dark blob has three
   positive eigenvalues, a bright one three negative; its strength is the weakest of the three times the scale
   squared (a vessel, curved along two axes only, is weak), divided by the 99th percentile of that strength over
   the liver at that scale (so noise at the finest scale does not outrank real blobs at coarser ones). The
   local maxima at least ``separation_mm`` apart, ``edge_mm`` inside the liver and ``clearance_mm`` away from
   every lesion, strongest first, are the ``seeds``.
3. **The add-lesion search at each seed** (:func:`SmoothSegNetLib.correction.search.find_lesion`, the bundled
   settings of a click, without the network): what it accepts as lesion-like is a *finding*; a seed inside an
   earlier finding, or a finding that mostly overlaps one, is skipped. The search needs an edge at least 4.5 mm
   from the seed, so where it finds nothing, the seed's own blob (:func:`small_blob`, within ``small_radius_mm``)
   is a *small finding*. A finding further than ``max_contrast_hu`` from its ring is air, fat, bone or contrast
   medium, and none.
4. **A score.** Each finding is described by the lesion classifier's features
   (:mod:`SmoothSegNetLib.inference.lesion_features`, on the coarse grid) and by its seed's (strength, eigenvalue
   ratios, scale, dark or bright), and scored by the model of ``Resources/Correction/scan.json`` (a logistic
   model or boosted trees; :mod:`SmoothSegNetLib.evaluation.scan_candidates` fits it and says on what). The
   findings with the highest scores (at least ``min_score``), as many as the caller asks for, are the scan's candidates.

A finding is never a lesion: it goes to the review list only (reason ``ct_scan``), for the radiologist to accept
or reject.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.correction.grow import away_from_lesions, distance_squared_mm, masked_smooth, window_box
from SmoothSegNetLib.correction.search import Crop, find_lesion
from SmoothSegNetLib.correction.settings import (
    AddLesionSettings,
    default_settings,
    require_number,
    settings_values,
)
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.inference.boosted_trees import BoostedTrees
from SmoothSegNetLib.inference.lesion_classifier import LogisticModel
from SmoothSegNetLib.inference.lesion_features import FEATURES, component_features
from SmoothSegNetLib.inference.thresholds import SCAN_SCORE_FLOOR
from SmoothSegNetLib.resample import crop_geometry
from SmoothSegNetLib.resources import RESOURCES_DIR
from SmoothSegNetLib.volume import Geometry

#: The bundled settings and score model (chosen and fitted on tuning phantoms only).
SCAN_FILE = RESOURCES_DIR / "Correction" / "scan.json"
#: The seed's own features, beside the lesion classifier's.
SEED_FEATURES = ("log_strength", "ratio_small", "ratio_mid", "scale_mm", "bright", "abs_contrast", "small")
#: Every feature a scan model may use.
SCAN_FEATURES = (*FEATURES, *SEED_FEATURES)
LIVER = 1
#: A blob weaker than this (the scale-normalised curvature, in HU) is none; it also floors the normalisation.
MIN_STRENGTH_HU = 1.0


@dataclass(frozen=True)
class ScanSettings:
    """How the liver is scanned (see the module docstring).

    Attributes:
        grid_mm: the coarse grid's voxel size to aim at (mm; whole input voxels are averaged).
        scales_mm: Gaussian scales of the blob detector (mm): lesions of about ``3.5 * scale`` mm across.
        clip_hu: the liver's CT is clipped to its median +- this (HU) before the blob detector.
        seeds: at most this many seeds are searched, strongest first.
        separation_mm: seeds are local maxima of the strength in a box of +- this.
        edge_mm: seeds lie at least this deep in the liver.
        clearance_mm: seeds lie at least this far from every lesion.
        window_mm: each search sees the CT within +- this of its seed.
        min_score: findings scored under this are not candidates.
        max_contrast_hu: a region whose mean HU lies further than this from its ring's (the lesion
            classifier's ``contrast``) is air, fat, bone or contrast medium, not a finding.
        small_radius_mm: where the search finds nothing at a seed, the seed's blob itself is a finding if it
            lies within this radius (0: never): the voxels around the seed's extreme, of its sign, at least
            half as far from the liver's median as the extreme (the CT smoothed at ``small_smoothing_mm``).
        small_smoothing_mm: the smoothing of a small finding's CT (mm).
        small_min_ml: a small finding holds at least this volume (ml; the pipeline lists no candidate under
            0.05 ml).
        model: the score model, logistic or boosted trees (``None``: findings are ranked by their seed's
            strength, all scored 0).
    """

    grid_mm: float = 1.5
    scales_mm: tuple[float, ...] = (1.5, 2.5, 4.0, 6.0)
    clip_hu: float = 80.0
    seeds: int = 150
    separation_mm: float = 4.0
    edge_mm: float = 1.5
    clearance_mm: float = 3.0
    window_mm: float = 40.0
    min_score: float = 0.0
    max_contrast_hu: float = 150.0
    small_radius_mm: float = 0.0
    small_smoothing_mm: float = 1.0
    small_min_ml: float = 0.05
    model: LogisticModel | BoostedTrees | None = None

    def __post_init__(self) -> None:
        for name in ("grid_mm", "clip_hu", "separation_mm", "window_mm", "max_contrast_hu"):
            require_number(self, name, "scan", above_zero=True)
        for name in ("edge_mm", "clearance_mm", "min_score", "small_radius_mm", "small_smoothing_mm", "small_min_ml"):
            require_number(self, name, "scan")
        if not self.scales_mm or not all(isinstance(s, int | float) and 0 < s < 50 for s in self.scales_mm):
            raise InputError(f"scan setting scales_mm must be numbers in (0, 50) mm, got {self.scales_mm!r}")
        if not (isinstance(self.seeds, int) and not isinstance(self.seeds, bool) and self.seeds >= 0):
            raise InputError(f"scan setting seeds must be an integer >= 0, got {self.seeds!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanSettings:
        values = settings_values(cls, data, "scan", ("scales_mm",))
        if values.get("model") is not None:
            try:
                if isinstance(values["model"], Mapping) and "kind" in values["model"]:
                    values["model"] = BoostedTrees.from_json(values["model"], SCAN_FEATURES)
                else:
                    values["model"] = LogisticModel.from_json(values["model"], SCAN_FEATURES)
            except ValueError as exc:
                raise InputError(f"scan setting model: {exc}") from exc
        return cls(**values)


def default_scan_settings() -> ScanSettings:
    """The bundled settings (``Resources/Correction/scan.json``), or the defaults above (no model) if absent."""
    if not SCAN_FILE.is_file():
        return ScanSettings()
    return ScanSettings.from_dict(json.loads(SCAN_FILE.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Finding:
    """One lesion-like region the scan found, on the input grid.

    Attributes:
        box: ``[k, j, i]`` slices of the input grid holding ``mask``.
        mask: bool on ``box``.
        score: the score model's probability that it is a lesion the network missed (0 without a model).
        features: what the score was computed from.
        seed_kji: the seed's voxel (input grid, the centre of its coarse block).
    """

    box: tuple[slice, slice, slice]
    mask: np.ndarray
    score: float
    features: dict[str, float]
    seed_kji: tuple[int, int, int]


@dataclass(frozen=True)
class _Coarse:
    """The liver's box averaged in blocks: ``factor`` input voxels per coarse voxel along k, j, i, from
    ``start`` (an input voxel index, the block corner)."""

    hu: np.ndarray
    liver: np.ndarray  # label 1 (liver, no lesion) in at least half of the block
    organ: np.ndarray  # liver or lesion in at least half of the block
    lesion: np.ndarray  # a lesion voxel anywhere in the block
    factor: tuple[int, int, int]
    start: tuple[int, int, int]
    geometry: Geometry

    def block(self, voxel: tuple[int, ...]) -> tuple[slice, slice, slice]:
        k, j, i = (s + v * f for s, v, f in zip(self.start, voxel, self.factor))
        fk, fj, fi = self.factor
        return (slice(k, k + fk), slice(j, j + fj), slice(i, i + fi))


def scan_liver(
    hu: np.ndarray,
    geometry: Geometry,
    labelmap: np.ndarray,
    lesions: np.ndarray,
    limit: int | None,
    settings: ScanSettings | None = None,
    search: AddLesionSettings | None = None,
) -> list[Finding]:
    """The scan's ``limit`` best findings on one case (see the module docstring), highest score first.

    Args:
        hu: the CT (HU), ``[k, j, i]`` on ``geometry``.
        geometry: the input grid.
        labelmap: uint8 on the same grid: 1 liver, 2 tumor.
        lesions: lesion instances on the same grid (findings keep one voxel away from every lesion).
        limit: at most this many findings (0: none, and nothing is scanned; ``None``: every finding scored at
            least ``min_score``, for a caller that drops some, such as those on a review candidate, before it
            keeps its own number).
        settings: the scan's settings (default: the bundled ones).
        search: the add-lesion search's settings (default: the bundled ones).
    """
    if limit is not None and limit < 1:
        return []
    s = settings if settings is not None else default_scan_settings()
    findings = scan_findings(hu, geometry, labelmap, lesions, s, search)
    if s.model is not None:
        findings = [replace(f, score=s.model.score(f.features)) for f in findings]
        findings = [f for f in findings if f.score >= s.min_score]
        findings.sort(key=lambda f: -f.score)  # stable: equal scores keep the seeds' order
    return findings if limit is None else findings[:limit]


def scan_findings(
    hu: np.ndarray,
    geometry: Geometry,
    labelmap: np.ndarray,
    lesions: np.ndarray,
    settings: ScanSettings,
    search: AddLesionSettings | None = None,
) -> list[Finding]:
    """Every finding of the scan, unscored, in the order of their seeds' strength."""
    if not (hu.shape == labelmap.shape == lesions.shape == geometry.shape_kji):
        raise InputError(
            f"the scan needs the CT, labelmap and lesions on one grid: {hu.shape}, {labelmap.shape}, "
            f"{lesions.shape}, geometry {geometry.shape_kji}"
        )
    coarse = _coarse(hu, geometry, labelmap, lesions, settings.grid_mm)
    if coarse is None:
        return []
    spacing = np.asarray(coarse.geometry.spacing_mm[::-1], dtype=float)
    seeds = blob_seeds(coarse.hu, coarse.liver, coarse.lesion, spacing, settings)
    if not seeds:
        return []
    s = search if search is not None else default_settings()
    allowed = away_from_lesions(coarse.liver, coarse.lesion)
    taken = np.zeros(coarse.hu.shape, dtype=bool)
    smooth = None
    if settings.small_radius_mm > 0:
        median = float(np.median(coarse.hu[coarse.liver]))
        smooth = masked_smooth(coarse.hu - median, coarse.liver, spacing, settings.small_smoothing_mm)
    out: list[Finding] = []
    for seed in seeds:
        voxel = seed.voxel
        if taken[voxel]:
            continue
        box = window_box(voxel, settings.window_mm, spacing, coarse.hu.shape)
        local = tuple(v - b.start for v, b in zip(voxel, box))
        crop_hu = coarse.hu[box]
        found = find_lesion(Crop(crop_hu, np.zeros(crop_hu.shape, np.float32), allowed[box], local, spacing), s)
        small = 0.0
        if found is not None:
            whole = found.mask
        elif smooth is not None:
            blob = small_blob(smooth[box], allowed[box], local, seed.bright, spacing, settings)
            if blob is None:
                continue
            whole, small = blob, 1.0
        else:
            continue
        mask = whole & ~taken[box]
        if np.count_nonzero(mask) < 0.7 * np.count_nonzero(whole) or not mask.any():
            continue
        # One coarse voxel of gap to every earlier finding, so that no two are one component on the input grid.
        mask = away_from_lesions(mask, taken[box])
        if not mask.any():
            continue
        features = component_features(
            mask.astype(np.int32),
            np.zeros(mask.shape, np.float32),
            crop_hu,
            coarse.organ[box],
            crop_geometry(coarse.geometry, (box[0], box[1], box[2])),
            [1],
        )[1]
        features.update(seed.features())
        features["abs_contrast"] = abs(features["contrast"])
        features["small"] = small
        if features["abs_contrast"] > settings.max_contrast_hu:
            continue  # air, fat, bone or contrast medium: not a lesion (its voxels stay free)
        taken[box] |= mask
        out.append(_on_input_grid(coarse, box, mask, features, voxel, labelmap, lesions))
    return out


def small_blob(
    smooth: np.ndarray,
    allowed: np.ndarray,
    voxel: tuple[int, ...],
    bright: bool,
    spacing_kji: np.ndarray,
    settings: ScanSettings,
) -> np.ndarray | None:
    """The seed's own blob, for a seed where the search found nothing (a lesion too small for its edge test):
    around the extreme of ``smooth`` (the liver's CT less its median, smoothed) among the seed and its 26
    neighbours, the voxels within ``settings.small_radius_mm`` of it, of the seed's sign and at least half as
    far from 0, connected to it (a blob that goes on beyond is cut there: the feature ``continues`` tells); ``None``
    if the extreme is not of that sign or the blob holds less than ``settings.small_min_ml``. Bool on ``smooth``."""
    sign = 1.0 if bright else -1.0
    near = tuple(slice(max(0, v - 1), min(n, v + 2)) for v, n in zip(voxel, smooth.shape))
    values = np.where(allowed[near], sign * smooth[near], -np.inf)
    offset = np.unravel_index(int(np.argmax(values)), values.shape)
    peak_value = float(values[offset])
    if not peak_value > 0:
        return None
    peak = tuple(int(b.start + o) for b, o in zip(near, offset))
    box = window_box(peak, settings.small_radius_mm, spacing_kji, smooth.shape)
    local = tuple(p - b.start for p, b in zip(peak, box))
    ball = distance_squared_mm(local, smooth[box].shape, spacing_kji) <= settings.small_radius_mm**2
    labels, _ = ndimage.label(ball & allowed[box] & (sign * smooth[box] >= 0.5 * peak_value))
    blob = labels == labels[local]
    if np.count_nonzero(blob) * float(np.prod(spacing_kji)) < settings.small_min_ml * 1000.0:
        return None
    out = np.zeros(smooth.shape, dtype=bool)
    out[box] = blob
    return out


@dataclass(frozen=True)
class Seed:
    """A blob seed on the coarse grid: its voxel, strength (normalised), the ratios of its eigenvalues'
    magnitudes (smallest / largest, middle / largest: 1 for a ball), its scale and whether it is bright."""

    voxel: tuple[int, int, int]
    strength: float
    ratio_small: float
    ratio_mid: float
    scale_mm: float
    bright: bool

    def features(self) -> dict[str, float]:
        return {
            "log_strength": math.log(max(self.strength, 1e-6)),
            "ratio_small": self.ratio_small,
            "ratio_mid": self.ratio_mid,
            "scale_mm": self.scale_mm,
            "bright": 1.0 if self.bright else 0.0,
        }


def blob_seeds(
    hu: np.ndarray, liver: np.ndarray, lesion: np.ndarray, spacing_kji: np.ndarray, settings: ScanSettings
) -> list[Seed]:
    """The scan's seeds (step 2 of the module docstring), strongest first."""
    if not liver.any():
        return []
    values = hu[liver].astype(np.float32)
    median = float(np.median(values))
    # Around the median (0): a truncated Gaussian derivative kernel does not sum to exactly 0, so a constant
    # offset would read as a curvature.
    image = np.where(liver, np.clip(hu - median, -settings.clip_hu, settings.clip_hu), 0.0).astype(np.float32)
    depth = ndimage.distance_transform_edt(np.pad(liver, 1), sampling=spacing_kji)[1:-1, 1:-1, 1:-1]
    eligible = liver & (depth >= settings.edge_mm)
    if lesion.any():
        eligible &= ndimage.distance_transform_edt(~lesion, sampling=spacing_kji) >= settings.clearance_mm
    where = np.nonzero(eligible)
    if not len(where[0]):
        return []
    count = len(where[0])
    best = np.zeros(count, np.float32)
    ratios = np.zeros((count, 2), np.float32)
    scale_of = np.zeros(count, np.float32)
    bright_of = np.zeros(count, bool)
    for scale in settings.scales_mm:
        eigen = np.linalg.eigvalsh(_hessian(image, scale, spacing_kji)[where].astype(np.float64)) * scale * scale
        dark, bright = eigen[:, 0] > 0, eigen[:, 2] < 0
        strength = np.where(dark, eigen[:, 0], np.where(bright, -eigen[:, 2], 0.0))
        strength[strength < MIN_STRENGTH_HU] = 0.0  # rounding on a flat image is no blob
        strength = strength / max(float(np.quantile(strength, 0.99)), MIN_STRENGTH_HU)
        size = np.sort(np.abs(eigen), axis=1)
        top = np.maximum(size[:, 2], 1e-12)
        better = strength > best
        best = np.where(better, strength, best).astype(np.float32)
        ratios[better] = np.stack([size[:, 0] / top, size[:, 1] / top], axis=1)[better]
        scale_of[better] = scale
        bright_of[better] = bright[better]
    field_ = np.zeros(hu.shape, np.float32)
    field_[where] = best
    reach = np.maximum(1, np.round(settings.separation_mm / spacing_kji).astype(int))
    peaks = (field_ == ndimage.maximum_filter(field_, size=tuple(2 * reach + 1))) & (field_ > 0) & eligible
    index = np.full(hu.shape, -1, np.int64)
    index[where] = np.arange(count)
    points = np.argwhere(peaks)
    rows = index[tuple(points.T)]
    order = np.lexsort((rows, -best[rows]))[: settings.seeds]  # strongest first; ties in grid order
    return [
        Seed(
            voxel=(int(points[o][0]), int(points[o][1]), int(points[o][2])),
            strength=float(best[rows[o]]),
            ratio_small=float(ratios[rows[o], 0]),
            ratio_mid=float(ratios[rows[o], 1]),
            scale_mm=float(scale_of[rows[o]]),
            bright=bool(bright_of[rows[o]]),
        )
        for o in order
    ]


def _hessian(image: np.ndarray, scale_mm: float, spacing_kji: np.ndarray) -> np.ndarray:
    """The Hessian (per mm squared) of ``image`` smoothed by a Gaussian of ``scale_mm``: ``[..., 3, 3]``."""
    sigma = [scale_mm / float(d) for d in spacing_kji]
    out = np.empty((*image.shape, 3, 3), np.float32)
    for a in range(3):
        for b in range(a, 3):
            order = [0, 0, 0]
            order[a] += 1
            order[b] += 1
            value = ndimage.gaussian_filter(image, sigma, order=order, truncate=3.0) / (
                float(spacing_kji[a]) * float(spacing_kji[b])
            )
            out[..., a, b] = value
            out[..., b, a] = value
    return out


def _coarse(
    hu: np.ndarray, geometry: Geometry, labelmap: np.ndarray, lesions: np.ndarray, grid_mm: float
) -> _Coarse | None:
    """The liver's box (label 1 and lesions) averaged in blocks of about ``grid_mm``; ``None`` without liver."""
    organ = (labelmap == LIVER) | (lesions > 0)
    found = ndimage.find_objects(organ.astype(np.uint8))
    if not found or found[0] is None:
        return None
    spacing_kji = np.asarray(geometry.spacing_mm[::-1], dtype=float)
    factor = tuple(max(1, int(round(grid_mm / float(d)))) for d in spacing_kji)
    start = tuple(int(s.start) for s in found[0])
    blocks = tuple(-(-(s.stop - s.start) // f) for s, f in zip(found[0], factor))
    stop = tuple(b0 + n * f for b0, n, f in zip(start, blocks, factor))
    pad = [(0, max(0, e - n)) for e, n in zip(stop, hu.shape)]
    box = tuple(slice(b0, min(e, n)) for b0, e, n in zip(start, stop, hu.shape))

    def blocked(boxed: np.ndarray, mode: str) -> np.ndarray:
        padded = np.pad(boxed, pad, mode="edge" if mode == "edge" else "constant")
        shaped = padded.reshape(blocks[0], factor[0], blocks[1], factor[1], blocks[2], factor[2])
        return np.asarray(shaped.mean(axis=(1, 3, 5)) if mode != "any" else shaped.any(axis=(1, 3, 5)))

    # Only the box is converted (a whole 512 x 512 x 300 CT as float32 is 300 MB).
    coarse_hu = blocked(hu[box].astype(np.float32), "edge").astype(np.float32)
    liver = blocked((labelmap[box] == LIVER).astype(np.float32), "zero") >= 0.5
    whole = blocked(organ[box].astype(np.float32), "zero") >= 0.5
    lesion = blocked(lesions[box] > 0, "any")
    liver &= ~lesion
    centre = np.array(
        [start[2] + (factor[2] - 1) / 2.0, start[1] + (factor[1] - 1) / 2.0, start[0] + (factor[0] - 1) / 2.0]
    )
    grid = Geometry.create(
        blocks,
        tuple(float(d) * f for d, f in zip(geometry.spacing_mm, factor[::-1])),
        geometry.index_to_lps(centre),
        geometry.direction_array,
    )
    corner = (start[0], start[1], start[2])
    return _Coarse(coarse_hu, liver, whole, lesion, (factor[0], factor[1], factor[2]), corner, grid)


def _on_input_grid(
    coarse: _Coarse,
    box: tuple[slice, ...],
    mask: np.ndarray,
    features: dict[str, float],
    voxel: tuple[int, int, int],
    labelmap: np.ndarray,
    lesions: np.ndarray,
) -> Finding:
    """The finding's coarse voxels as their blocks of input voxels (liver only, one voxel from every lesion)."""
    sub = ndimage.find_objects(mask.astype(np.uint8))[0]
    corner = tuple(b.start + s.start for b, s in zip(box, sub))
    small = mask[sub]
    for axis, f in enumerate(coarse.factor):
        small = np.repeat(small, f, axis=axis)
    first = tuple(s + c * f for s, c, f in zip(coarse.start, corner, coarse.factor))
    last = tuple(min(a + n, size) for a, n, size in zip(first, small.shape, labelmap.shape))
    out_box = (slice(first[0], last[0]), slice(first[1], last[1]), slice(first[2], last[2]))
    small = small[tuple(slice(0, b.stop - b.start) for b in out_box)]
    small = small & away_from_lesions(labelmap[out_box] == LIVER, lesions[out_box] > 0)
    centre = coarse.block(voxel)
    seed = tuple(min(c.start + (c.stop - c.start - 1) // 2, n - 1) for c, n in zip(centre, labelmap.shape))
    return Finding(out_box, small, 0.0, features, (int(seed[0]), int(seed[1]), int(seed[2])))


def findings_score_map(findings: list[Finding], shape: tuple[int, ...]) -> np.ndarray:
    """float32 ``shape``: each finding's voxels hold its score (at least ``SCAN_SCORE_FLOOR``), 0 elsewhere."""
    out = np.zeros(shape, np.float32)
    for f in findings:
        region = out[f.box]
        region[f.mask] = max(f.score, SCAN_SCORE_FLOOR)
    return out
