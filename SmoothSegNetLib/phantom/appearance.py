"""From a tissue map to Hounsfield units: contrast phase, per-tissue attenuation, lesion blends, blur and noise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.phantom.lesions import LesionSpec
from SmoothSegNetLib.phantom.raster import GridCoords, apply_in_box
from SmoothSegNetLib.phantom.shapes import Waves
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE, Phase, T, load_table

HU_MIN, HU_MAX = -1024, 3071


@dataclass(frozen=True)
class Appearance:
    """How a phantom looks: phase, attenuation per tissue id (``hu_by_tissue[id]``), blur and noise."""

    phase: Phase
    hu_by_tissue: np.ndarray
    steatosis_shift_hu: float
    noise_sigma_hu: float
    psf_sigma_mm: float
    liver_texture: Waves

    @property
    def liver_hu(self) -> float:
        return float(self.hu_by_tissue[T.LIVER])


def draw_appearance(rng: np.random.Generator, phase: Phase | None = None) -> Appearance:
    """Draw the phase (unless given), each tissue's HU from its range, steatosis, noise and blur."""
    table = load_table()
    if phase is None:
        probs = table["phase_probabilities"]
        names = list(probs)
        p = np.array([probs[n] for n in names], dtype=float)
        phase = Phase(names[int(rng.choice(len(names), p=p / p.sum()))])
    hu = np.zeros(256, dtype=np.float32)
    for tissue in table["tissues"]:
        lo, hi = tissue["hu"][phase.value]
        hu[int(tissue["id"])] = rng.uniform(lo, hi)
    steatosis = table["steatosis"]
    shift = float(rng.uniform(*steatosis["liver_shift_hu"])) if rng.random() < steatosis["probability"] else 0.0
    hu[T.LIVER] += shift
    return Appearance(
        phase=phase,
        hu_by_tissue=hu,
        steatosis_shift_hu=shift,
        noise_sigma_hu=float(rng.uniform(8.0, 20.0)),
        psf_sigma_mm=float(rng.uniform(0.5, 1.1)),
        liver_texture=Waves.random(rng, 5, (8.0, 30.0), float(rng.uniform(2.0, 5.0))),
    )


def lesion_hu(spec: LesionSpec, liver_hu: float, r: np.ndarray) -> np.ndarray:
    """Attenuation inside a lesion as a function of its normalised radius ``r`` (1 = border)."""
    value = np.full(r.shape, liver_hu + spec.delta_hu, dtype=np.float32)
    if spec.rim_delta_hu:
        rim_r = spec.rim_mm / spec.mean_radius_mm
        value += np.float32(spec.rim_delta_hu - spec.delta_hu) * np.exp(-(((r - (1 - rim_r / 2)) / rim_r) ** 2))
    if spec.necrosis_delta_hu:
        value += np.float32(spec.necrosis_delta_hu) / (1 + np.exp((r - 0.5) / 0.08))
    return np.maximum(value, np.float32(5.0))


def render_hu(tissue: np.ndarray, coords: GridCoords, look: Appearance, lesions: Sequence[LesionSpec]) -> np.ndarray:
    """Noise-free, unblurred HU ``float32 [k, j, i]`` of a tissue map, with liver texture and soft lesion margins."""
    hu = look.hu_by_tissue[tissue]
    liver = np.uint8(T.LIVER)

    def texture(x: np.ndarray, y: np.ndarray, z: np.ndarray, slab: tuple[slice, slice, slice]) -> None:
        view = hu[slab]
        mask = tissue[slab] == liver
        if mask.any():
            view[mask] += np.broadcast_to(look.liver_texture(x, y, z), view.shape)[mask]

    coords_box = _tissue_box(tissue, coords, liver)
    if coords_box is not None:
        apply_in_box(coords, coords_box, texture)
    for n, spec in enumerate(lesions):
        own = np.uint8(LESION_TISSUE_BASE + n)

        def blend(
            x: np.ndarray,
            y: np.ndarray,
            z: np.ndarray,
            slab: tuple[slice, slice, slice],
            spec: LesionSpec = spec,
            own: np.uint8 = own,
        ) -> None:
            t = tissue[slab]
            mask = (t == liver) | (t == own)
            if not mask.any():
                return
            r = np.broadcast_to(spec.ellipsoid.level(x, y, z), t.shape)[mask]
            w = 1.0 / (1.0 + np.exp(np.clip((r - 1.0) * np.float32(spec.mean_radius_mm / spec.margin_mm), -60, 60)))
            view = hu[slab]
            background = np.where(t[mask] == own, np.float32(look.liver_hu), view[mask])
            inner = lesion_hu(spec, look.liver_hu, r)
            if spec.texture is not None:
                inner = inner + np.broadcast_to(spec.texture(x, y, z), t.shape)[mask]
            view[mask] = background * (1 - w) + inner * w

        apply_in_box(coords, spec.ellipsoid.bbox(1.4), blend)
    return hu


def _tissue_box(tissue: np.ndarray, coords: GridCoords, value: np.uint8) -> tuple | None:
    """The anatomy-frame bounding box of the voxels holding ``value`` (None if there are none)."""
    present = [np.nonzero(np.any(tissue == value, axis=axes))[0] for axes in ((1, 2), (0, 2), (0, 1))]
    if any(len(p) == 0 for p in present):
        return None
    k, j, i = ((p[0], p[-1]) for p in present)
    corners = np.array([[ii, jj, kk] for ii in i for jj in j for kk in k], dtype=float)
    lps = corners @ coords.matrix.T + coords.origin
    return (tuple((lps.min(axis=0) - 1).tolist()), tuple((lps.max(axis=0) + 1).tolist()))


def _kernel_energy(sigma_vox: float) -> float:
    """Sum of squared weights of scipy's 1D Gaussian kernel (noise variance factor after blurring)."""
    impulse = np.zeros(64)
    impulse[32] = 1.0
    return float(np.sum(ndimage.gaussian_filter1d(impulse, sigma_vox, mode="constant", truncate=3.0) ** 2))


def blur_and_noise(
    hu: np.ndarray, spacing_mm: Sequence[float], look: Appearance, rng: np.random.Generator
) -> np.ndarray:
    """Partial-volume + scanner blur (Gaussian in mm per image axis) and correlated noise; int16 HU.

    The blur of each axis combines the voxel's box averaging (standard deviation = spacing / sqrt(12)) with
    the scanner's point-spread. White noise is added before blurring, scaled so the blurred noise has
    standard deviation ``look.noise_sigma_hu`` (the blur gives it a CT-like grain).
    """
    sigma_vox_ijk = [float(np.sqrt(1.0 / 12.0 + (look.psf_sigma_mm / s) ** 2)) for s in spacing_mm]
    energy = float(np.prod([_kernel_energy(s) for s in sigma_vox_ijk]))
    noise = rng.standard_normal(size=hu.shape, dtype=np.float32)
    noise *= np.float32(look.noise_sigma_hu / np.sqrt(energy))
    hu += noise
    del noise
    sigma_kji = sigma_vox_ijk[::-1]
    ndimage.gaussian_filter(hu, sigma_kji, output=hu, mode="nearest", truncate=3.0)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    return np.rint(hu).astype(np.int16)
