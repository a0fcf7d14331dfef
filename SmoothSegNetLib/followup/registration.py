"""Register a follow-up visit to the baseline on the liver: rigid, then affine, then a smooth B-spline.

All three stages compare the two livers' signed distance maps (clipped to +-``clip_mm``) by mean squares,
inside the baseline's liver box (plus a margin). Distance maps, not CT values, drive the fit because the
tumours are what changed between the visits: aligning their intensities would pull the liver towards the
new tumour shape. The result follows ITK's convention: it maps a *baseline* LPS point to the corresponding
*follow-up* LPS point, so resampling the follow-up through it puts the follow-up on the baseline grid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.volume import Geometry

log = logging.getLogger(__name__)

LIVER_LABELS = (1, 2)
#: Share of the liver-box voxels the metric samples (a fixed random subset).
SAMPLING = 0.1
BSPLINE_ITERATIONS = 15


@dataclass(frozen=True)
class RegistrationOptions:
    """How to register.

    Attributes:
        dice_floor: a liver Dice after registration below this is an error (the visits cannot be compared).
        warn_below: below this (but above the floor) the result is kept with the warning ``registration_low_dice``.
        margin_mm: margin around the baseline liver box where the metric is evaluated.
        clip_mm: signed distances are clipped to +- this.
        knot_spacing_mm: B-spline control point spacing over the liver box.
        deformable: run the B-spline stage.
    """

    dice_floor: float = 0.80
    warn_below: float = 0.90
    margin_mm: float = 20.0
    clip_mm: float = 25.0
    knot_spacing_mm: float = 60.0
    deformable: bool = True


@dataclass(frozen=True)
class Registration:
    """A follow-up registered to the baseline.

    Attributes:
        transform: baseline LPS -> follow-up LPS (affine, then B-spline displacement applied first).
        affine: the affine stage alone.
        bspline: the B-spline stage, or None.
        dice: liver Dice after registration (on the baseline grid), per stage: rigid, affine, final.
    """

    transform: sitk.Transform
    affine: sitk.AffineTransform
    bspline: sitk.BSplineTransform | None
    dice: dict[str, float]

    @property
    def method(self) -> str:
        return "rigid+affine+bspline" if self.bspline is not None else "rigid+affine"

    def map_points(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """Baseline LPS ``(N, 3)`` -> follow-up LPS ``(N, 3)``."""
        pts = np.asarray(points_lps_mm, dtype=float).reshape(-1, 3)
        return np.array([self.transform.TransformPoint(tuple(float(v) for v in p)) for p in pts]).reshape(-1, 3)

    def as_dict(self, transform_file: str | None) -> dict[str, Any]:
        """The JSON entry: method, Dice per stage, the affine (4x4, baseline LPS -> follow-up LPS), the file."""
        m = np.asarray(self.affine.GetMatrix()).reshape(3, 3)
        c = np.asarray(self.affine.GetCenter())
        t = np.asarray(self.affine.GetTranslation())
        h = np.eye(4)
        h[:3, :3] = m
        h[:3, 3] = c + t - m @ c
        entry: dict[str, Any] = {
            "method": self.method,
            "liver_dice": round(self.dice["final"], 4),
            "liver_dice_by_stage": {k: round(v, 4) for k, v in self.dice.items()},
            "direction": "maps baseline LPS mm to follow-up LPS mm (ITK convention: resamples the follow-up "
            "onto the baseline)",
            "affine_lps": [[round(float(v), 6) for v in row] for row in h],
            "bspline_mesh_size": None,
            "transform_file": transform_file,
        }
        if self.bspline is not None:
            entry["bspline_mesh_size"] = [int(n) for n in self.bspline.GetTransformDomainMeshSize()]
        return entry

    def write(self, path: Path) -> None:
        sitk.WriteTransform(self.transform, str(path))


def _image(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    geometry.apply_to(image)
    return image


def _distance(mask: sitk.Image, clip_mm: float) -> sitk.Image:
    sdm = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return sitk.Clamp(sitk.Cast(sdm, sitk.sitkFloat32), sitk.sitkFloat32, -clip_mm, clip_mm)


def _box(mask: np.ndarray, geometry: Geometry, margin_mm: float) -> tuple[slice, slice, slice]:
    present = [np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1))]
    pad = [int(np.ceil(margin_mm / s)) for s in geometry.spacing_mm[::-1]]
    return tuple(slice(max(int(p[0]) - m, 0), min(int(p[-1]) + m + 1, n)) for p, m, n in zip(present, pad, mask.shape))  # type: ignore[return-value]


def _method(fixed: sitk.Image, moving: sitk.Image, iterations: int, shrink: list[int]) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel([max(s - 1, 0) for s in shrink])
    reg.SetSmoothingSigmasAreSpecifiedInPhysicalUnits(False)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(SAMPLING, seed=1)  # a fixed seed: the same inputs register identically
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=iterations, relaxationFactor=0.6
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    return reg


def liver_dice(
    fixed_mask: np.ndarray,
    fixed_geometry: Geometry,
    moving_mask: np.ndarray,
    moving_geometry: Geometry,
    transform: sitk.Transform,
) -> float:
    """Dice of the baseline liver and the follow-up liver resampled through ``transform`` (baseline grid)."""
    warped = warp_to(moving_mask.astype(np.uint8), moving_geometry, fixed_geometry, transform, nearest=True) > 0
    total = int(fixed_mask.sum()) + int(warped.sum())
    return 2.0 * float(np.logical_and(fixed_mask, warped).sum()) / total if total else 0.0


def warp_to(
    array: np.ndarray, src: Geometry, dst: Geometry, transform: sitk.Transform, *, nearest: bool, default: float = 0
) -> np.ndarray:
    """``array`` (on the follow-up grid ``src``) resampled onto ``dst`` (baseline grid) through ``transform``."""
    image = _image(array, src)
    out = sitk.Resample(
        image,
        [int(n) for n in dst.size_ijk],
        transform,
        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
        dst.origin_lps_mm,
        dst.spacing_mm,
        tuple(dst.direction_array.ravel()),
        float(default),
        image.GetPixelID(),
    )
    return sitk.GetArrayFromImage(out)


def register_liver(
    fixed_labels: np.ndarray,
    fixed_geometry: Geometry,
    moving_labels: np.ndarray,
    moving_geometry: Geometry,
    options: RegistrationOptions | None = None,
) -> Registration:
    """Register the follow-up (moving) liver to the baseline (fixed) liver.

    Args:
        fixed_labels, moving_labels: ``[k, j, i]`` labelmaps (1 liver, 2 tumor) on their CT grids.
        fixed_geometry, moving_geometry: their grids.
        options: see :class:`RegistrationOptions`.

    Raises:
        InputError: a visit has no liver, or the liver Dice after registration is under ``options.dice_floor``.
    """
    options = options or RegistrationOptions()
    fixed_mask = np.isin(fixed_labels, LIVER_LABELS)
    moving_mask = np.isin(moving_labels, LIVER_LABELS)
    for name, mask in (("baseline", fixed_mask), ("follow-up", moving_mask)):
        if not mask.any():
            raise InputError(f"the {name} labelmap has no liver (labels 1 or 2): the visits cannot be registered")
    box = _box(fixed_mask, fixed_geometry, options.margin_mm)
    from SmoothSegNetLib.resample import crop_geometry

    fixed = _distance(_image(fixed_mask[box].astype(np.uint8), crop_geometry(fixed_geometry, box)), options.clip_mm)
    moving = _distance(_image(moving_mask.astype(np.uint8), moving_geometry), options.clip_mm)
    init = sitk.CenteredTransformInitializer(
        sitk.Cast(fixed < 0, sitk.sitkFloat32),
        sitk.Cast(moving < 0, sitk.sitkFloat32),
        sitk.Euler3DTransform(),
        sitk.CenteredTransformInitializerFilter.MOMENTS,
    )
    rigid = sitk.Euler3DTransform(init)
    reg = _method(fixed, moving, 100, [4, 2, 1])
    reg.SetInitialTransform(rigid, inPlace=True)
    reg.Execute(fixed, moving)
    dice = {"rigid": liver_dice(fixed_mask, fixed_geometry, moving_mask, moving_geometry, rigid)}
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    reg = _method(fixed, moving, 100, [2, 1])
    reg.SetInitialTransform(affine, inPlace=True)
    reg.Execute(fixed, moving)
    dice["affine"] = liver_dice(fixed_mask, fixed_geometry, moving_mask, moving_geometry, affine)
    final: sitk.Transform = sitk.AffineTransform(affine)
    bspline = None
    if options.deformable:
        extent = np.asarray(fixed.GetSpacing()) * np.asarray(fixed.GetSize())
        mesh = [max(1, int(round(e / options.knot_spacing_mm))) for e in extent]
        bspline = sitk.BSplineTransformInitializer(fixed, mesh, 3)
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMeanSquares()
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-4, numberOfIterations=BSPLINE_ITERATIONS)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(SAMPLING / 2, seed=1)
        reg.SetShrinkFactorsPerLevel([2])
        reg.SetSmoothingSigmasPerLevel([1])
        reg.SetMovingInitialTransform(affine)
        reg.SetInitialTransform(bspline, inPlace=True)
        reg.Execute(fixed, moving)
        final = sitk.CompositeTransform([sitk.AffineTransform(affine), bspline])
        dice["final"] = liver_dice(fixed_mask, fixed_geometry, moving_mask, moving_geometry, final)
        if dice["final"] < dice["affine"]:  # a deformable step that made things worse is dropped, and said so
            log.warning(
                "B-spline stage lowered the liver Dice (%.4f -> %.4f): kept the affine", dice["affine"], dice["final"]
            )
            final, bspline = sitk.AffineTransform(affine), None
            dice["final"] = dice["affine"]
    else:
        dice["final"] = dice["affine"]
    if dice["final"] < options.dice_floor:
        raise InputError(
            f"the follow-up liver could not be registered to the baseline: liver Dice after registration "
            f"{dice['final']:.3f} is under the floor {options.dice_floor:.2f}; check that both folders show the "
            "same patient's liver (or lower --min-liver-dice)"
        )
    return Registration(final, affine, bspline, dice)


def inverse_points(registration: Registration, points_lps_mm: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Follow-up LPS ``(N, 3)`` -> baseline LPS: solve ``T(p) = q`` by fixed-point steps through the affine inverse."""
    q = np.asarray(points_lps_mm, dtype=float).reshape(-1, 3)
    inverse = registration.affine.GetInverse()
    p = np.array([inverse.TransformPoint(tuple(float(v) for v in x)) for x in q]).reshape(-1, 3)
    a_inv = np.linalg.inv(np.asarray(registration.affine.GetMatrix()).reshape(3, 3))
    for _ in range(iterations):
        residual = q - registration.map_points(p)
        p = p + residual @ a_inv.T
        if np.max(np.abs(residual), initial=0.0) < 1e-4:
            break
    return p
