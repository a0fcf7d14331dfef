"""Per-component features for the lesion classifier: what the tumor network says, how the component looks on the
CT against the liver around it, and its shape, all in millimetres and HU (the same on any grid or orientation).

A component is one connected tumor region on the input grid. Its features:

* ``log_ml``: log10 of its volume in ml;
* ``q_mean`` / ``q_max``: the tumor probability inside it (mean / highest);
* ``hu``: its median CT value; ``ring_hu``: the median of the liver 2–6 mm around it (other components left
  out); ``contrast``: ``hu - ring_hu``; ``noise``: the spread (MAD, as a standard deviation) of that ring;
  ``cnr``: ``|contrast| / noise``; ``spread``: the MAD of its own voxels (cysts are flat);
* ``flat`` / ``thin``: second / first and third / first axis of its second moments in mm (1 = round; a vessel
  is thin); ``fill``: its volume over that of the ellipsoid with the same moments;
* ``depth``: how deep its centre lies in the liver (mm from the liver's edge);
* ``continues``: share of the 1–3 mm shell around it that is closer to its HU than to the ring's (a vessel
  continues past the end of the component, a ball does not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.volume import Geometry

FEATURES = (
    "log_ml",
    "q_mean",
    "q_max",
    "hu",
    "ring_hu",
    "contrast",
    "noise",
    "cnr",
    "spread",
    "flat",
    "thin",
    "fill",
    "depth",
    "continues",
)

_RING_MM = (2.0, 6.0)
_SHELL_MM = (1.0, 3.0)
_MAD_TO_SD = 1.4826


def component_features(
    components: np.ndarray,
    q: np.ndarray,
    hu: np.ndarray,
    liver: np.ndarray,
    geometry: Geometry,
    ids: Sequence[int] | None = None,
) -> dict[int, dict[str, float]]:
    """Features (:data:`FEATURES`) of each labelled component of ``components`` (all arrays on ``geometry``,
    k, j, i order).

    Args:
        components: component ids (0 = none).
        q: the tumor probability.
        hu: the CT in HU.
        liver: the liver mask (bool).
        geometry: the grid.
        ids: the components to describe (default: all).
    """
    count = int(components.max()) if components.size else 0
    if ids is None:
        ids = range(1, count + 1)
    spacing_kji = np.array(geometry.spacing_mm[::-1], dtype=float)
    pad = np.ceil(_RING_MM[1] / spacing_kji).astype(int) + 1
    boxes = ndimage.find_objects(components, max_label=count)
    rotation = geometry.direction_array * spacing_kji[::-1]  # ijk steps -> LPS mm
    out: dict[int, dict[str, float]] = {}
    for n in ids:
        box = boxes[n - 1]
        if box is None:
            continue
        big = tuple(
            slice(max(s.start - p, 0), min(s.stop + p, size))
            for s, p, size in zip(box, pad, components.shape, strict=True)
        )
        comp = components[big]
        inside = comp == n
        others = (comp > 0) & ~inside
        liver_box = liver[big]
        hu_box = hu[big].astype(np.float32)
        distance = ndimage.distance_transform_edt(~inside, sampling=spacing_kji)
        ring = (distance >= _RING_MM[0]) & (distance <= _RING_MM[1]) & liver_box & ~others
        shell = (distance > _SHELL_MM[0] - 1e-6) & (distance <= _SHELL_MM[1]) & ~others
        values = hu_box[inside]
        median = float(np.median(values))
        if ring.sum() >= 8:
            ring_values = hu_box[ring]
            ring_hu = float(np.median(ring_values))
            noise = max(_MAD_TO_SD * float(np.median(np.abs(ring_values - ring_hu))), 1.0)
        else:  # no liver around it (it lies outside): compare with itself, no contrast
            ring_hu, noise = median, 1.0
        shell_values = hu_box[shell]
        continues = (
            float(np.mean(np.abs(shell_values - median) < np.abs(shell_values - ring_hu))) if shell.any() else 0.0
        )
        ks, js, is_ = np.nonzero(inside)
        voxels = np.stack([is_, js, ks], axis=1).astype(float) @ rotation.T
        flat, thin, fill = _shape(voxels, rotation, geometry.voxel_volume_mm3)
        qs = q[big][inside]
        k, j, i = (int(round(float(np.mean(a)))) + s.start for a, s in zip((ks, js, is_), big, strict=True))
        depth = _depth(liver, (k, j, i), spacing_kji)
        out[n] = {
            "log_ml": math.log10(max(inside.sum() * geometry.voxel_volume_mm3 / 1000.0, 1e-4)),
            "q_mean": float(qs.mean()),
            "q_max": float(qs.max()),
            "hu": median,
            "ring_hu": ring_hu,
            "contrast": median - ring_hu,
            "noise": noise,
            "cnr": abs(median - ring_hu) / noise,
            "spread": _MAD_TO_SD * float(np.median(np.abs(values - median))),
            "flat": flat,
            "thin": thin,
            "fill": fill,
            "depth": depth,
            "continues": continues,
        }
    return out


def _depth(liver: np.ndarray, centre: tuple[int, int, int], spacing_kji: np.ndarray) -> float:
    """Distance (mm) from the voxel ``centre`` to the nearest voxel of the grid outside ``liver`` (0 outside it;
    what a Euclidean distance transform of the liver gives there), searched in growing boxes around the centre:
    a voxel outside a box of half-size r is farther than r, so the nearest one found within r is the nearest."""
    if not liver[centre]:
        return 0.0
    radius_mm = 8.0
    while True:
        half = np.ceil(radius_mm / spacing_kji).astype(int)
        box = tuple(slice(max(c - h, 0), min(c + h + 1, n)) for c, h, n in zip(centre, half, liver.shape, strict=True))
        outside = np.argwhere(~liver[box])
        whole = all(b.start == 0 and b.stop == n for b, n in zip(box, liver.shape, strict=True))
        if len(outside):
            offset = (outside + [b.start for b in box] - np.array(centre)) * spacing_kji
            nearest = float(np.sqrt((offset**2).sum(axis=1).min()))
            if nearest <= radius_mm or whole:
                return nearest
        elif whole:  # the liver fills the grid: as deep as the grid allows
            return radius_mm
        radius_mm *= 2.0


def _shape(points_mm: np.ndarray, rotation: np.ndarray, voxel_mm3: float) -> tuple[float, float, float]:
    """``(second / first axis, third / first axis, volume / moment ellipsoid volume)`` of a voxel set whose
    voxel centres are ``points_mm`` and whose voxel edges are the columns of ``rotation`` (mm)."""
    # The voxels' own extent (a uniform cell has variance edge^2 / 12 along it) is added to the spread of their
    # centres: a component one slice thick still has a thickness.
    cov = rotation @ rotation.T / 12.0
    if len(points_mm) > 1:
        cov = cov + np.cov(points_mm, rowvar=False, bias=True)
    eig = np.sort(np.clip(np.linalg.eigvalsh(cov), 1e-9, None))[::-1]
    # A solid ellipsoid of semi-axes a has variance a^2 / 5 along it.
    axes = np.sqrt(5.0 * eig)
    ellipsoid = 4.0 / 3.0 * math.pi * float(np.prod(axes))
    return float(axes[1] / axes[0]), float(axes[2] / axes[0]), float(len(points_mm) * voxel_mm3 / ellipsoid)
