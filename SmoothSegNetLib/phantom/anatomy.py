"""A random abdomen in the anatomy frame (LPS millimetres about the patient; +x left, +y posterior, +z up).

:func:`build_anatomy` draws every size and position from a numpy ``Generator`` and returns the paint
operations in priority order (what is painted first wins where later organs paint only over fat).
The liver is a smooth union of four wavy ellipsoids (right lobe, inferior right tip, left lobe, caudate),
clipped by the abdominal wall, the diaphragm, the kidney, the gallbladder and the IVC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SmoothSegNetLib.phantom.raster import Paint
from SmoothSegNetLib.phantom.shapes import (
    Array,
    Ellipsoid,
    Shape,
    Waves,
    add_near_one,
    capsule,
    elliptic_cylinder,
    rotation_matrix,
    smooth_union,
    union_bbox,
)
from SmoothSegNetLib.phantom.tissues import T

Z_EXTENT_MM = 450.0
FAT = frozenset({T.FAT_VISCERAL})
SOFT = frozenset({T.FAT_VISCERAL, T.MUSCLE, T.FAT_SUBCUTANEOUS})


@dataclass(frozen=True)
class Body:
    """Main dimensions of a phantom's trunk (mm, anatomy frame)."""

    center_xy: tuple[float, float]
    half_axes_mm: tuple[float, float]
    fat_mm: float
    muscle_mm: float
    spine_y_mm: float
    vertebra_half_axes_mm: tuple[float, float]
    dome_top_z_mm: float
    dome_depth_mm: float

    @property
    def inner_half_axes_mm(self) -> tuple[float, float]:
        a, b = self.half_axes_mm
        return (a - self.fat_mm - self.muscle_mm, b - self.fat_mm - self.muscle_mm)

    def dome_z(self, x: Array, y: Array) -> Array:
        """Height of the diaphragm above ``(x, y)``: highest centrally and on the right, lower at the rim."""
        bx, by = self.center_xy
        ai, bi = self.inner_half_axes_mm
        rho2 = ((x - np.float32(bx)) / np.float32(ai)) ** 2 + ((y - np.float32(by)) / np.float32(bi)) ** 2
        left = np.float32(12.0) / (1.0 + np.exp(-(x - np.float32(bx)) / np.float32(15.0)))
        back = np.float32(15.0) * np.clip((y - np.float32(by)) / np.float32(bi), 0.0, 1.0)
        return np.float32(self.dome_top_z_mm) - left - back - np.float32(self.dome_depth_mm) * rho2


@dataclass(frozen=True)
class Anatomy:
    """The drawn anatomy: body dimensions, ordered paint operations and the liver/IVC shapes."""

    body: Body
    ops: tuple[Paint, ...]
    liver: Shape
    ivc_xy: tuple[float, float]
    hilum_hint: tuple[float, float, float]


def draw_body(rng: np.random.Generator) -> Body:
    """Trunk size, fat and muscle thickness, spine position and diaphragm height (the first draws of a seed)."""
    a = rng.uniform(135.0, 180.0)
    b = a * rng.uniform(0.70, 0.85)
    fat = rng.uniform(8.0, min(40.0, 0.22 * b))
    muscle = rng.uniform(8.0, 14.0)
    center = (rng.uniform(-8.0, 8.0), rng.uniform(-8.0, 8.0))
    vb = rng.uniform(17.0, 22.0)
    spine_y = center[1] + b - fat - rng.uniform(68.0, 78.0)
    return Body(center, (a, b), fat, muscle, spine_y, (vb, vb * 0.8), rng.uniform(70.0, 95.0), rng.uniform(35.0, 55.0))


def _z_periodic(shape: Shape, z0: float, period: float, lo: float, hi: float) -> Shape:
    """``shape`` restricted to the z bands where ``((z - z0) / period) mod 1`` lies in ``[lo, hi)``."""

    def level(x: Array, y: Array, z: Array) -> Array:
        phase = np.mod((z - np.float32(z0)) / np.float32(period), 1.0)
        keep = (phase >= lo) & (phase < hi)
        return np.where(keep, shape.level(x, y, z), np.float32(2.0))

    return Shape(level, shape.bbox, shape.name)


def _trunk_ops(rng: np.random.Generator, body: Body) -> list[Paint]:
    bx, by = body.center_xy
    a, b = body.half_axes_mm
    z = (-Z_EXTENT_MM, Z_EXTENT_MM)
    skin_waves = Waves.random(rng, 4, (120.0, 300.0), 0.015)
    f, m = body.fat_mm, body.muscle_mm
    ops = [
        Paint(elliptic_cylinder((bx, by), (a, b), z, posterior_power=3.0, waves=skin_waves), T.FAT_SUBCUTANEOUS),
        Paint(elliptic_cylinder((bx, by), (a - f, b - f), z, posterior_power=3.0, waves=skin_waves), T.MUSCLE, SOFT),
        Paint(elliptic_cylinder((bx, by), (a - f - m, b - f - m), z, posterior_power=3.0), T.FAT_VISCERAL, SOFT),
        Paint(_table(body), T.TABLE, frozenset({T.AIR})),
    ]
    rx, ry = body.vertebra_half_axes_mm
    ys = body.spine_y_mm
    # Paraspinal muscles behind the spine, psoas muscles beside it below the kidneys' upper poles.
    for side in (-1.0, 1.0):
        erector = elliptic_cylinder((bx + side * 30.0, ys + ry + 28.0), (27.0, 22.0), z)
        ops.append(Paint(erector, T.MUSCLE, frozenset({T.FAT_VISCERAL, T.MUSCLE})))
        psoas = capsule((bx + side * (rx + 8.0), ys, -10.0), (bx + side * (rx + 30.0), ys - 5.0, -260.0), 6.0, 24.0)
        ops.append(Paint(psoas, T.MUSCLE, FAT))
    ops += _spine_ops(rng, body)
    ops.append(Paint(_ribs(rng, body), T.RIB, SOFT))
    return ops


def _table(body: Body) -> Shape:
    """The scanner table under the patient: a 7 mm shell, flat under the back and curving up at the sides."""
    bx, by = body.center_xy
    top = by + body.half_axes_mm[1] + 4.0

    def level(x: Array, y: Array, z: Array) -> Array:
        surface = np.float32(top) - np.float32(0.0008) * (x - np.float32(bx)) ** 2
        depth = y - surface
        inside = (depth >= 0) & (depth <= 7.0) & (np.abs(x - np.float32(bx)) < 230.0)
        return np.where(inside, np.float32(0.0), np.float32(2.0))

    return Shape(level, ((bx - 230.0, top - 70.0, -Z_EXTENT_MM), (bx + 230.0, top + 8.0, Z_EXTENT_MM)), "table")


def _spine_ops(rng: np.random.Generator, body: Body) -> list[Paint]:
    bx = body.center_xy[0]
    rx, ry = body.vertebra_half_axes_mm
    ys = body.spine_y_mm
    z = (-Z_EXTENT_MM, Z_EXTENT_MM)
    period = rng.uniform(32.0, 38.0)
    z0 = rng.uniform(0.0, period)
    column = elliptic_cylinder((bx, ys), (rx, ry), z)
    core = elliptic_cylinder((bx, ys), (rx - 2.5, ry - 2.5), z)
    canal_y = ys + ry + 9.0
    canal_r = rng.uniform(7.0, 9.0)
    arch = elliptic_cylinder((bx, canal_y + 1.0), (canal_r + 6.0, canal_r + 6.0), z)
    canal = elliptic_cylinder((bx, canal_y), (canal_r, canal_r), z)
    ops = [
        Paint(_z_periodic(column, z0, period, 0.0, 0.8), T.BONE_CORTICAL, SOFT),
        Paint(_z_periodic(core, z0, period, 0.0, 0.8), T.BONE_CANCELLOUS, frozenset({T.BONE_CORTICAL})),
        Paint(_z_periodic(column, z0, period, 0.8, 1.0), T.INTERVERTEBRAL_DISC, SOFT),
        # Pedicles and laminae; at disc levels the facet joints keep the canal ringed by bone.
        Paint(arch, T.BONE_CORTICAL, SOFT),
    ]
    for shift in range(-8, 9):
        zc = z0 + shift * period + 0.4 * period
        moved = capsule((bx, canal_y + canal_r + 3.0, zc), (bx, canal_y + canal_r + 35.0, zc - 12.0), 5.0, 4.0)
        ops.append(Paint(moved, T.BONE_CORTICAL, SOFT))
        for side in (-1.0, 1.0):
            transverse = capsule((bx + side * 8.0, canal_y - 4.0, zc), (bx + side * 30.0, canal_y + 4.0, zc), 4.0, 3.0)
            ops.append(Paint(transverse, T.BONE_CORTICAL, SOFT))
    ops.append(Paint(canal, T.SPINAL_CANAL, SOFT | {T.BONE_CORTICAL, T.BONE_CANCELLOUS, T.INTERVERTEBRAL_DISC}))
    return ops


def _ribs(rng: np.random.Generator, body: Body) -> Shape:
    """Ribs: tubes following the muscle wall, sloping down anteriorly; lower ribs stop further back."""
    bx, by = body.center_xy
    a, b = body.half_axes_mm
    ra, rb = a - body.fat_mm - body.muscle_mm * 0.5, b - body.fat_mm - body.muscle_mm * 0.5
    period = rng.uniform(24.0, 30.0)
    count = 9
    z_top = body.dome_top_z_mm + rng.uniform(40.0, 70.0)
    # Angle from the posterior midline where each rib ends anteriorly (lower ribs are shorter).
    phi_max = np.linspace(0.85 * np.pi, 0.4 * np.pi, count).astype(np.float32)

    def level(x: Array, y: Array, z: Array) -> Array:
        u = (x - np.float32(bx)) / np.float32(ra)
        v = (y - np.float32(by)) / np.float32(rb)
        rho = np.sqrt(u * u + v * v) + np.float32(1e-6)
        sin_t = v / rho
        radial_mm = (rho - 1.0) * np.sqrt((x - bx) ** 2 + (y - by) ** 2) / rho
        phi = np.arccos(np.clip(sin_t, -1.0, 1.0))  # angle from the posterior midline
        along = z - np.float32(z_top) + np.float32(70.0 / np.pi) * phi
        index = np.clip(np.rint(-along / np.float32(period)), 0, count - 1).astype(np.int16)
        dz = along + index.astype(np.float32) * np.float32(period)
        rib = np.sqrt((radial_mm / np.float32(4.5)) ** 2 + (dz / np.float32(6.0)) ** 2)
        exists = (phi < phi_max[index]) & (phi > np.float32(0.3))
        return np.where(exists, rib, np.float32(2.0))

    lo = (bx - ra - 10.0, by - rb - 10.0, z_top - count * period - 40.0)
    hi = (bx + ra + 10.0, by + rb + 10.0, z_top + 40.0)
    return Shape(level, (lo, hi), "ribs")


def _thorax_ops(rng: np.random.Generator, body: Body) -> list[Paint]:
    bx, by = body.center_xy
    ai, bi = body.inner_half_axes_mm

    def lung_level(x: Array, y: Array, z: Array) -> Array:
        return np.where(z > body.dome_z(x, y), np.float32(0.0), np.float32(2.0))

    zmin = body.dome_top_z_mm - body.dome_depth_mm - 40.0
    lung = Shape(lung_level, ((bx - ai, by - bi, zmin), (bx + ai, by + bi, Z_EXTENT_MM)), "lungs")
    heart = Ellipsoid(
        (bx + 25.0, by - 0.3 * bi, body.dome_top_z_mm + rng.uniform(45.0, 60.0)),
        (0.45 * ai, 0.5 * bi, 60.0),
        rotation_matrix((0.0, 0.0, rng.uniform(-30.0, -15.0))),
    )
    return [Paint(lung, T.LUNG, FAT), Paint(heart.shape("heart"), T.HEART, frozenset({T.LUNG}))]


def _liver(rng: np.random.Generator, body: Body, cirrhotic: bool) -> Shape:
    """The liver; a cirrhotic one has a shrunken right lobe, a large caudate lobe and a nodular surface."""
    bx, by = body.center_xy
    ai, bi = body.inner_half_axes_mm
    zt = body.dome_top_z_mm
    s = rng.uniform(0.88, 1.12)
    right = rng.uniform(0.8, 0.92) if cirrhotic else 1.0
    caudate = rng.uniform(1.2, 1.45) if cirrhotic else 1.0

    def jitter(v: float, spread: float = 0.08) -> float:
        return v * rng.uniform(1.0 - spread, 1.0 + spread)

    lobes = [
        Ellipsoid(
            (bx - jitter(0.45 * ai), by - 0.02 * bi, zt - jitter(70.0)),
            (s * right * jitter(0.52 * ai), s * right * jitter(0.72 * bi), s * jitter(75.0)),
            rotation_matrix((0.0, rng.uniform(-10, 10), rng.uniform(-15, 5))),
        ),
        Ellipsoid(
            (bx - jitter(0.55 * ai), by - 0.12 * bi, zt - jitter(145.0)),
            (s * right * jitter(0.3 * ai), s * right * jitter(0.42 * bi), s * jitter(45.0, 0.25)),
        ),
        Ellipsoid(
            (bx + jitter(0.02 * ai, 0.5), by - jitter(0.45 * bi), zt - jitter(45.0)),
            (s * jitter(0.38 * ai, 0.2), s * jitter(0.26 * bi), s * jitter(36.0)),
            rotation_matrix((0.0, 0.0, rng.uniform(-30.0, -10.0))),
        ),
        Ellipsoid((bx - 0.1 * ai, by + 0.12 * bi, zt - 65.0), (20.0 * s * caudate, 24.0 * s * caudate, 38.0 * s)),
    ]
    waves = Waves.random(rng, 6, (50.0, 160.0), rng.uniform(0.04, 0.09))
    nodules = Waves.random(rng, 8, (15.0, 35.0), rng.uniform(0.012, 0.022)) if cirrhotic else None

    def level(x: Array, y: Array, z: Array) -> Array:
        return add_near_one(smooth_union([lobe.radius(x, y, z) for lobe in lobes], k=0.25), [waves, nodules], x, y, z)

    return Shape(level, union_bbox([lobe.bbox(1.25) for lobe in lobes]), "liver")


def build_anatomy(rng: np.random.Generator, cirrhotic: bool = False) -> Anatomy:
    """Draw a trunk with its organs; the operations are in painting order.

    ``draw_body`` must stay the first use of ``rng``: :func:`~SmoothSegNetLib.phantom.generator.phantom_geometry`
    repeats it to centre the grid on the patient.
    """
    from SmoothSegNetLib.phantom.organs import abdominal_organ_ops

    body = draw_body(rng)
    ops = _trunk_ops(rng, body)
    liver = _liver(rng, body, cirrhotic)
    organ_ops, ivc_xy, hilum = abdominal_organ_ops(rng, body, liver, _thorax_ops(rng, body), cirrhotic)
    return Anatomy(body, tuple(ops + organ_ops), liver, ivc_xy, hilum)
