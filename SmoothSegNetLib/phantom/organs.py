"""The abdominal organs around the liver: great vessels, kidneys, gallbladder, spleen, stomach, pancreas, bowel."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from SmoothSegNetLib.phantom.raster import Paint
from SmoothSegNetLib.phantom.shapes import Ellipsoid, Shape, Waves, capsule, elliptic_cylinder, rotation_matrix
from SmoothSegNetLib.phantom.tissues import T

if TYPE_CHECKING:
    from SmoothSegNetLib.phantom.anatomy import Body

FAT = frozenset({T.FAT_VISCERAL})
Z_LOW = -450.0


def _vessel_ops(rng: np.random.Generator, body: Body) -> tuple[list[Paint], tuple[float, float]]:
    bx = body.center_xy[0]
    rx, ry = body.vertebra_half_axes_mm
    ys = body.spine_y_mm
    r_aorta = rng.uniform(9.0, 13.0)
    ax = bx + rng.uniform(10.0, 20.0)
    ay = ys - ry - r_aorta - rng.uniform(2.0, 6.0)
    tilt = rng.uniform(-0.04, 0.04)
    aorta = capsule(
        (ax - 300.0 * tilt, ay, Z_LOW), (ax + 300.0 * tilt, ay + 15.0, body.dome_top_z_mm + 150.0), r_aorta, r_aorta
    )
    ivc_xy = (bx - rx - rng.uniform(2.0, 10.0), ys - ry - rng.uniform(4.0, 12.0))
    ivc = elliptic_cylinder(
        ivc_xy, (rng.uniform(10.0, 14.0), rng.uniform(7.0, 10.0)), (Z_LOW, body.dome_top_z_mm + 25.0)
    )
    return [Paint(aorta, T.AORTA, FAT | {T.MUSCLE}), Paint(ivc, T.IVC, FAT)], ivc_xy


def _kidney_ops(rng: np.random.Generator, body: Body) -> list[Paint]:
    bx = body.center_xy[0]
    rx, _ = body.vertebra_half_axes_mm
    z_right = body.dome_top_z_mm - rng.uniform(125.0, 150.0)
    ops: list[Paint] = []
    for side, zc in ((-1.0, z_right), (1.0, z_right + rng.uniform(10.0, 25.0))):
        semi = np.array([rng.uniform(24.0, 30.0), rng.uniform(20.0, 26.0), rng.uniform(48.0, 60.0)])
        rot = rotation_matrix((0.0, side * rng.uniform(5.0, 15.0), -side * rng.uniform(20.0, 35.0)))
        center = np.array([bx + side * (rx + 45.0 + semi[0] * 0.6), body.spine_y_mm + rng.uniform(0.0, 15.0), zc])
        cortex = Ellipsoid(tuple(center.tolist()), tuple(semi.tolist()), rot)  # type: ignore[arg-type]
        medulla = Ellipsoid(cortex.center, tuple((semi * 0.68).tolist()), rot)  # type: ignore[arg-type]
        # The renal sinus opens towards the hilum: medial and anterior.
        sinus_c = center + rot @ np.array([-side * semi[0] * 0.45, -semi[1] * 0.2, 0.0])
        sinus = Ellipsoid(tuple(sinus_c.tolist()), tuple((semi * [0.35, 0.35, 0.55]).tolist()), rot)  # type: ignore[arg-type]
        # Perirenal fat, mostly behind and beside the kidney: retroperitoneal, so the liver never wraps behind it.
        fat_c = center + np.array([side * 0.3 * semi[0], 0.3 * semi[1], 0.0])
        perirenal = Ellipsoid(tuple(fat_c.tolist()), tuple((semi * [1.3, 1.3, 1.12]).tolist()), rot)  # type: ignore[arg-type]
        ops += [
            Paint(cortex.shape("kidney"), T.KIDNEY_CORTEX, FAT | {T.MUSCLE}),
            Paint(medulla.shape("medulla"), T.KIDNEY_MEDULLA, frozenset({T.KIDNEY_CORTEX})),
            Paint(sinus.shape("sinus"), T.RENAL_SINUS_FAT, frozenset({T.KIDNEY_CORTEX, T.KIDNEY_MEDULLA})),
            Paint(perirenal.shape("perirenal fat"), T.FAT_RETROPERITONEAL, FAT),
        ]
    return ops


def _gut_ops(rng: np.random.Generator, body: Body) -> list[Paint]:
    """Stomach (wall, content, gas cap anteriorly) and colon / small-bowel loops below the liver."""
    bx, by = body.center_xy
    ai, bi = body.inner_half_axes_mm
    zt = body.dome_top_z_mm
    semi = (0.22 * ai * rng.uniform(0.8, 1.2), 0.3 * bi * rng.uniform(0.8, 1.2), rng.uniform(35.0, 55.0))
    center = (bx + 0.35 * ai, by - 0.15 * bi, zt - rng.uniform(45.0, 65.0))
    rot = rotation_matrix((rng.uniform(-15, 15), 0.0, rng.uniform(-30.0, 0.0)))
    waves = Waves.random(rng, 4, (40.0, 100.0), 0.05)
    wall = Ellipsoid(center, semi, rot, waves)
    lumen = Ellipsoid(center, (semi[0] - 4.0, semi[1] - 4.0, semi[2] - 4.0), rot, waves)
    air_y = center[1] - semi[1] * rng.uniform(-0.2, 0.6)

    def gas_level(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.where(y < np.float32(air_y), lumen.level(x, y, z), np.float32(2.0))

    ops = [
        Paint(wall.shape("stomach"), T.GUT_WALL, FAT),
        Paint(lumen.shape("stomach lumen"), T.GUT_CONTENT, frozenset({T.GUT_WALL})),
        Paint(Shape(gas_level, lumen.bbox(), "stomach gas"), T.GAS, frozenset({T.GUT_CONTENT})),
    ]
    # Colon: ascending (right), transverse (anterior), descending (left); then small-bowel loops.
    z_flex = zt - rng.uniform(150.0, 185.0)
    path = [
        (bx - 0.7 * ai, by + 0.1 * bi, z_flex - 120.0),
        (bx - 0.72 * ai, by - 0.05 * bi, z_flex),
        (bx - 0.2 * ai, by - 0.6 * bi, z_flex + rng.uniform(-20.0, 15.0)),
        (bx + 0.45 * ai, by - 0.45 * bi, z_flex + 35.0),
        (bx + 0.75 * ai, by + 0.1 * bi, z_flex + 40.0),
        (bx + 0.72 * ai, by + 0.15 * bi, z_flex - 120.0),
    ]
    for p0, p1 in itertools.pairwise(path):
        r = rng.uniform(17.0, 24.0)
        ops += _tube_ops(rng, p0, p1, r, gas_fraction=0.3, content=T.STOOL)
    for _ in range(int(rng.integers(4, 9))):
        p0 = (bx + rng.uniform(-0.5, 0.5) * ai, by + rng.uniform(-0.7, 0.1) * bi, z_flex - rng.uniform(20.0, 150.0))
        step = rng.normal(size=3) * np.array([40.0, 25.0, 30.0])
        p1 = tuple((np.asarray(p0) + step).tolist())
        ops += _tube_ops(rng, p0, p1, rng.uniform(9.0, 14.0), gas_fraction=0.15, content=T.GUT_CONTENT)  # type: ignore[arg-type]
    # Jejunal loops in the left mid-abdomen, beside and below the stomach (they may touch the liver).
    for _ in range(int(rng.integers(5, 11))):
        p0 = (bx + rng.uniform(-0.1, 0.7) * ai, by + rng.uniform(-0.7, 0.2) * bi, zt - rng.uniform(90.0, 200.0))
        step = rng.normal(size=3) * np.array([35.0, 25.0, 25.0])
        p1 = tuple((np.asarray(p0) + step).tolist())
        ops += _tube_ops(rng, p0, p1, rng.uniform(9.0, 14.0), gas_fraction=0.15, content=T.GUT_CONTENT)  # type: ignore[arg-type]
    # Duodenum: a C around the pancreatic head, right of the midline, against the liver's inferior surface.
    ys = body.spine_y_mm
    c = np.array([bx - 35.0, ys - 45.0, zt - rng.uniform(155.0, 175.0)])
    arc = [c + np.array([20.0 * np.cos(t), -15.0 * np.sin(t), 30.0 * np.sin(t)]) for t in np.linspace(0.3, 2.8, 4)]
    for q0, q1 in itertools.pairwise(arc):
        ops += _tube_ops(
            rng,
            tuple(q0.tolist()),
            tuple(q1.tolist()),
            rng.uniform(10.0, 13.0),
            gas_fraction=0.3,
            content=T.GUT_CONTENT,
        )  # type: ignore[arg-type]
    return ops


def _tube_ops(
    rng: np.random.Generator,
    p0: tuple[float, float, float],
    p1: tuple[float, float, float],
    r: float,
    *,
    gas_fraction: float,
    content: T,
) -> list[Paint]:
    inner = T.GAS if rng.random() < gas_fraction else content
    return [
        Paint(capsule(p0, p1, r, r, "bowel"), T.GUT_WALL, FAT),
        Paint(capsule(p0, p1, r - 3.0, r - 3.0, "bowel lumen"), inner, frozenset({T.GUT_WALL})),
    ]


def _upper_ops(rng: np.random.Generator, body: Body, cirrhotic: bool) -> list[Paint]:
    """Gallbladder (indents the liver), spleen (enlarged with cirrhosis) and pancreas."""
    bx, by = body.center_xy
    ai, bi = body.inner_half_axes_mm
    zt = body.dome_top_z_mm
    ops: list[Paint] = []
    if rng.random() < 0.8:  # else: cholecystectomy
        gb = Ellipsoid(
            (bx - 0.3 * ai, by - 0.45 * bi, zt - rng.uniform(110.0, 135.0)),
            (rng.uniform(12.0, 20.0), rng.uniform(14.0, 22.0), rng.uniform(30.0, 45.0)),
            rotation_matrix((rng.uniform(20.0, 45.0), 0.0, rng.uniform(-20.0, 20.0))),
        )
        ops.append(Paint(gb.shape("gallbladder"), T.GALLBLADDER, FAT | {T.LIVER}))
    big = rng.uniform(1.1, 1.35) if cirrhotic else 1.0
    spleen = Ellipsoid(
        (bx + 0.68 * ai, by + 0.3 * bi, zt - rng.uniform(40.0, 60.0)),
        (big * rng.uniform(20.0, 30.0), big * 0.38 * bi * rng.uniform(0.8, 1.2), big * rng.uniform(40.0, 60.0)),
        rotation_matrix((0.0, 0.0, rng.uniform(-55.0, -35.0))),
        Waves.random(rng, 3, (60.0, 120.0), 0.04),
    )
    ops.append(Paint(spleen.shape("spleen"), T.SPLEEN, FAT))
    ys = body.spine_y_mm
    z_panc = zt - rng.uniform(115.0, 135.0)
    head = (bx - 30.0, ys - 45.0, z_panc - 15.0)
    body_pt = (bx + 10.0, ys - 50.0, z_panc)
    tail = (bx + 0.55 * ai, by + 0.25 * bi, z_panc + 15.0)
    ops.append(Paint(capsule(head, body_pt, 14.0, 11.0, "pancreas"), T.PANCREAS, FAT))
    ops.append(Paint(capsule(body_pt, tail, 11.0, 9.0, "pancreas"), T.PANCREAS, FAT))
    return ops


def abdominal_organ_ops(
    rng: np.random.Generator, body: Body, liver: Shape, thorax_ops: list[Paint], cirrhotic: bool = False
) -> tuple[list[Paint], tuple[float, float], tuple[float, float, float]]:
    """Organ paint operations in priority order, the IVC position and a hint for the portal hilum."""
    vessels, ivc_xy = _vessel_ops(rng, body)
    ops = vessels + thorax_ops + _kidney_ops(rng, body)
    ops.append(Paint(liver, T.LIVER, FAT))
    ops += _upper_ops(rng, body, cirrhotic) + _gut_ops(rng, body)
    ai, bi = body.inner_half_axes_mm
    hilum = (ivc_xy[0] - 0.12 * ai, ivc_xy[1] - 0.3 * bi, body.dome_top_z_mm - 105.0)
    return ops, ivc_xy, hilum
