"""Implicit shapes in physical millimetres, evaluated at arbitrary (broadcastable) LPS coordinates.

Every shape has a *level* function: a float array that is < 1 inside the shape and >= 1 outside, and
an axis-aligned bounding box in the anatomy frame (LPS millimetres) outside which the level is >= 1.
Coordinates are passed as three arrays ``x, y, z`` that broadcast against each other (on an
axis-aligned grid ``x`` may have shape ``(1, 1, ni)``), so the cost follows the true dependence of a
shape on each axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = np.ndarray
#: A level function of broadcastable coordinate arrays ``(x, y, z)`` in mm.
LevelFn = Callable[[Array, Array, Array], Array]

_TINY = 1e-12


def _lin(coeffs: npt.ArrayLike, x: Array, y: Array, z: Array, const: float = 0.0) -> Array:
    """``const + cx*x + cy*y + cz*z`` skipping zero terms, so broadcast shapes stay as small as possible."""
    out: Array | float = const
    for c, v in zip(np.asarray(coeffs, dtype=float), (x, y, z)):
        if abs(c) > _TINY:
            out = out + np.float32(c) * v
    return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class Waves:
    """A smooth random field: a sum of plane cosines ``sum a_m cos(k_m . p + phi_m)`` (p in mm).

    Attributes:
        wavevectors: ``(M, 3)`` angular wave vectors in rad/mm.
        phases: ``(M,)`` phases in rad.
        amplitudes: ``(M,)`` amplitudes (unitless, the caller scales them).
    """

    wavevectors: Array
    phases: Array
    amplitudes: Array

    @classmethod
    def random(
        cls, rng: np.random.Generator, count: int, wavelength_mm: tuple[float, float], amplitude: float
    ) -> Waves:
        """``count`` cosines with random directions and wavelengths in ``wavelength_mm``; total RMS ~ ``amplitude``."""
        directions = rng.normal(size=(count, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(*wavelength_mm, size=count)
        k = directions * (2 * np.pi / wavelengths)[:, None]
        amps = np.full(count, amplitude * np.sqrt(2.0 / count))
        return cls(k, rng.uniform(0, 2 * np.pi, size=count), amps)

    @property
    def max_abs(self) -> float:
        """An upper bound of ``|waves(p)|``."""
        return float(np.sum(np.abs(self.amplitudes)))

    def __call__(self, x: Array, y: Array, z: Array) -> Array:
        out: Array | float = 0.0
        for k, phi, a in zip(self.wavevectors, self.phases, self.amplitudes):
            out = out + np.float32(a) * np.cos(_lin(k, x, y, z, const=float(phi)))
        return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class Shape:
    """An implicit shape: ``level(x, y, z) < 1`` inside; ``bbox`` = (min xyz, max xyz) in mm."""

    level: LevelFn
    bbox: tuple[tuple[float, float, float], tuple[float, float, float]]
    name: str = ""

    def inside(self, x: Array, y: Array, z: Array) -> Array:
        return self.level(x, y, z) < 1.0


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid with centre, semi-axes (mm) and rotation (columns = its axes in LPS), optionally wavy.

    The level is the normalised radius ``|R^T (p - c) / s|`` plus ``waves(p)`` (a unitless bump field).
    """

    center: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    rotation: Array = field(default_factory=lambda: np.eye(3))
    waves: Waves | None = None

    def radius(self, x: Array, y: Array, z: Array) -> Array:
        c = self.center
        r = np.asarray(self.rotation, dtype=float)
        acc: Array | float = 0.0
        for axis in range(3):
            col = r[:, axis] / self.semi_axes_mm[axis]
            u = _lin(col, x, y, z, const=-float(col @ np.asarray(c)))
            acc = acc + u * u
        return np.sqrt(np.asarray(acc, dtype=np.float32))

    def level(self, x: Array, y: Array, z: Array) -> Array:
        level = self.radius(x, y, z)
        if self.waves is not None:
            level = level + self.waves(x, y, z)
        return level

    def bbox(self, margin: float = 1.3) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        half = np.abs(np.asarray(self.rotation, dtype=float)) @ np.asarray(self.semi_axes_mm) * margin
        lo = np.asarray(self.center) - half
        hi = np.asarray(self.center) + half
        return (tuple(lo.tolist()), tuple(hi.tolist()))  # type: ignore[return-value]

    def shape(self, name: str = "", margin: float = 1.3) -> Shape:
        return Shape(self.level, self.bbox(margin), name)


def capsule(p0: npt.ArrayLike, p1: npt.ArrayLike, r0_mm: float, r1_mm: float, name: str = "") -> Shape:
    """A tube from ``p0`` to ``p1`` whose radius goes linearly from ``r0_mm`` to ``r1_mm`` (rounded ends)."""
    a = np.asarray(p0, dtype=float)
    d = np.asarray(p1, dtype=float) - a
    length2 = max(float(d @ d), _TINY)

    def level(x: Array, y: Array, z: Array) -> Array:
        t = np.clip(_lin(d / length2, x, y, z, const=-float(d @ a) / length2), 0.0, 1.0)
        dx = x - np.float32(a[0]) - np.float32(d[0]) * t
        dy = y - np.float32(a[1]) - np.float32(d[1]) * t
        dz = z - np.float32(a[2]) - np.float32(d[2]) * t
        radius = np.float32(r0_mm) + np.float32(r1_mm - r0_mm) * t
        return np.asarray(np.sqrt(dx * dx + dy * dy + dz * dz) / radius, dtype=np.float32)

    r = max(r0_mm, r1_mm) * 1.05
    b = np.asarray(p1, dtype=float)
    lo = np.minimum(a, b) - r
    hi = np.maximum(a, b) + r
    return Shape(level, (tuple(lo.tolist()), tuple(hi.tolist())), name)  # type: ignore[arg-type]


def elliptic_cylinder(
    center_xy: tuple[float, float],
    half_axes_mm: tuple[float, float],
    z_range_mm: tuple[float, float],
    *,
    posterior_power: float = 2.0,
    waves: Waves | None = None,
    name: str = "",
) -> Shape:
    """A cylinder along z with an elliptic (posteriorly squarer, ``posterior_power`` > 2) cross-section."""
    cx, cy = center_xy
    ax, ay = half_axes_mm
    z0, z1 = z_range_mm

    def level(x: Array, y: Array, z: Array) -> Array:
        u = np.abs(x - np.float32(cx)) / np.float32(ax)
        v = (y - np.float32(cy)) / np.float32(ay)
        rad = np.sqrt(u * u + v * v)
        if posterior_power == 3.0:
            # Squarer behind (v > 0): the 3-norm there; cube and cube root are much cheaper than a general power.
            av = np.abs(v)
            rad = np.where(v > 0, np.cbrt(u * u * u + av * av * av), rad)
        elif posterior_power != 2.0:
            p = np.float32(posterior_power)
            rad = np.where(v > 0, (u**p + np.abs(v) ** p) ** (1.0 / p), rad)
        rad = add_near_one(rad, [waves], x, y, z)
        if np.min(z) >= z0 and np.max(z) <= z1:
            return np.asarray(rad, dtype=np.float32)
        outside_z = (z < np.float32(z0)) | (z > np.float32(z1))
        return np.asarray(np.where(outside_z, np.float32(2.0), rad), dtype=np.float32)

    margin = 1.2
    lo = (cx - ax * margin, cy - ay * margin, z0)
    hi = (cx + ax * margin, cy + ay * margin, z1)
    return Shape(level, (lo, hi), name)


def add_near_one(base: Array, perturbations: Sequence[Waves | None], x: Array, y: Array, z: Array) -> Array:
    """``base + sum(perturbations)`` where that sum can move the level across 1; elsewhere ``base``.

    The result is on the same side of 1 as the full sum everywhere (so ``< 1`` gives the same inside), while
    the cosines are evaluated only in the thin band around the surface. Use it only where the level serves
    for inside/outside, not where its value matters.
    """
    waves = [w for w in perturbations if w is not None]
    if not waves:
        return base
    bound = np.float32(sum(w.max_abs for w in waves))
    shape = np.broadcast_shapes(np.shape(base), np.shape(x), np.shape(y), np.shape(z))
    out = np.array(np.broadcast_to(base, shape), dtype=np.float32)
    near = np.abs(out - np.float32(1.0)) < bound
    if not near.any():
        return out
    xs, ys, zs = (np.broadcast_to(c, shape)[near] for c in (x, y, z))
    out[near] += sum((w(xs, ys, zs) for w in waves), np.zeros(len(xs), dtype=np.float32))
    return out


def smooth_union(levels: Sequence[Array], k: float = 0.15) -> Array:
    """Polynomial smooth minimum of level arrays (blends lobes into one organ without creases)."""
    out = levels[0]
    for other in levels[1:]:
        h = np.clip(np.float32(k) - np.abs(out - other), 0.0, None) / np.float32(k)
        out = np.minimum(out, other) - h * h * np.float32(k / 4.0)
    return out


def union_bbox(
    boxes: Sequence[tuple[tuple[float, float, float], tuple[float, float, float]]],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    return (tuple(lo.tolist()), tuple(hi.tolist()))  # type: ignore[return-value]


def rotation_matrix(angles_deg: npt.ArrayLike) -> Array:
    """Rotation about x, then y, then z (degrees), as a 3x3 matrix whose columns are the rotated axes."""
    ax, ay, az = np.radians(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx
