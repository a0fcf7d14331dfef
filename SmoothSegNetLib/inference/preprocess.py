"""Preparing a CT for a network exactly as the card says — shared by inference and training.

Training (``SmoothSegNetLib.training``) must use these functions, so that a network sees the same input in
training and in use: :func:`network_grid` (canonical grid at the card's spacing and orientation),
:func:`window_hu` (clip to the HU window, scale to [0, 1]) and :func:`to_network_layout` (``[k, j, i]`` ->
``[i, j, k]``, the axis order MONAI readers give, which the cards' ``roi_size_ijk`` follows).
"""

from __future__ import annotations

import numpy as np

from SmoothSegNetLib.models.card import ModelCard
from SmoothSegNetLib.resample import Interpolation, canonical_geometry, resample
from SmoothSegNetLib.volume import CTVolume, Geometry

#: HU given to grid voxels outside the CT (air); it falls below every HU window, so it windows to 0.
OUTSIDE_HU = -1024.0


def network_grid(geometry: Geometry, card: ModelCard) -> Geometry:
    """The grid the card's network runs on: axes along ``card.input.orientation``, spacing
    ``card.input.spacing_mm`` (``None`` = native), covering all of ``geometry``."""
    return canonical_geometry(geometry, card.input.spacing_mm, card.input.orientation)


def window_hu(array: np.ndarray, hu_window: tuple[float, float]) -> np.ndarray:
    """Clip to ``[low, high]`` HU and scale linearly to [0, 1] (float32, a new array)."""
    low, high = float(hu_window[0]), float(hu_window[1])
    out = np.asarray(array, dtype=np.float32) - np.float32(low)
    out *= np.float32(1.0 / (high - low))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def resample_ct(ct_kji: np.ndarray, src: Geometry, dst: Geometry) -> np.ndarray:
    """CT values (HU) on ``dst`` by linear interpolation; outside the CT = air (-1024 HU). float32 ``[k, j, i]``."""
    work = ct_kji if ct_kji.dtype == np.float32 else ct_kji.astype(np.float32)
    return resample(work, src, dst, Interpolation.LINEAR, OUTSIDE_HU)


def prepare_input(ct: CTVolume, card: ModelCard) -> tuple[np.ndarray, Geometry]:
    """The windowed CT on the card's grid: ``(image_kji float32 in [0, 1], grid)``."""
    grid = network_grid(ct.geometry, card)
    image = window_hu(resample_ct(ct.array, ct.geometry, grid), card.input.hu_window)
    return image, grid


def resample_labels(labels_kji: np.ndarray, src: Geometry, dst: Geometry) -> np.ndarray:
    """A label map on another grid (nearest neighbour; outside = 0)."""
    return resample(labels_kji, src, dst, Interpolation.NEAREST, 0)


def to_network_layout(array_kji: np.ndarray) -> np.ndarray:
    """``[..., k, j, i]`` -> ``[..., i, j, k]`` (a view)."""
    return np.swapaxes(array_kji, -1, -3)


def from_network_layout(array_ijk: np.ndarray) -> np.ndarray:
    """``[..., i, j, k]`` -> ``[..., k, j, i]`` (a view)."""
    return np.swapaxes(array_ijk, -1, -3)
