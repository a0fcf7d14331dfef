"""``make_phantom``: a synthetic contrast-enhanced abdominal CT with exact labels, on any grid.

The anatomy is drawn in millimetres from the seed alone and then sampled at each voxel centre, so the same
seed on a different grid (spacing, size, origin, oblique direction) shows the same patient. Independent
random streams (anatomy, lesions, look, noise, clinical record, placement in the scanner) are spawned from
the seed, so e.g. changing the grid changes the noise but nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.phantom.anatomy import Anatomy, build_anatomy, draw_body
from SmoothSegNetLib.phantom.appearance import Appearance, blur_and_noise, draw_appearance, render_hu
from SmoothSegNetLib.phantom.clinical import make_clinical_record
from SmoothSegNetLib.phantom.lesions import (
    LesionSpec,
    cyst_ops,
    draw_cysts,
    draw_lesions,
    draw_small_lesions,
    draw_wall_lesion,
    lesion_ops,
)
from SmoothSegNetLib.phantom.raster import GridCoords, Paint, PointPainter, paint_grid
from SmoothSegNetLib.phantom.shapes import Ellipsoid, rotation_matrix
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE, LesionKind, Phase, T, tissue_labels
from SmoothSegNetLib.phantom.vessels import hepatic_vein_ops, portal_vein_ops
from SmoothSegNetLib.volume import CTVolume, Geometry

log = logging.getLogger(__name__)

DEFAULT_SIZE_IJK = (128, 128, 96)
DEFAULT_SPACING_MM = (3.0, 3.0, 3.0)
MAX_VOXELS = 600_000_000
SPACING_RANGE_MM = (0.2, 10.0)
LABEL_TUMOR = 2
#: Share of phantoms with a cirrhotic liver (most HCC arises in cirrhosis).
CIRRHOSIS_PROBABILITY = 0.7


@dataclass(frozen=True)
class Lesion:
    """Ground truth of one lesion.

    Attributes:
        id: 1-based, in the order drawn (the first is the dominant one).
        kind: ``hypodense``, ``hyperdense`` or ``rim_enhancing``.
        center_lps_mm: centre of the nominal ellipsoid (LPS).
        diameters_mm: nominal ellipsoid diameters, largest first (the margin is wavy around them).
        delta_hu: lesion minus liver attenuation (before rim, necrosis, blur and noise).
        volume_ml: volume labelled as this lesion on the phantom's grid (0 if outside the field of view).
    """

    id: int
    kind: str
    center_lps_mm: tuple[float, float, float]
    diameters_mm: tuple[float, float, float]
    delta_hu: float
    volume_ml: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "center_lps_mm": list(self.center_lps_mm),
            "diameters_mm": list(self.diameters_mm),
            "delta_hu": self.delta_hu,
            "volume_ml": self.volume_ml,
        }


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic CT with its ground truth.

    Attributes:
        ct: int16 HU volume.
        labels: uint8 ``[k, j, i]`` on the CT grid: 0 other, 1 liver, 2 tumor, 3 portal vein, 4 aorta.
        clinical: the clinical record (HCC-TACE-Seg variable names) plus a separate ``ground_truth`` block.
        lesions: lesion ground truth.
        tissues: uint8 ``[k, j, i]`` tissue ids (``tissues.json``; lesion n has id 100 + n - 1).
        info: seed, phase, noise, blur, steatosis (what was drawn).
    """

    ct: CTVolume
    labels: np.ndarray
    clinical: dict[str, Any]
    lesions: tuple[Lesion, ...]
    tissues: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _check_options(
    seed: Any, size_ijk: Sequence[Any], spacing_mm: Sequence[Any]
) -> tuple[int, tuple[int, ...], tuple[float, ...]]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}: pass e.g. --seed 1")
    size = tuple(size_ijk)
    if len(size) != 3 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 8 for n in size):
        raise InputError(
            f"size must be three integers >= 8 (columns, rows, slices), got {size_ijk!r}: e.g. --size 128,128,96"
        )
    if int(np.prod([int(n) for n in size])) > MAX_VOXELS:
        raise InputError(f"size {size} has more than {MAX_VOXELS} voxels: choose a smaller --size")
    spacing = tuple(spacing_mm)
    lo, hi = SPACING_RANGE_MM
    if len(spacing) != 3 or not all(
        isinstance(s, (int, float, np.floating)) and np.isfinite(s) and lo <= s <= hi for s in spacing
    ):
        raise InputError(
            f"spacing must be three numbers in [{lo}, {hi}] mm, got {spacing_mm!r}: e.g. --spacing 1.5,1.5,3"
        )
    return int(seed), tuple(int(n) for n in size), tuple(float(s) for s in spacing)


#: Spawn key of the opt-in wall lesion's stream (past the nine of :func:`_streams`, which it leaves alone).
WALL_LESION_STREAM = 9
#: Spawn key of the opt-in extra small lesions' stream.
SMALL_LESION_STREAM = 10


def _streams(seed: int) -> list[np.random.SeedSequence]:
    """Independent random streams of a seed: 0 anatomy, 1 lesions, 2 look, 3 noise, 4 clinical record,
    5 placement in the scanner, 6 vessels, 7 cirrhosis, 8 cysts."""
    return np.random.SeedSequence(seed).spawn(9)


def _scanner_offset(place: np.random.Generator) -> np.ndarray:
    """Where the anatomy frame's origin lies in scanner LPS coordinates (the first draws of stream 5)."""
    return np.array([place.uniform(-20, 20), place.uniform(-60, 0), place.uniform(-700, -100)])


def phantom_geometry(
    seed: int, size_ijk: Sequence[int], spacing_mm: Sequence[float], oblique: bool = False
) -> Geometry:
    """The grid ``make_phantom`` uses: centred on the patient's upper abdomen, placed in the scanner by the seed."""
    seed, size, spacing = _check_options(seed, size_ijk, spacing_mm)
    streams = _streams(seed)
    place = np.random.default_rng(streams[5])
    offset = _scanner_offset(place)
    angles = place.uniform(8, 20, 3) * place.choice([-1.0, 1.0], 3) * np.array([1.0, 0.5, 1.0])
    direction = rotation_matrix(angles) if oblique else np.eye(3)
    anatomy_rng = np.random.default_rng(streams[0])
    body = draw_body(anatomy_rng)  # the same first draws as build_anatomy: the grid follows the patient
    center = offset + np.array([0.0, 0.0, body.dome_top_z_mm - 100.0])
    half = direction @ (np.asarray(spacing) * (np.asarray(size) - 1) / 2.0)
    return Geometry.create(size[::-1], spacing, center - half, direction)


def make_phantom(
    seed: int,
    size_ijk: Sequence[int] = DEFAULT_SIZE_IJK,
    spacing_mm: Sequence[float] = DEFAULT_SPACING_MM,
    oblique: bool = False,
    *,
    geometry: Geometry | None = None,
    phase: Phase | str | None = None,
    wall_lesion: bool = False,
    small_lesions: int = 0,
) -> Phantom:
    """Make a synthetic contrast-enhanced abdominal CT phantom.

    Args:
        seed: integer >= 0; the same seed gives the same patient (and on the same grid identical arrays).
        size_ijk: grid size (columns, rows, slices), each >= 8.
        spacing_mm: voxel size along (i, j, k) in mm, each in [0.2, 10].
        oblique: tilt the grid by seed-dependent angles (direction not a signed permutation).
        geometry: render onto this grid instead (``size_ijk``, ``spacing_mm`` and ``oblique`` are then ignored).
        phase: force the contrast phase (``non_contrast``, ``arterial``, ``portal_venous``); default: drawn.
        wall_lesion: add one more lesion (30-80 mm) whose edge meets the body-wall or paraspinal muscle, drawn
            from a stream of its own (training data; without it the seed's patient is unchanged).
        small_lesions: add up to this many more lesions of 5-20 mm, some at the liver's surface or against a
            vein, drawn from a stream of their own (training data; 0 leaves the seed's patient unchanged).

    Returns:
        The phantom: int16 CT, uint8 labels on the same grid, clinical record, lesion ground truth.

    Raises:
        InputError: a bad seed, size, spacing or phase.
    """
    if geometry is None:
        geometry = phantom_geometry(seed, size_ijk, spacing_mm, oblique)
    else:
        _check_options(seed, geometry.size_ijk, geometry.spacing_mm)
    try:
        forced = None if phase is None else Phase(phase)
    except ValueError as exc:
        raise InputError(f"phase must be one of {[p.value for p in Phase]}, got {phase!r}") from exc
    if not (isinstance(small_lesions, int) and not isinstance(small_lesions, bool) and 0 <= small_lesions <= 20):
        raise InputError(f"small_lesions must be an integer in [0, 20], got {small_lesions!r}")
    patient = _draw_patient(int(seed), forced, wall_lesion, small_lesions)
    coords = GridCoords(geometry, patient.offset)
    ops = [*patient.anatomy.ops, *patient.vessels, *cyst_ops(patient.cysts), *lesion_ops(patient.lesions)]
    tissues = paint_grid(ops, coords)
    labels = _labels_from_tissues(tissues)
    hu = render_hu(tissues, coords, patient.look, patient.lesions)
    noise_rng = np.random.default_rng(_streams(int(seed))[3])
    ct = CTVolume(
        blur_and_noise(hu, geometry.spacing_mm, patient.look, noise_rng), geometry, source=f"phantom seed {seed}"
    )

    lesions = _lesion_truth(patient.lesions, tissues, geometry, patient.offset)
    clinical_rng = np.random.default_rng(_streams(int(seed))[4])
    clinical = make_clinical_record(clinical_rng, seed, _tlvr(labels), lesions, patient.cirrhotic)
    info = _info(seed, patient.look, patient.anatomy.body.half_axes_mm)
    info["cirrhotic"] = patient.cirrhotic
    info["cysts"] = len(patient.cysts)
    clinical["ground_truth"]["lesions"] = [lesion.as_dict() for lesion in lesions]
    clinical["ground_truth"]["phantom"] = info
    return Phantom(ct, labels, clinical, lesions, tissues, info)


@dataclass(frozen=True)
class _Patient:
    """Everything drawn from a seed before any grid is involved (anatomy frame, millimetres)."""

    offset: np.ndarray
    cirrhotic: bool
    anatomy: Anatomy
    vessels: list[Paint]
    look: Appearance
    lesions: list[LesionSpec]
    cysts: list[Ellipsoid]


def _draw_patient(seed: int, phase: Phase | None, wall_lesion: bool = False, small_lesions: int = 0) -> _Patient:
    streams = _streams(seed)
    offset = _scanner_offset(np.random.default_rng(streams[5]))
    cirrhotic = bool(np.random.default_rng(streams[7]).random() < CIRRHOSIS_PROBABILITY)
    anatomy = build_anatomy(np.random.default_rng(streams[0]), cirrhotic)
    painter = PointPainter(anatomy.ops)

    def in_liver(points: np.ndarray) -> np.ndarray:
        return np.asarray(painter(points) == T.LIVER)

    vessel_rng = np.random.default_rng(streams[6])
    ivc_x, ivc_y = anatomy.ivc_xy
    z_entry = float(anatomy.body.dome_z(np.full(1, ivc_x, np.float32), np.full(1, ivc_y, np.float32))[0]) - 15.0
    vessels = portal_vein_ops(vessel_rng, anatomy.hilum_hint, in_liver)
    vessels += hepatic_vein_ops(vessel_rng, anatomy.ivc_xy, z_entry, in_liver)
    look = draw_appearance(np.random.default_rng(streams[2]), phase)
    lesions = draw_lesions(np.random.default_rng(streams[1]), look.phase, anatomy.liver.bbox, in_liver)
    if wall_lesion:
        wall_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(WALL_LESION_STREAM,)))
        extra = draw_wall_lesion(wall_rng, look.phase, anatomy.liver.bbox, in_liver, painter, lesions)
        lesions = lesions if extra is None else [*lesions, extra]
    if small_lesions:
        small_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SMALL_LESION_STREAM,)))
        lesions = [
            *lesions,
            *draw_small_lesions(small_rng, look.phase, anatomy.liver.bbox, in_liver, lesions, small_lesions),
        ]
    cysts = draw_cysts(np.random.default_rng(streams[8]), anatomy.liver.bbox, in_liver, lesions)
    return _Patient(offset, cirrhotic, anatomy, vessels, look, lesions, cysts)


def _labels_from_tissues(tissues: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for tissue_id, label in tissue_labels().items():
        lut[tissue_id] = label
    lut[LESION_TISSUE_BASE:] = LABEL_TUMOR
    return lut[tissues]


def _tlvr(labels: np.ndarray) -> float:
    tumor = int(np.count_nonzero(labels == LABEL_TUMOR))
    liver_and_tumor = tumor + int(np.count_nonzero(labels == 1))
    return tumor / liver_and_tumor if liver_and_tumor else 0.0


def _lesion_truth(
    specs: Sequence[LesionSpec], tissues: np.ndarray, geometry: Geometry, offset: np.ndarray
) -> tuple[Lesion, ...]:
    lesion_ids = tissues[tissues >= LESION_TISSUE_BASE]
    counts = np.bincount(lesion_ids, minlength=256)
    voxel_ml = geometry.voxel_volume_mm3 / 1000.0
    out = []
    for n, spec in enumerate(specs):
        center = np.asarray(spec.ellipsoid.center) + offset
        out.append(
            Lesion(
                id=n + 1,
                kind=LesionKind(spec.kind).value,
                center_lps_mm=tuple(round(float(c), 3) for c in center),  # type: ignore[arg-type]
                diameters_mm=tuple(round(float(d), 3) for d in spec.diameters_mm),  # type: ignore[arg-type]
                delta_hu=round(spec.delta_hu, 2),
                volume_ml=round(float(counts[LESION_TISSUE_BASE + n]) * voxel_ml, 4),
            )
        )
    return tuple(out)


def _info(seed: int, look: Appearance, body_half_axes_mm: tuple[float, float]) -> dict[str, Any]:
    return {
        "seed": int(seed),
        "phase": look.phase.value,
        "liver_hu": round(look.liver_hu, 1),
        "steatosis_shift_hu": round(look.steatosis_shift_hu, 1),
        "noise_sigma_hu": round(look.noise_sigma_hu, 2),
        "psf_sigma_mm": round(look.psf_sigma_mm, 3),
        "body_half_axes_mm": [round(v, 1) for v in body_half_axes_mm],
    }
