"""The viable (arterially enhancing) part of each lesion, for mRECIST.

Rule: on an arterial-phase CT smoothed by a Gaussian of ``SMOOTH_MM``, a lesion voxel is viable if its HU is
at least ``MARGIN_HU`` above the mean HU of the surrounding liver parenchyma (label 1, in a shell 3-15 mm
outside the lesion) and at most ``LIPIODOL_HU``; voxels near lipiodol (raw HU > ``LIPIODOL_HU``, within
``max(3 mm, 1.8 voxels)``) are excluded, since the blur of a dense deposit looks like enhancement. Necrosis
(fluid density, below the parenchyma) is never viable. The viable long axis is the RECIST long axis of the
viable voxels (the project's one measurement), 0 when none is left.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.report.recist import recist_axes
from SmoothSegNetLib.resample import crop_geometry
from SmoothSegNetLib.volume import Geometry

MARGIN_HU = 20.0
LIPIODOL_HU = 300.0
SMOOTH_MM = 1.5
SHELL_MM = (3.0, 15.0)
RULE = (
    f"viable = lesion voxels whose arterial-phase HU (Gaussian-smoothed, sigma {SMOOTH_MM:g} mm) is >= the mean HU "
    f"of the liver parenchyma {SHELL_MM[0]:g}-{SHELL_MM[1]:g} mm around the lesion + {MARGIN_HU:g} HU and <= "
    f"{LIPIODOL_HU:g} HU, excluding voxels within max(3 mm, 1.8 voxels) of lipiodol (> {LIPIODOL_HU:g} HU); "
    "necrosis (below the parenchyma) and lipiodol are not viable"
)


def _crop(mask: np.ndarray, geometry: Geometry, margin_mm: float) -> tuple[slice, slice, slice]:
    present = [np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1))]
    pad = [int(np.ceil(margin_mm / s)) + 1 for s in geometry.spacing_mm[::-1]]
    return tuple(slice(max(int(p[0]) - m, 0), min(int(p[-1]) + m + 1, n)) for p, m, n in zip(present, pad, mask.shape))  # type: ignore[return-value]


def viable_mask(
    ct_hu: np.ndarray, labels: np.ndarray, lesion: np.ndarray, geometry: Geometry
) -> tuple[np.ndarray, float | None]:
    """Viable voxels of one lesion (boolean ``[k, j, i]`` on the crop box) and the parenchyma reference HU.

    Returns the mask on the full grid and the reference (None if no parenchyma surrounds the lesion; then
    nothing is called viable).
    """
    box = _crop(lesion, geometry, SHELL_MM[1] + 3 * SMOOTH_MM)
    spacing_kji = np.asarray(geometry.spacing_mm[::-1], dtype=float)
    hu = ct_hu[box].astype(np.float32)
    own = lesion[box]
    outside = ndimage.distance_transform_edt(~own, sampling=spacing_kji)
    shell = (outside >= SHELL_MM[0]) & (outside <= SHELL_MM[1]) & (labels[box] == 1)
    out = np.zeros(lesion.shape, dtype=bool)
    if not shell.any():
        return out, None
    reference = float(hu[shell].mean())
    smooth = ndimage.gaussian_filter(hu, SMOOTH_MM / spacing_kji, mode="nearest")
    dense = hu > LIPIODOL_HU
    guard = max(3.0, 1.8 * float(max(geometry.spacing_mm)))
    near_dense = ndimage.distance_transform_edt(~dense, sampling=spacing_kji) <= guard if dense.any() else dense
    viable = own & (smooth >= reference + MARGIN_HU) & (smooth <= LIPIODOL_HU) & ~near_dense
    out[box] = viable
    return out, reference


def viable_long_axes(
    ct_hu: np.ndarray, labels: np.ndarray, lesions: np.ndarray, geometry: Geometry
) -> dict[int, float]:
    """Lesion id -> viable long axis (mm, RECIST rule on the viable voxels; 0 if none)."""
    out: dict[int, float] = {}
    for lesion_id in (int(v) for v in np.unique(lesions) if v):
        mask, _ = viable_mask(ct_hu, labels, lesions == lesion_id, geometry)
        if not mask.any():
            out[lesion_id] = 0.0
            continue
        box = _crop(mask, geometry, 0.0)
        axes = recist_axes(mask[box], crop_geometry(geometry, box))
        out[lesion_id] = round(axes.long_axis_mm, 2) if axes is not None else 0.0
    return out
