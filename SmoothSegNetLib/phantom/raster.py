"""Rasterising implicit shapes onto a voxel grid (any spacing, origin and direction) or onto points.

The anatomy lives in an *anatomy frame*: LPS millimetres minus a fixed offset (where the patient lies in
the scanner). A voxel gets the tissue whose shape contains its centre: the scene is a list of
:class:`Paint` operations applied in order, each painting its tissue where its shape contains the voxel
centre and (optionally) only over given tissues. Work is limited to each shape's bounding box and done in
slabs of slices so memory stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from SmoothSegNetLib.phantom.shapes import Shape
from SmoothSegNetLib.volume import Geometry

Array = np.ndarray
BBox = tuple[tuple[float, float, float], tuple[float, float, float]]

#: Voxels per slab when rasterising (bounds temporary memory to a few tens of MB per array).
SLAB_VOXELS = 2_000_000


@dataclass(frozen=True)
class Paint:
    """Paint ``tissue`` inside ``shape``; if ``over`` is given, only where the current tissue is one of them."""

    shape: Shape
    tissue: int
    over: frozenset[int] | None = None


def _allowed(over: frozenset[int] | None) -> Array | None:
    if over is None:
        return None
    table = np.zeros(256, dtype=bool)
    table[list(over)] = True
    return table


class PointPainter:
    """Tissue ids at arbitrary anatomy-frame points (the same rule as :func:`paint_grid`), for many small queries."""

    def __init__(self, ops: Sequence[Paint]) -> None:
        self.ops = tuple(ops)
        self._lo = np.array([op.shape.bbox[0] for op in self.ops], dtype=np.float32).reshape(-1, 3)
        self._hi = np.array([op.shape.bbox[1] for op in self.ops], dtype=np.float32).reshape(-1, 3)
        self._allowed = [_allowed(op.over) for op in self.ops]

    def __call__(self, points_mm: Array) -> Array:
        """Tissue ids ``uint8 (N,)`` at ``(N, 3)`` points."""
        pts = np.asarray(points_mm, dtype=np.float32).reshape(-1, 3)
        tissue = np.zeros(len(pts), dtype=np.uint8)
        near_all = np.all((pts[:, None, :] >= self._lo[None]) & (pts[:, None, :] <= self._hi[None]), axis=2)
        for n in np.nonzero(near_all.any(axis=0))[0]:
            idx = np.nonzero(near_all[:, n])[0]
            op = self.ops[n]
            mask = op.shape.inside(pts[idx, 0], pts[idx, 1], pts[idx, 2])
            allowed = self._allowed[n]
            if allowed is not None:
                mask &= allowed[tissue[idx]]
            tissue[idx[mask]] = op.tissue
        return tissue


def paint_points(ops: Sequence[Paint], points_mm: Array) -> Array:
    """Tissue ids at ``(N, 3)`` anatomy-frame points (the same rule as on a grid)."""
    return PointPainter(ops)(points_mm)


class GridCoords:
    """Anatomy-frame coordinates of the voxel centres of a grid, as small broadcastable blocks."""

    def __init__(self, geometry: Geometry, offset_lps_mm: npt.ArrayLike) -> None:
        self.geometry = geometry
        m = geometry.ijk_to_lps()
        self.matrix = m[:3, :3]
        self.origin = m[:3, 3] - np.asarray(offset_lps_mm, dtype=float)
        self.shape_kji = geometry.shape_kji
        self._inverse = np.linalg.inv(self.matrix)

    def block(self, k: slice, j: slice, i: slice) -> tuple[Array, Array, Array]:
        """``(x, y, z)`` arrays for voxels ``[k, j, i]`` that broadcast to the block shape."""
        axes = (
            np.arange(i.start, i.stop, dtype=np.float32)[None, None, :],
            np.arange(j.start, j.stop, dtype=np.float32)[None, :, None],
            np.arange(k.start, k.stop, dtype=np.float32)[:, None, None],
        )
        out = []
        for row in range(3):
            value: Array | np.float32 = np.float32(self.origin[row])
            for col in range(3):
                if abs(self.matrix[row, col]) > 1e-9:
                    value = value + np.float32(self.matrix[row, col]) * axes[col]
            arr = np.asarray(value, dtype=np.float32)
            out.append(arr.reshape((1, 1, 1)) if arr.ndim == 0 else arr)
        return out[0], out[1], out[2]

    def index_box(self, bbox: BBox) -> tuple[slice, slice, slice] | None:
        """Slices ``(k, j, i)`` of the voxels whose centres may lie in ``bbox``; ``None`` if none do."""
        lo, hi = (np.asarray(b, dtype=float) for b in bbox)
        corners = np.array(
            [[(lo, hi)[a][0], (lo, hi)[b][1], (lo, hi)[c][2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)]
        )
        ijk = (corners - self.origin) @ self._inverse.T
        first = np.floor(ijk.min(axis=0)).astype(int)
        last = np.ceil(ijk.max(axis=0)).astype(int) + 1
        size = np.asarray(self.geometry.size_ijk)
        first = np.clip(first, 0, size)
        last = np.clip(last, 0, size)
        if np.any(last <= first):
            return None
        return slice(first[2], last[2]), slice(first[1], last[1]), slice(first[0], last[0])

    def slabs(self, box: tuple[slice, slice, slice]) -> Iterator[tuple[slice, slice, slice]]:
        """Split a box into slabs along k of at most about :data:`SLAB_VOXELS` voxels."""
        k, j, i = box
        per_slice = max((j.stop - j.start) * (i.stop - i.start), 1)
        step = max(1, SLAB_VOXELS // per_slice)
        for start in range(k.start, k.stop, step):
            yield slice(start, min(start + step, k.stop)), j, i


def paint_grid(ops: Sequence[Paint], coords: GridCoords) -> Array:
    """The tissue map ``uint8 [k, j, i]`` of the grid."""
    tissue = np.zeros(coords.shape_kji, dtype=np.uint8)
    for op in ops:
        box = coords.index_box(op.shape.bbox)
        if box is None:
            continue
        allowed = _allowed(op.over)
        for slab in coords.slabs(box):
            x, y, z = coords.block(*slab)
            view = tissue[slab]
            mask = np.broadcast_to(op.shape.inside(x, y, z), view.shape)
            if allowed is not None:
                mask = mask & allowed[view]
            view[mask] = op.tissue
    return tissue


def apply_in_box(
    coords: GridCoords,
    bbox: BBox,
    fn: Callable[[Array, Array, Array, tuple[slice, slice, slice]], None],
) -> None:
    """Call ``fn(x, y, z, slab)`` for every slab of the voxels inside ``bbox`` (for in-place HU edits)."""
    box = coords.index_box(bbox)
    if box is None:
        return
    for slab in coords.slabs(box):
        fn(*coords.block(*slab), slab)
