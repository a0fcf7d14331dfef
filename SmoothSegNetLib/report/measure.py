"""Per-lesion and whole-liver measurements: the content of ``report.json`` (schema ``smoothsegnet.report/1``)."""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from SmoothSegNetLib import __version__
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.report.axes import max_diameter_3d_mm
from SmoothSegNetLib.report.candidates import (
    Candidates,
    LesionThresholds,
    ThresholdSource,
    measure_candidates,
    small_components,
)
from SmoothSegNetLib.report.categories import LIRADS_NOTE, milan_size_check, size_categories
from SmoothSegNetLib.report.codes import measurement_codes
from SmoothSegNetLib.report.lesions import label_lesions
from SmoothSegNetLib.report.manual_axes import apply_manual_axes
from SmoothSegNetLib.report.recist import TILT_LIMIT_DEG, RecistAxes, axial_tilt_deg, recist_axes
from SmoothSegNetLib.volume import CTVolume, Geometry

log = logging.getLogger(__name__)

SCHEMA_ID = "smoothsegnet.report/1"
LIVER_LABEL = 1
TUMOR_LABEL = 2
SYNTHETIC_NOTE = "trained on synthetic phantoms only: it says nothing about patients; not for clinical use"
_DIGITS = 4


@dataclass(frozen=True)
class ReportOptions:
    """How lesions are found when no lesion map is given.

    Attributes:
        min_volume_ml: tumor components smaller than this are not lesions (ml, >= 0).
        split_touching: separate touching lesions by a distance-transform watershed (off by default).
        split_neck_depth_mm: with ``split_touching``, how much thinner (mm of half-thickness) a neck must be
            than both parts for them to count as two lesions.
    """

    min_volume_ml: float = 0.0
    split_touching: bool = False
    split_neck_depth_mm: float = 2.0


def _r(value: float) -> float:
    return round(float(value), _DIGITS)


def check_labelmap(labelmap: np.ndarray, geometry: Geometry, name: str = "labelmap") -> np.ndarray:
    """The labelmap as an integer array on ``geometry``'s grid with values in {0, 1, 2}, else InputError."""
    array = np.asarray(labelmap)
    if array.shape != tuple(geometry.shape_kji):
        raise InputError(
            f"{name} has shape (k, j, i) {array.shape} but the CT has {geometry.shape_kji}: the labelmap must lie "
            "on the CT grid; resample it onto the CT first"
        )
    if not np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.bool_):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise InputError(f"{name} must hold whole label values 0, 1, 2; got non-integer values ({array.dtype})")
        array = array.astype(np.int64)
    # min/max first: two passes instead of np.unique's sort of the whole CT grid (the live table re-measures)
    if array.size and 0 <= array.min() and array.max() <= TUMOR_LABEL:
        return array
    values = np.unique(array)
    bad = [int(v) for v in values if v not in (0, LIVER_LABEL, TUMOR_LABEL)]
    if bad:
        raise InputError(
            f"{name} has label values {bad[:5]}: expected 0 background, 1 liver, 2 tumor; relabel it first"
        )
    return array


def _check_lesions(lesions: np.ndarray, tumor: np.ndarray, geometry: Geometry) -> np.ndarray:
    array = np.asarray(lesions)
    if array.shape != tuple(geometry.shape_kji):
        raise InputError(f"lesions has shape {array.shape} but the CT has {geometry.shape_kji}: use the CT grid")
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"lesions must be an integer instance map, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.signedinteger) and np.any(array < 0):
        raise InputError("lesions has negative values: instance ids must be 1..n")
    marked = array > 0
    outside = marked & ~tumor
    if outside.any():
        raise InputError(f"lesions marks {int(outside.sum())} voxels that are not tumor (label 2) in the labelmap")
    # Ids present, by counting (no sort of the whole grid); a map with ids beyond uint16 is refused by the gap rule.
    top = int(array.max()) if array.size else 0
    counts = np.bincount(array[marked].astype(np.int64), minlength=top + 1) if top else np.zeros(1, np.int64)
    ids = np.flatnonzero(counts[1:]) + 1
    if len(ids) and not np.array_equal(ids, np.arange(1, len(ids) + 1)):
        raise InputError(f"lesion ids must be 1..n without gaps, got {list(ids[:10])}")
    return array if array.dtype == np.uint16 else array.astype(np.uint16)


def _model_entry(model: Any) -> dict[str, Any]:
    if isinstance(model, Mapping):
        data = dict(model)
    elif dataclasses.is_dataclass(model) and not isinstance(model, type):
        data = dataclasses.asdict(model)
    else:
        data = {k: getattr(model, k) for k in ("id", "title", "version", "sha256", "task") if hasattr(model, k)}
    keep = ("id", "title", "version", "sha256", "task", "weights", "synthetic_only", "notes", "training_data")
    entry = {k: data[k] for k in keep if k in data and isinstance(data[k], str | int | float | bool | type(None))}
    entry.setdefault("id", str(data.get("id", "unknown")))
    text = " ".join(str(data.get(k, "")) for k in ("id", "title", "training_data", "notes")).lower()
    entry["synthetic_only"] = bool(data.get("synthetic_only", False)) or "synthetic" in text or "demo" in text
    return entry


def _points(points_lps: np.ndarray) -> list[list[float]]:
    return [[_r(v) for v in p] for p in points_lps]


def _fragments(axes: RecistAxes) -> list[dict[str, Any]]:
    """The pieces of a fragmented lesion on its measurement slice (RECIST 1.1: their long axes are summed)."""
    if not axes.fragmented:
        return []
    return [
        {
            "long_axis_mm": _r(p.long_axis_mm),
            "long_axis_ends_lps_mm": _points(p.long_ends_lps_mm),
            "short_axis_mm": _r(p.short_axis_mm),
            "short_axis_ends_lps_mm": _points(p.short_ends_lps_mm),
        }
        for p in axes.pieces
    ]


def _recist_notes(entries: list[dict[str, Any]], geometry: Geometry) -> list[str]:
    """Say how the RECIST axes were measured when it is not on the acquired axial slices, one piece each."""
    notes = []
    tilt = axial_tilt_deg(geometry)
    if any(e["recist_plane"] == "axial" for e in entries):
        notes.append(
            f"RECIST axes were measured on axial planes resampled from the lesions' voxels: the grid is "
            f"{tilt:.1f} degrees from axial or not square in-plane (acquired axial slices with square pixels are "
            f"used up to {TILT_LIMIT_DEG:g} degrees)"
        )
    fragmented = [str(e["id"]) for e in entries if e["fragmented"]]
    if fragmented:
        notes.append(
            f"lesion(s) {', '.join(fragmented)} are in separate pieces on their measurement slice: their long axis "
            "is the sum of the pieces' longest diameters (RECIST 1.1 fragmented lesions), listed under fragments"
        )
    return notes


def _padded_box(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    """The bounding box grown by one voxel on every side (clipped), so the face ring fits inside."""
    k, j, i = (slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, shape))
    return k, j, i


def _lesion(
    n: int,
    instances: np.ndarray,
    box: tuple[slice, ...],
    ct: CTVolume,
    liver_or_tumor: np.ndarray,
    confidence: Mapping[int, float] | None,
) -> dict[str, Any]:
    # Work on the lesion's bounding box: the same voxels, on a cropped grid whose voxel (0, 0, 0) is the box's
    # first corner, so positions map through the crop's geometry exactly as through the full one.
    crop = _padded_box(box, instances.shape)
    offset_kji = np.array([c.start for c in crop], dtype=float)
    full = ct.geometry
    geometry = Geometry.create(
        instances[crop].shape, full.spacing_mm, full.index_to_lps(offset_kji[::-1]), full.direction_array
    )
    mask = instances[crop] == n
    voxels = int(mask.sum())
    hu = ct.array[crop][mask].astype(np.float64)
    kji = np.argwhere(mask).mean(axis=0)
    centroid = geometry.index_to_lps(kji[::-1])
    axes = recist_axes(mask, geometry)
    if axes is None:  # cannot happen for a non-empty mask; keeps mypy and readers honest
        raise RuntimeError(f"lesion {n} has voxels but no contour")
    # Does the lesion touch voxels outside the liver (background)? A subcapsular or exophytic lesion does.
    # (Voxels beyond the image edge do not count: the padded box is clipped to the image.)
    ring = ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(3, 1)) & ~mask
    touches = bool(np.any(ring & ~liver_or_tumor[crop]))
    conf = None if confidence is None or n not in confidence else _r(confidence[n])
    return {
        "id": n,
        "voxel_count": voxels,
        "volume_ml": _r(voxels * geometry.voxel_volume_mm3 / 1000.0),
        "long_axis_mm": _r(axes.long_axis_mm),
        "short_axis_mm": _r(axes.short_axis_mm),
        "long_axis_slice_k": None if axes.storage_slice_k is None else axes.storage_slice_k + int(offset_kji[0]),
        "long_axis_ends_lps_mm": _points(axes.long_ends_lps_mm),
        "short_axis_ends_lps_mm": _points(axes.short_ends_lps_mm),
        "recist_plane": axes.plane,
        "fragmented": axes.fragmented,
        "fragments": _fragments(axes),
        "max_diameter_3d_mm": _r(max_diameter_3d_mm(mask, geometry)),
        "mean_hu": _r(hu.mean()),
        "std_hu": _r(hu.std()),
        "min_hu": _r(hu.min()),
        "max_hu": _r(hu.max()),
        "centroid_lps_mm": [_r(v) for v in centroid],
        "touches_outside_liver": touches,
        "confidence": conf,
        "categories": size_categories(axes.long_axis_mm),
    }


def measure(
    ct: CTVolume,
    labelmap: np.ndarray,
    lesions: np.ndarray | None = None,
    *,
    confidence: Mapping[int, float] | None = None,
    models: Iterable[Any] = (),
    warnings: Iterable[str] = (),
    options: ReportOptions | None = None,
    edited: Iterable[int] = (),
    thresholds: LesionThresholds | None = None,
    candidates: Candidates | None = None,
    manual_axes: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Measure liver and lesions; the content of ``report.json``.

    Args:
        ct: the CT (HU) whose grid the labelmap lies on.
        labelmap: uint8 [k, j, i] on ``ct``'s grid: 0 background, 1 liver, 2 tumor.
        lesions: optional instance map [k, j, i] (lesion n = value n, 1..n, only on tumor voxels); computed
            with :func:`label_lesions` (26-connected, by decreasing volume) when ``None``.
        confidence: optional per-lesion confidence in [0, 1], keyed by lesion id.
        models: model card entries (mappings or dataclasses with id, title, version, sha256, ...).
        warnings: notes to carry into the report (e.g. from reading or inference).
        options: lesion finding options when ``lesions`` is ``None``.
        edited: ids of lesions changed by hand after the network result (``edited`` in their entries, a
            warning, SEMIAUTOMATIC segments in DICOM-SEG).
        thresholds: the lesion floors used, stated in the report (default: ``options.min_volume_ml`` when
            lesions are found here, else none applied).
        candidates: tumor components the floors dropped, listed as ``candidates[]`` (not in the burden);
            default: with ``lesions`` ``None``, the components under ``options.min_volume_ml``.
        manual_axes: RECIST lines drawn by hand, ``{lesion id: {"long"/"short": (2, 3) LPS end points}}``
            (:mod:`SmoothSegNetLib.report.manual_axes`): their lengths replace the measured axes of lesions they
            lie on (``*_axis_source: manual``); lines not on their lesion are dropped with a warning.

    Returns:
        A JSON-ready dict following ``SmoothSegNetLib/schemas/report.schema.json``.

    Raises:
        InputError: the labelmap or lesion map is not on the CT grid or holds unexpected values.
    """
    options = options or ReportOptions()
    geometry = ct.geometry
    labels = check_labelmap(labelmap, geometry)
    tumor = labels == TUMOR_LABEL
    liver_or_tumor = tumor | (labels == LIVER_LABEL)
    if lesions is None:
        instances = label_lesions(
            tumor,
            geometry,
            options.min_volume_ml,
            split=options.split_touching,
            split_neck_depth_mm=options.split_neck_depth_mm,
        )
        if candidates is None and options.min_volume_ml > 0:
            candidates = small_components(tumor, instances)
    else:
        instances = _check_lesions(lesions, tumor, geometry)
    if thresholds is None:
        found_here = lesions is None
        thresholds = LesionThresholds(
            min_lesion_ml=options.min_volume_ml if found_here else None,
            min_lesion_ml_source=(ThresholdSource.DEFAULT if found_here else ThresholdSource.NOT_APPLIED).value,
        )
    count = int(instances.max()) if instances.size else 0
    objects = ndimage.find_objects(instances, max_label=count)  # uint16 as it is: no full-grid int32 copy
    entries = []
    for n in range(1, count + 1):
        box = objects[n - 1]
        if box is None:
            continue
        entries.append(_lesion(n, instances, box, ct, liver_or_tumor, confidence))
    manual_warnings = apply_manual_axes(entries, instances, geometry, manual_axes or {})
    edited_ids = sorted({int(n) for n in edited} & {e["id"] for e in entries})
    for entry in entries:
        entry["edited"] = entry["id"] in edited_ids
    voxel_ml = geometry.voxel_volume_mm3 / 1000.0
    liver_ml = float(liver_or_tumor.sum()) * voxel_ml
    parenchyma_ml = float(np.count_nonzero(labels == LIVER_LABEL)) * voxel_ml
    tumor_ml = float(np.count_nonzero(instances)) * voxel_ml
    model_entries = [_model_entry(m) for m in models]
    notes = [f"LI-RADS size bands are {LIRADS_NOTE}", *_recist_notes(entries, geometry)]
    all_warnings = [*ct.warnings, *warnings]
    for m in model_entries:
        if m["synthetic_only"]:
            all_warnings.append(f"model {m['id']} was {SYNTHETIC_NOTE}")
    if edited_ids:
        all_warnings.append(f"lesion(s) {', '.join(map(str, edited_ids))} were edited by hand after the network result")
    all_warnings.extend(manual_warnings)
    if options.split_touching:
        notes.append("touching lesions were split by a distance-transform watershed (split_touching)")
    if lesions is None and options.min_volume_ml > 0:
        notes.append(f"tumor components under {options.min_volume_ml:g} ml were not counted as lesions")
    candidate_entries: list[dict[str, Any]] = []
    if candidates is not None and candidates.count:

        def measure_one(n: int, instances: np.ndarray, box: tuple[slice, ...]) -> dict[str, Any]:
            return _lesion(n, instances, box, ct, liver_or_tumor, None)

        candidate_entries, left_out = measure_candidates(candidates, measure_one)
        notes.append(
            f"{candidates.count} tumor candidate(s) under the lesion thresholds are listed under candidates "
            "and not counted in the tumor burden" + (f" ({left_out} smallest not listed)" if left_out else "")
        )
    return {
        "schema": SCHEMA_ID,
        "software": {"name": "SmoothSegNet", "version": __version__},
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "input": _input_entry(ct),
        # Two named quantities: the whole liver (labels 1 + 2, the TLVR denominator) and its parenchyma (label 1).
        "liver": {"volume_ml": _r(liver_ml), "parenchyma_volume_ml": _r(parenchyma_ml)},
        "tumor_burden": {
            "count": len(entries),
            "total_volume_ml": _r(tumor_ml),
            "tlvr": _r(tumor_ml / liver_ml) if liver_ml > 0 else None,
            "largest_long_axis_mm": max((e["long_axis_mm"] for e in entries), default=None),
        },
        "milan_size_check": milan_size_check([e["long_axis_mm"] for e in entries]),
        "lesions": entries,
        "thresholds": thresholds.as_report(),
        "candidates": candidate_entries,
        "models": model_entries,
        "measurement_codes": measurement_codes(),
        "warnings": list(dict.fromkeys(all_warnings)),
        "notes": notes,
    }


def _input_entry(ct: CTVolume) -> dict[str, Any]:
    g = ct.geometry
    entry: dict[str, Any] = {
        "source": str(ct.source),
        # The CT's absolute path (follow-up finds each visit's CT through it); None if not read from a file.
        "path": str(Path(ct.source).resolve()) if ct.source and Path(ct.source).exists() else None,
        "size_ijk": list(g.size_ijk),
        "spacing_mm": [_r(s) for s in g.spacing_mm],
        "origin_lps_mm": [_r(o) for o in g.origin_lps_mm],
        "direction": [[_r(v) for v in row] for row in g.direction],
        "dicom": None,
    }
    if ct.dicom is not None:
        entry["dicom"] = {
            "study_instance_uid": ct.dicom.study_instance_uid,
            "series_instance_uid": ct.dicom.series_instance_uid,
            "frame_of_reference_uid": ct.dicom.frame_of_reference_uid,
            "patient_id": ct.dicom.attributes.get("PatientID"),
            "study_date": ct.dicom.attributes.get("StudyDate"),
        }
    return entry
