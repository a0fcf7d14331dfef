"""Vessels inside the liver: a branching portal-venous tree from the hilum and three hepatic veins to the IVC."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from SmoothSegNetLib.phantom.raster import Paint
from SmoothSegNetLib.phantom.shapes import capsule
from SmoothSegNetLib.phantom.tissues import T

#: Tells which ``(N, 3)`` anatomy-frame points lie in the liver.
LiverTest = Callable[[np.ndarray], np.ndarray]

MIN_RADIUS_MM = 1.6


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _turn(rng: np.random.Generator, direction: np.ndarray, angle_deg: float) -> np.ndarray:
    """``direction`` turned by ``angle_deg`` about a random axis perpendicular to it."""
    axis = _unit(np.cross(direction, rng.normal(size=3)))
    a = np.radians(angle_deg)
    return _unit(direction * np.cos(a) + np.cross(axis, direction) * np.sin(a))


def _fit_segment(
    start: np.ndarray, directions: np.ndarray, length: float, in_liver: LiverTest
) -> tuple[np.ndarray, np.ndarray] | None:
    """The longest segment from ``start`` (lengths ``length``, ``length/2``, ``/4``, ``/8``; earlier directions
    first on ties) whose end and middle lie in the liver, as ``(end, direction)``; one batched liver query."""
    scales = length / 2.0 ** np.arange(4)
    ends = start + directions[:, None, :] * scales[None, :, None]  # (D, 4, 3)
    mids = (start + ends) / 2
    inside = np.asarray(in_liver(np.concatenate([ends.reshape(-1, 3), mids.reshape(-1, 3)])), dtype=bool)
    ok = np.all(inside.reshape(2, len(directions), 4), axis=0)
    for level in range(4):
        hits = np.nonzero(ok[:, level])[0]
        if len(hits):
            return ends[hits[0], level], directions[hits[0]]
    return None


def _branch(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    length: float,
    radius: float,
    depth: int,
    in_liver: LiverTest,
    tissue: T,
    out: list[Paint],
) -> None:
    # Try the preferred direction and a few deviations from it; keep the longest segment that fits the liver.
    trials = np.stack([direction] + [_turn(rng, direction, rng.uniform(15.0, 45.0)) for _ in range(5)])
    fitted = _fit_segment(start, trials, length, in_liver)
    if fitted is None:
        return
    end, direction = fitted
    r_end = max(radius * 0.85, MIN_RADIUS_MM)
    out.append(Paint(capsule(start, end, radius, r_end, tissue.name.lower()), tissue, frozenset({T.LIVER})))
    if depth == 0 or radius * 0.7 < MIN_RADIUS_MM:
        return
    for sign in (-1.0, 1.0):
        child = _turn(rng, direction, sign * rng.uniform(25.0, 50.0))
        _branch(rng, end, child, length * rng.uniform(0.7, 0.9), r_end * 0.8, depth - 1, in_liver, tissue, out)


def _find_inside(
    rng: np.random.Generator, hint: np.ndarray, in_liver: LiverTest, spread_mm: float
) -> np.ndarray | None:
    candidates = hint + rng.normal(scale=spread_mm, size=(400, 3))
    inside = in_liver(candidates)
    if not inside.any():
        return None
    best = np.argmin(np.linalg.norm(candidates[inside] - hint, axis=1))
    return np.asarray(candidates[inside][best])


def portal_vein_ops(
    rng: np.random.Generator, hilum_hint: tuple[float, float, float], in_liver: LiverTest
) -> list[Paint]:
    """The portal trunk (entering from below, medially) and its right and left branch trees."""
    hilum = _find_inside(rng, np.asarray(hilum_hint), in_liver, 20.0)
    if hilum is None:
        return []
    r_trunk = rng.uniform(6.0, 8.0)
    confluence = hilum + np.array([rng.uniform(15.0, 30.0), rng.uniform(0.0, 15.0), -rng.uniform(35.0, 50.0)])
    ops = [
        Paint(
            capsule(confluence, hilum, r_trunk, r_trunk * 0.9, "portal trunk"),
            T.PORTAL_VEIN,
            frozenset({T.FAT_VISCERAL, T.LIVER}),
        )
    ]
    right = _unit(np.array([-1.0, rng.uniform(-0.2, 0.3), rng.uniform(0.0, 0.4)]))
    left = _unit(np.array([rng.uniform(0.4, 0.8), -rng.uniform(0.5, 0.9), rng.uniform(0.1, 0.4)]))
    _branch(rng, hilum, right, rng.uniform(40.0, 55.0), r_trunk * 0.8, 4, in_liver, T.PORTAL_VEIN, ops)
    _branch(rng, hilum, left, rng.uniform(40.0, 55.0), r_trunk * 0.7, 4, in_liver, T.PORTAL_VEIN, ops)
    return ops


def hepatic_vein_ops(
    rng: np.random.Generator, ivc_xy: tuple[float, float], z_entry: float, in_liver: LiverTest
) -> list[Paint]:
    """Right, middle and left hepatic veins fanning out anteriorly and down from the IVC below the dome."""
    entry = np.array([ivc_xy[0], ivc_xy[1] - 6.0, z_entry])
    ops: list[Paint] = []
    for direction in ((-1.0, 0.15, -0.35), (-0.35, -0.9, -0.35), (0.55, -0.8, -0.2)):
        d = _turn(rng, _unit(np.array(direction)), rng.uniform(0.0, 12.0))
        start = entry + d * 12.0
        end = start + d * rng.uniform(60.0, 95.0)
        ops.append(Paint(capsule(entry, end, 6.0, 2.5, "hepatic vein"), T.HEPATIC_VEIN, frozenset({T.LIVER})))
        _branch(rng, end - d * 30.0, _turn(rng, d, 40.0), 35.0, 3.0, 1, in_liver, T.HEPATIC_VEIN, ops)
    return ops
