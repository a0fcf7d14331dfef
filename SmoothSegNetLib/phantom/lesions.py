"""Liver lesions: how many, how big, where, what they look like (drawn in millimetres, not on a grid)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from SmoothSegNetLib.phantom.raster import Paint
from SmoothSegNetLib.phantom.shapes import Ellipsoid, Waves, rotation_matrix
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE, LesionKind, Phase, T, load_table
from SmoothSegNetLib.phantom.vessels import LiverTest

MIN_DIAMETER_MM = 5.0
MAX_DIAMETER_MM = 120.0
#: Probability that a phantom has no lesion at all.
TUMOR_FREE_PROBABILITY = 0.15
MAX_COUNT = 8


@dataclass(frozen=True)
class LesionSpec:
    """One drawn lesion (anatomy frame) with its appearance.

    Attributes:
        kind: hypo-, hyperdense or rim-enhancing.
        ellipsoid: the shape (nominal semi-axes in mm, rotation, wavy margin).
        diameters_mm: nominal diameters (twice the semi-axes), largest first.
        delta_hu: lesion minus surrounding liver attenuation.
        rim_delta_hu: extra attenuation of the enhancing rim (0 unless rim-enhancing).
        rim_mm: rim thickness.
        necrosis_delta_hu: extra (negative) attenuation of a necrotic core (0 if none).
        margin_mm: width of the soft transition to the liver.
        texture: internal heterogeneity in HU (a smooth random field; mosaic of larger tumors).
    """

    kind: LesionKind
    ellipsoid: Ellipsoid
    diameters_mm: tuple[float, float, float]
    delta_hu: float
    rim_delta_hu: float
    rim_mm: float
    necrosis_delta_hu: float
    margin_mm: float
    texture: Waves | None = None

    @property
    def mean_radius_mm(self) -> float:
        return float(np.mean(self.diameters_mm)) / 2.0


def _draw_kind(rng: np.random.Generator, phase: Phase) -> LesionKind:
    kinds = load_table()["lesion_kinds"]
    names = list(kinds)
    weights = np.array([kinds[n]["probability"][phase.value] for n in names], dtype=float)
    return LesionKind(names[int(rng.choice(len(names), p=weights / weights.sum()))])


def _draw_diameters(rng: np.random.Generator) -> list[float]:
    if rng.random() < TUMOR_FREE_PROBABILITY:
        return []
    count = int(min(1 + rng.poisson(1.3), MAX_COUNT))
    first = float(np.exp(rng.uniform(np.log(15.0), np.log(MAX_DIAMETER_MM))))
    others = np.exp(rng.uniform(np.log(MIN_DIAMETER_MM), np.log(45.0), size=count - 1))
    return [first, *(float(d) for d in others)]


def _liver_points(rng: np.random.Generator, liver_bbox: tuple, in_liver: LiverTest) -> np.ndarray:
    lo, hi = (np.asarray(b) for b in liver_bbox)
    pts = rng.uniform(lo, hi, size=(6000, 3))
    return np.asarray(pts[in_liver(pts)])


def _fits(center: np.ndarray, radius: float, in_liver: LiverTest, need: float) -> bool:
    dirs = np.array([[x, y, z] for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1) if (x, y, z) != (0, 0, 0)])
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    ring = center + dirs * radius * 0.6
    return float(np.mean(in_liver(ring))) >= need


def _apart(center: np.ndarray, d: float, others: list[LesionSpec]) -> bool:
    """Separate nodules: a lesion of diameter ``d`` at ``center`` and the ``others`` do not touch, their wavy
    margins (+10 %) included."""
    return all(
        np.linalg.norm(center - np.asarray(o.ellipsoid.center)) > 1.15 * (d / 2 + o.diameters_mm[0] / 2) + 3.0
        for o in others
    )


def draw_lesions(rng: np.random.Generator, phase: Phase, liver_bbox: tuple, in_liver: LiverTest) -> list[LesionSpec]:
    """Draw 0..8 lesions of 5 mm to 12 cm inside the liver (a big one may reach the liver border)."""
    diameters = _draw_diameters(rng)
    if not diameters:
        return []
    candidates = _liver_points(rng, liver_bbox, in_liver)
    if len(candidates) == 0:
        return []
    lesions: list[LesionSpec] = []
    for diameter in diameters:
        placed = None
        for attempt in range(60):
            d = diameter * (0.9 ** (attempt // 15))  # shrink a lesion that does not fit the liver
            center = candidates[int(rng.integers(len(candidates)))]
            if _apart(center, d, lesions) and _fits(center, d / 2, in_liver, 0.85 if d < 60 else 0.6):
                placed = (center, max(d, MIN_DIAMETER_MM))
                break
        if placed is None:
            continue
        center, d = placed
        lesions.append(_lesion_spec(rng, phase, center, d))
    return lesions


def _lesion_spec(rng: np.random.Generator, phase: Phase, center: np.ndarray, d: float) -> LesionSpec:
    """Shape and appearance of a lesion of nominal diameter ``d`` (mm) centred at ``center``."""
    table = load_table()["lesion_kinds"]
    ratios = np.array([1.0, rng.uniform(0.75, 1.0), rng.uniform(0.65, 1.0)])
    semi = d / 2 * ratios
    waves = Waves.random(rng, 4, (0.6 * d, 1.6 * d), rng.uniform(0.02, 0.09))
    ell = Ellipsoid(tuple(center.tolist()), tuple(semi.tolist()), rotation_matrix(rng.uniform(-180, 180, 3)), waves)  # type: ignore[arg-type]
    kind = _draw_kind(rng, phase)
    spec = table[kind.value]
    rim = float(rng.uniform(*spec["rim_delta_hu"][phase.value])) if "rim_delta_hu" in spec else 0.0
    necrosis = -float(rng.uniform(15.0, 35.0)) if d > 50 and rng.random() < 0.5 else 0.0
    return LesionSpec(
        kind=kind,
        ellipsoid=ell,
        diameters_mm=tuple(sorted((2 * semi).tolist(), reverse=True)),  # type: ignore[arg-type]
        delta_hu=float(rng.uniform(*spec["delta_hu"][phase.value])),
        rim_delta_hu=rim,
        rim_mm=float(rng.uniform(2.0, 4.0)),
        necrosis_delta_hu=necrosis,
        margin_mm=float(rng.uniform(0.7, 2.5)),
        texture=Waves.random(rng, 4, (6.0, 20.0), float(rng.uniform(2.0, 8.0))),
    )


#: Diameter range (mm) drawn for a lesion placed against the body wall (``make_phantom(..., wall_lesion=True)``;
#: shrunk when it finds no place).
WALL_LESION_DIAMETER_MM = (30.0, 80.0)


def draw_wall_lesion(
    rng: np.random.Generator,
    phase: Phase,
    liver_bbox: tuple,
    in_liver: LiverTest,
    tissue_at: Callable[[np.ndarray], np.ndarray],
    others: list[LesionSpec],
) -> LesionSpec | None:
    """A lesion whose edge meets muscle outside the liver (training data, opt-in; None when none fits).

    Lesions are painted over liver only, so this one is cut flat where the liver meets the body-wall or
    paraspinal muscle: a dark lesion then runs into muscle of about its own attenuation, the picture where the
    demo networks took a slip of muscle into the bundled sample's lesion 1 (issue 12). Its centre lies inside
    the liver with at least 60 % of the ring at 0.6 radius in the liver; along one of 64 directions the point on
    its nominal surface is muscle and the point at 0.9 of the way there liver (the liver meets the muscle inside
    the lesion's reach); and it keeps clear of the ``others`` like
    :func:`draw_lesions`' nodules.
    """
    candidates = _liver_points(rng, liver_bbox, in_liver)
    if len(candidates) == 0:
        return None
    lo, hi = np.log(WALL_LESION_DIAMETER_MM)
    drawn = float(np.exp(rng.uniform(lo, hi)))
    directions = rng.normal(size=(64, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    for attempt in range(600):
        d = drawn * 0.85 ** (attempt // 100)  # shrink one that finds no place
        center = candidates[int(rng.integers(len(candidates)))]
        if not _apart(center, d, others) or not _fits(center, d / 2, in_liver, 0.6):
            continue
        spec = _lesion_spec(rng, phase, center, d)
        ell = spec.ellipsoid
        reach = (directions * np.asarray(ell.semi_axes_mm)) @ np.asarray(ell.rotation).T
        if np.any((tissue_at(center + 0.9 * reach) == T.LIVER) & (tissue_at(center + reach) == T.MUSCLE)):
            return spec
    return None


#: Diameter range (mm) of the opt-in extra small lesions (``make_phantom(..., small_lesions=n)``), drawn log-uniform.
SMALL_LESION_DIAMETER_MM = (MIN_DIAMETER_MM, 20.0)


def draw_small_lesions(
    rng: np.random.Generator,
    phase: Phase,
    liver_bbox: tuple,
    in_liver: LiverTest,
    others: list[LesionSpec],
    count: int,
) -> list[LesionSpec]:
    """Up to ``count`` more lesions of 5-20 mm (training data, opt-in): the sizes a network misses most.

    Each is placed like :func:`draw_lesions`' nodules (apart from every other lesion) but needs only half of
    the ring at 0.6 radius in the liver, so that small lesions also sit at the liver's surface; like every
    lesion it is painted over vessels too, so some lie against or across a vein. Kind, contrast and rim come
    from the phase's table, as for any lesion. A lesion that finds no place in 60 tries is left out.
    """
    candidates = _liver_points(rng, liver_bbox, in_liver)
    if len(candidates) == 0:
        return []
    lo, hi = np.log(SMALL_LESION_DIAMETER_MM)
    placed: list[LesionSpec] = []
    for _ in range(count):
        d = float(np.exp(rng.uniform(lo, hi)))
        for _attempt in range(60):
            center = candidates[int(rng.integers(len(candidates)))]
            if _apart(center, d, [*others, *placed]) and _fits(center, d / 2, in_liver, 0.5):
                placed.append(_lesion_spec(rng, phase, center, d))
                break
    return placed


def lesion_ops(lesions: list[LesionSpec]) -> list[Paint]:
    """Paint operations: lesion n gets tissue ``LESION_TISSUE_BASE + n``, only over liver tissue and earlier lesions."""
    ops = []
    over: set[int] = {T.LIVER, T.HEPATIC_VEIN, T.PORTAL_VEIN}
    for n, lesion in enumerate(lesions):
        ops.append(
            Paint(lesion.ellipsoid.shape(f"lesion {n + 1}", margin=1.4), LESION_TISSUE_BASE + n, frozenset(over))
        )
        over.add(LESION_TISSUE_BASE + n)
    return ops


#: Share of phantoms with simple hepatic cysts (water density, sharp margin; part of the liver label).
CYST_PROBABILITY = 0.25


def draw_cysts(
    rng: np.random.Generator, liver_bbox: tuple, in_liver: LiverTest, lesions: list[LesionSpec]
) -> list[Ellipsoid]:
    """0-3 simple cysts of 5-25 mm inside the liver, apart from the lesions.

    Cysts are hypodense but not tumor: they keep the liver label, so a network cannot equate "dark spot in
    the liver" with tumor.
    """
    if rng.random() >= CYST_PROBABILITY:
        return []
    candidates = _liver_points(rng, liver_bbox, in_liver)
    cysts: list[Ellipsoid] = []
    for _ in range(int(rng.integers(1, 4))):
        d = float(np.exp(rng.uniform(np.log(MIN_DIAMETER_MM), np.log(25.0))))
        for _attempt in range(30):
            if len(candidates) == 0:
                return cysts
            center = candidates[int(rng.integers(len(candidates)))]
            others = [(np.asarray(o.ellipsoid.center), o.diameters_mm[0]) for o in lesions]
            others += [(np.asarray(c.center), 2 * max(c.semi_axes_mm)) for c in cysts]
            if all(np.linalg.norm(center - c) > 1.15 * (d + od) / 2 + 3.0 for c, od in others) and _fits(
                center, d / 2, in_liver, 1.0
            ):
                semi = d / 2 * np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0)])
                rotation = rotation_matrix(rng.uniform(-180, 180, 3))
                cysts.append(Ellipsoid(tuple(center.tolist()), tuple(semi.tolist()), rotation))  # type: ignore[arg-type]
                break
    return cysts


def cyst_ops(cysts: list[Ellipsoid]) -> list[Paint]:
    """Paint operations of the cysts (tissue ``hepatic_cyst``, only over liver tissue)."""
    over = frozenset({T.LIVER, T.HEPATIC_VEIN, T.PORTAL_VEIN})
    return [Paint(c.shape(f"cyst {n + 1}"), T.HEPATIC_CYST, over) for n, c in enumerate(cysts)]
