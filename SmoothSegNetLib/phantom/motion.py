"""A follow-up visit's patient motion: a known rigid move plus a smooth breathing displacement.

The transform maps a point of the follow-up scan (scanner LPS mm) to the same anatomy in the baseline scan:
``p = c + R (q - c) + t + a * exp(-|q - b|^2 / (2 s^2))`` with ``R`` a small rotation about the liver centre
``c``, ``t`` a translation, and a Gaussian bump of amplitude ``a`` (mostly cranio-caudal, as breathing moves
the liver) centred at ``b`` with width ``s``. The bump's largest slope ``|a| / (s sqrt(e))`` stays well below 1,
so the map is smooth and invertible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from SmoothSegNetLib.phantom.raster import BBox, GridCoords
from SmoothSegNetLib.phantom.shapes import rotation_matrix
from SmoothSegNetLib.volume import Geometry

MAX_ROTATION_DEG = 5.0
MAX_TRANSLATION_MM = 12.0
MAX_BREATH_MM = 14.0
BREATH_SIGMA_MM = 90.0


@dataclass(frozen=True)
class VisitTransform:
    """Follow-up scanner LPS -> baseline scanner LPS (see the module docstring for the formula)."""

    center_lps_mm: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], ...]
    translation_mm: tuple[float, float, float]
    breath_amplitude_mm: tuple[float, float, float]
    breath_center_lps_mm: tuple[float, float, float]
    breath_sigma_mm: float

    @classmethod
    def draw(cls, rng: np.random.Generator, liver_center_lps_mm: np.ndarray) -> VisitTransform:
        """A random motion about the liver centre (angles, shifts and breathing within the module limits)."""
        angles = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, 3)
        shift = rng.uniform(-MAX_TRANSLATION_MM, MAX_TRANSLATION_MM, 3)
        breath = float(rng.uniform(6.0, MAX_BREATH_MM)) * float(rng.choice([-1.0, 1.0]))
        amplitude = np.array([0.0, 0.25 * breath, breath])
        c = tuple(float(v) for v in liver_center_lps_mm)
        b = tuple(float(v) + float(d) for v, d in zip(c, rng.uniform(-20, 20, 3)))
        rot = rotation_matrix(angles)
        return cls(
            c,  # type: ignore[arg-type]
            tuple(tuple(float(v) for v in row) for row in rot),  # type: ignore[misc]
            tuple(float(v) for v in shift),  # type: ignore[arg-type]
            tuple(float(v) for v in amplitude),  # type: ignore[arg-type]
            b,  # type: ignore[arg-type]
            BREATH_SIGMA_MM,
        )

    def __call__(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """Map ``(N, 3)`` follow-up LPS points to baseline LPS points."""
        q = np.asarray(points_lps_mm, dtype=float).reshape(-1, 3)
        c = np.asarray(self.center_lps_mm)
        rot = np.asarray(self.rotation)
        d2 = np.sum((q - np.asarray(self.breath_center_lps_mm)) ** 2, axis=1)
        bump = np.exp(-d2 / (2.0 * self.breath_sigma_mm**2))[:, None] * np.asarray(self.breath_amplitude_mm)
        return np.asarray(c + (q - c) @ rot.T + np.asarray(self.translation_mm) + bump)

    def as_dict(self) -> dict[str, Any]:
        return {
            "maps": "follow-up scanner LPS mm -> baseline scanner LPS mm",
            "formula": "p = c + R (q - c) + t + a * exp(-|q - b|^2 / (2 s^2))",
            "c_lps_mm": [round(v, 4) for v in self.center_lps_mm],
            "R": [[round(v, 8) for v in row] for row in self.rotation],
            "t_mm": [round(v, 4) for v in self.translation_mm],
            "a_mm": [round(v, 4) for v in self.breath_amplitude_mm],
            "b_lps_mm": [round(v, 4) for v in self.breath_center_lps_mm],
            "s_mm": self.breath_sigma_mm,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VisitTransform:
        """Rebuild from :meth:`as_dict` (e.g. from a follow-up phantom's ``clinical.json``)."""
        return cls(
            tuple(d["c_lps_mm"]),  # type: ignore[arg-type]
            tuple(tuple(row) for row in d["R"]),
            tuple(d["t_mm"]),  # type: ignore[arg-type]
            tuple(d["a_mm"]),  # type: ignore[arg-type]
            tuple(d["b_lps_mm"]),  # type: ignore[arg-type]
            float(d["s_mm"]),
        )


class WarpedCoords(GridCoords):
    """Grid coordinates of a follow-up scan, mapped into the baseline's anatomy frame by a :class:`VisitTransform`.

    The anatomy is drawn once (baseline frame); sampling it at ``T(q)`` for every follow-up voxel centre ``q``
    renders the moved, breathing patient exactly.
    """

    def __init__(self, geometry: Geometry, offset_lps_mm: np.ndarray, transform: VisitTransform) -> None:
        super().__init__(geometry, offset_lps_mm)
        self.offset = np.asarray(offset_lps_mm, dtype=float)
        self.transform = transform

    def block(self, k: slice, j: slice, i: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, y, z = super().block(k, j, i)
        shape = (k.stop - k.start, j.stop - j.start, i.stop - i.start)
        pts = np.stack([np.broadcast_to(a, shape).ravel() for a in (x, y, z)], axis=1).astype(float)
        moved = self.transform(pts + self.offset) - self.offset
        return tuple(moved[:, n].reshape(shape).astype(np.float32) for n in range(3))  # type: ignore[return-value]

    def index_box(self, bbox: BBox) -> tuple[slice, slice, slice] | None:
        # ``bbox`` is in the baseline frame: the follow-up voxels mapping into it lie in its inverse-rigid image,
        # within the breathing amplitude. The union with ``bbox`` itself also covers boxes that callers computed
        # from this grid's own (unwarped) matrix, such as the liver-texture box of ``render_hu``.
        lo, hi = (np.asarray(b, dtype=float) for b in bbox)
        corners = np.array(
            [[(lo, hi)[a][0], (lo, hi)[b][1], (lo, hi)[c][2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)]
        )
        t = self.transform
        c = np.asarray(t.center_lps_mm)
        back = c + (corners + self.offset - c - np.asarray(t.translation_mm)) @ np.asarray(t.rotation) - self.offset
        pad = float(np.linalg.norm(t.breath_amplitude_mm)) + 2.0
        new_lo = np.minimum(back.min(axis=0), lo) - pad
        new_hi = np.maximum(back.max(axis=0), hi) + pad
        return super().index_box((tuple(new_lo.tolist()), tuple(new_hi.tolist())))  # type: ignore[arg-type]
