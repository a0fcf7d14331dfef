"""``make_followup_phantom``: a later visit of a phantom patient, moved, breathing differently, after TACE.

The patient (anatomy, vessels, look) is the baseline seed's; the follow-up's own seed draws the motion
(:class:`~SmoothSegNetLib.phantom.motion.VisitTransform`), what happens to each lesion
(:mod:`~SmoothSegNetLib.phantom.treatment`) and the noise. The clinical record's ``ground_truth.followup``
block holds the transform, the true lesion correspondences and the true response per method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.phantom.appearance import blur_and_noise, render_hu
from SmoothSegNetLib.phantom.clinical import make_clinical_record
from SmoothSegNetLib.phantom.generator import (
    DEFAULT_SIZE_IJK,
    DEFAULT_SPACING_MM,
    Phantom,
    _draw_patient,
    _info,
    _labels_from_tissues,
    _lesion_truth,
    _tlvr,
    phantom_geometry,
)
from SmoothSegNetLib.phantom.lesions import cyst_ops, lesion_ops
from SmoothSegNetLib.phantom.motion import VisitTransform, WarpedCoords
from SmoothSegNetLib.phantom.raster import GridCoords, PointPainter, paint_grid
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE, Phase, T
from SmoothSegNetLib.phantom.treatment import draw_followup_lesions, true_response
from SmoothSegNetLib.volume import CTVolume

FOLLOWUP_SCHEMA = "smoothsegnet.phantom-followup/1"


def _liver_center(patient: Any) -> np.ndarray:
    lo, hi = (np.asarray(b, dtype=float) for b in patient.anatomy.liver.bbox)
    return np.asarray((lo + hi) / 2.0 + patient.offset)


def make_followup_phantom(
    baseline_seed: int,
    followup_seed: int = 1,
    size_ijk: Sequence[int] = DEFAULT_SIZE_IJK,
    spacing_mm: Sequence[float] = DEFAULT_SPACING_MM,
    *,
    phase: Phase | str | None = None,
) -> Phantom:
    """A follow-up visit of ``make_phantom(baseline_seed, size_ijk, spacing_mm, phase=phase)``.

    Args:
        baseline_seed: the baseline phantom's seed (same patient).
        followup_seed: draws the motion, the lesion changes and the noise (>= 0).
        size_ijk, spacing_mm, phase: as given for the baseline (the grid is placed the same way in the scanner).

    Returns:
        The follow-up phantom; ``clinical["ground_truth"]["followup"]`` holds the truth (see module docstring).
    """
    if isinstance(followup_seed, bool) or not isinstance(followup_seed, (int, np.integer)) or followup_seed < 0:
        raise InputError(f"the follow-up seed must be an integer >= 0, got {followup_seed!r}: e.g. --seed 1")
    geometry = phantom_geometry(baseline_seed, size_ijk, spacing_mm)
    try:
        forced = None if phase is None else Phase(phase)
    except ValueError as exc:
        raise InputError(f"phase must be one of {[p.value for p in Phase]}, got {phase!r}") from exc
    patient = _draw_patient(int(baseline_seed), forced)
    streams = np.random.SeedSequence([int(baseline_seed), int(followup_seed), 7001]).spawn(3)
    motion = VisitTransform.draw(np.random.default_rng(streams[0]), _liver_center(patient))
    painter = PointPainter(patient.anatomy.ops)

    def in_liver(points: np.ndarray) -> np.ndarray:
        return np.asarray(painter(points) == T.LIVER)

    scenario, lesions, fates = draw_followup_lesions(
        np.random.default_rng(streams[1]), patient.lesions, patient.anatomy.liver.bbox, in_liver, patient.look.liver_hu
    )
    base_ops = [*patient.anatomy.ops, *patient.vessels, *cyst_ops(patient.cysts)]
    baseline_tissues = paint_grid([*base_ops, *lesion_ops(patient.lesions)], GridCoords(geometry, patient.offset))
    base_counts = np.bincount(baseline_tissues.ravel(), minlength=256)
    visible = [
        spec.diameters_mm[0] if base_counts[LESION_TISSUE_BASE + n] > 0 else 0.0
        for n, spec in enumerate(patient.lesions)
    ]
    coords = WarpedCoords(geometry, patient.offset, motion)
    tissues = paint_grid([*base_ops, *lesion_ops(lesions)], coords)
    labels = _labels_from_tissues(tissues)
    hu = render_hu(tissues, coords, patient.look, lesions)
    ct = CTVolume(
        blur_and_noise(hu, geometry.spacing_mm, patient.look, np.random.default_rng(streams[2])),
        geometry,
        source=f"phantom seed {baseline_seed} follow-up {followup_seed}",
    )
    truth = _lesion_truth(lesions, tissues, geometry, patient.offset)
    counts = np.bincount(tissues.ravel(), minlength=256)
    shown = {n: bool(counts[LESION_TISSUE_BASE + n] > 0) for n in range(len(lesions))}
    clinical = make_clinical_record(
        np.random.default_rng(np.random.SeedSequence(int(baseline_seed)).spawn(9)[4]),
        int(baseline_seed),
        _tlvr(labels),
        truth,
        patient.cirrhotic,
    )
    info = _info(int(baseline_seed), patient.look, patient.anatomy.body.half_axes_mm)
    info["followup_seed"] = int(followup_seed)
    clinical["ground_truth"]["lesions"] = [lesion.as_dict() for lesion in truth]
    clinical["ground_truth"]["phantom"] = info
    clinical["ground_truth"]["followup"] = {
        "schema": FOLLOWUP_SCHEMA,
        "baseline_seed": int(baseline_seed),
        "followup_seed": int(followup_seed),
        "scenario": scenario,
        "transform": motion.as_dict(),
        "lesions": [
            {
                "baseline_lesion": None if f.baseline_index is None else f.baseline_index + 1,
                "followup_lesion": None
                if f.followup_index is None or not shown[f.followup_index]
                else f.followup_index + 1,
                "change": f.change,
                "scale": f.scale,
                "state": f.state,
                "baseline_visible": None if f.baseline_index is None else visible[f.baseline_index] > 0,
            }
            for f in fates
        ],
        "response": true_response(patient.lesions, visible, fates, patient.look.phase, shown),
        "note": "lesion numbers are the phantoms' (tissue 100 + n - 1), not a report's ids",
    }
    return Phantom(ct, labels, clinical, truth, tissues, info)
