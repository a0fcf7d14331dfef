"""The global–local pipeline: liver network on the whole CT, tumor network on the liver, result on the input grid.

Every network runs on its card's canonical grid; its decision probability is interpolated (linearly) back
onto the input grid and thresholded there at 0.5, so the labelmap lies exactly on the input grid whatever
the input's orientation, spacing or obliquity.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError, ModelError
from SmoothSegNetLib.inference.lesion_classifier import LogisticModel
from SmoothSegNetLib.inference.options import SegmentationResult, SegmentOptions
from SmoothSegNetLib.inference.postprocess import (
    bounding_box,
    fill_holes,
    largest_component,
    liver_context,
)
from SmoothSegNetLib.inference.preprocess import (
    from_network_layout,
    network_grid,
    resample_ct,
    to_network_layout,
    window_hu,
)
from SmoothSegNetLib.inference.refine import refine_tumor
from SmoothSegNetLib.inference.runtime import open_runtime
from SmoothSegNetLib.inference.thresholds import (
    add_fine_pass,
    add_low_probability,
    add_scan_findings,
    on_grid,
    split_by_thresholds,
)
from SmoothSegNetLib.models import ModelCard, ModelEntry, Registry
from SmoothSegNetLib.progress import CancelCheck, ProgressCallback, check_cancel, no_progress, sub_progress
from SmoothSegNetLib.report.candidates import Candidates, LesionThresholds, ThresholdSource
from SmoothSegNetLib.resample import Interpolation, canonical_geometry, crop_geometry, resample
from SmoothSegNetLib.volume import CTVolume, Geometry

log = logging.getLogger(__name__)

#: Chan–Vese iterations used when refinement is asked for but the card sets none (the paper used 2).
DEFAULT_REFINE_ITERATIONS = 2
#: Regions of low tumor probability smaller than this are not listed as candidates (chosen on tuning phantoms).
LOW_PROBABILITY_MIN_ML = 0.05
Slices = tuple[slice, slice, slice]


def _floor(option: float | None, card_value: float | None) -> tuple[float | None, str]:
    """A lesion floor and its source: the option's value when given, else the card's (``not_applied`` when the
    card has none either)."""
    if option is not None:
        return option, ThresholdSource.CLI.value
    if card_value is None:
        return None, ThresholdSource.NOT_APPLIED.value
    return card_value, ThresholdSource.CARD.value


class Segmenter:
    """Loads the cards and verified weights once, then segments any number of CTs."""

    def __init__(self, options: SegmentOptions | None = None, registry: Registry | None = None) -> None:
        self.options = options if options is not None else SegmentOptions()
        self.registry = registry if registry is not None else Registry()
        liver_entry = self._entry(self.options.liver_model, "liver")
        tumor_entry = None if self.options.liver_only else self._entry(self.options.tumor_model, "tumor")
        entries = [e for e in (liver_entry, tumor_entry) if e is not None]
        self.runtime = open_runtime(self.options, all(e.onnx_path is not None for e in entries))
        self.device = self.runtime.device
        #: Set once a GPU ran out of memory and the networks moved to the CPU: every later case says so.
        self.cpu_fallback_note: str | None = None
        self.liver_card, self.liver_net, liver_sha = self._load(liver_entry)
        self.models: list[dict[str, Any]] = [_model_info(self.liver_card, liver_sha)]
        self.tumor_card: ModelCard | None = None
        self.tumor_net: Any = None
        if tumor_entry is not None:
            self.tumor_card, self.tumor_net, tumor_sha = self._load(tumor_entry)
            self.models.append(_model_info(self.tumor_card, tumor_sha))
        self.lesion_classifier = None if self.tumor_card is None else _lesion_classifier(self.tumor_card)
        self.thresholds = LesionThresholds() if self.tumor_card is None else self._lesion_thresholds(self.tumor_card)

    def _entry(self, name: str, task: str) -> ModelEntry:
        entry = self.registry.find(name)
        if entry.card.task != task:
            raise ModelError(f"model {entry.card.id!r} is a {entry.card.task} model but was given as the {task} model")
        return entry

    def _load(self, entry: ModelEntry) -> tuple[ModelCard, Any, str | None]:
        """The card, its network loaded by the runtime (weights or ONNX graph verified first), its sha256."""
        return entry.card, self.runtime.load(entry), entry.expected_sha256

    # -- one stage ------------------------------------------------------------------------------------
    def _predict(
        self,
        network: Any,
        image_kji: np.ndarray,
        card: ModelCard,
        progress: ProgressCallback,
        cancel: CancelCheck | None,
        stage: str,
        warnings: list[str],
        foreground: bool = False,
    ) -> np.ndarray:
        """Decision probability ``[k, j, i]`` on the image's grid (``[2, k, j, i]`` with the foreground map),
        with GPU out-of-memory fallback."""
        batch = self.options.batch_size or card.inference.batch_size
        image_ijk = to_network_layout(image_kji)
        before = str(self.runtime.device)
        q, fallbacks = self.runtime.predict(network, image_ijk, card, batch, progress, cancel, stage, foreground)
        self.device = self.runtime.device  # the torch runtime may have fallen back to the CPU
        if str(self.device) != before and str(self.device) == "cpu":
            self.cpu_fallback_note = (
                f"ran on the CPU: {before} ran out of memory in an earlier case of this run, so the "
                "networks stayed on the CPU for the rest of it (slower, same results; run this case again "
                "on its own to use the GPU)"
            )
        warnings.extend(fallbacks)
        return np.ascontiguousarray(from_network_layout(q))

    # -- the pipeline ---------------------------------------------------------------------------------
    def __call__(
        self, ct: CTVolume, progress: ProgressCallback = no_progress, cancel: CancelCheck | None = None
    ) -> SegmentationResult:
        """Segment ``ct``; see :func:`segment`."""
        _check_ct(ct)
        warnings: list[str] = [] if self.cpu_fallback_note is None else [self.cpu_fallback_note]
        timings: dict[str, float] = {}
        probability: dict[str, np.ndarray] | None = {} if self.options.probability_map else None
        t0 = time.perf_counter()
        progress("liver", 0.0, f"liver network {self.liver_card.id}: {self.runtime.describe()}")
        liver, q_liver = self._liver_stage(ct, sub_progress(progress, 0.0, 0.5), cancel, warnings)
        if probability is not None:
            probability["liver"] = q_liver.astype(np.float16)
        del q_liver
        timings["liver_s"] = time.perf_counter() - t0
        labelmap = liver.astype(np.uint8)
        lesions = np.zeros(ct.geometry.shape_kji, dtype=np.uint16)
        confidence: dict[int, float] = {}
        candidates: Candidates | None = None
        if not liver.any():
            warnings.append("no liver found in the field of view: the labelmap is empty (is this an abdominal CT?)")
        elif self.tumor_card is not None and self.tumor_net is not None:
            t1 = time.perf_counter()
            stage = self._tumor_stage(ct, liver, sub_progress(progress, 0.5, 0.98), cancel, warnings)
            box, confidence = stage.box, stage.confidence
            if stage.refined is not None:
                labelmap[box] = stage.refined.mask
                if probability is not None:
                    probability["liver"][box] = stage.refined.q.astype(np.float16)
            labelmap[box][stage.lesions > 0] = 2
            lesions[box] = stage.lesions
            candidates = on_grid(stage.candidates, box, ct.geometry.shape_kji)
            if probability is not None:
                full = np.zeros(ct.geometry.shape_kji, dtype=np.float16)
                full[box] = stage.q
                probability["tumor"] = full
            timings["tumor_s"] = time.perf_counter() - t1
            if not confidence:
                warnings.append("no tumor found in the liver (no lesion above the minimum volume)")
        check_cancel(cancel)
        timings["total_s"] = time.perf_counter() - t0
        progress("done", 1.0, f"{len(confidence)} lesion(s)")
        return SegmentationResult(
            labelmap=labelmap,
            lesions=lesions,
            confidence=confidence,
            probability=probability,
            warnings=tuple(warnings),
            models=tuple(self.models),
            timings_s=timings,
            device=str(self.device),
            thresholds=self.thresholds,
            candidates=candidates,
            runtime=self.runtime.describe(),
        )

    def _liver_stage(
        self, ct: CTVolume, progress: ProgressCallback, cancel: CancelCheck | None, warnings: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        card = self.liver_card
        box = _body_box(ct, card)
        region = crop_geometry(ct.geometry, box)
        grid = network_grid(region, card)
        image = window_hu(resample_ct(ct.array[box], region, grid), card.input.hu_window)
        check_cancel(cancel)
        q = self._predict(self.liver_net, image, card, progress, cancel, "liver", warnings)
        del image
        q_input = np.zeros(ct.geometry.shape_kji, dtype=np.float32)
        # ``box`` places the region in the input; the region itself is mapped back whole or only where q can
        # reach 0.5 (the same mask either way). Its indices are relative to the region, not to the input.
        q_input[box] = _map_back(q, grid, region, self.options.probability_map)
        liver = q_input >= 0.5
        if card.post.largest_component:
            liver = largest_component(liver)
        if card.post.fill_holes:
            liver = fill_holes(liver)
        return liver, q_input

    def _tumor_stage(
        self,
        ct: CTVolume,
        liver: np.ndarray,
        progress: ProgressCallback,
        cancel: CancelCheck | None,
        warnings: list[str],
    ) -> _TumorStage:
        """Lesions in the liver box; with ``liver_from_tumor_stage`` also the liver the tumor network sees."""
        card = self.tumor_card
        assert card is not None and self.tumor_net is not None  # guarded by the caller
        box = tumor_box(liver, ct.geometry, card)
        crop_geom = crop_geometry(ct.geometry, box)
        ct_crop = ct.array[box]
        liver_crop = liver[box]
        grid = network_grid(crop_geom, card)
        image = window_hu(resample_ct(ct_crop, crop_geom, grid), card.input.hu_window)
        dilation = card.input.liver_mask_dilation_mm
        context = liver_crop
        if card.input.mask_outside_liver or dilation > 0:
            # Grown on the network grid (coarser than the input, so fast); mapped back to confine the tumors.
            context_grid = tumor_stage_mask(liver_crop, crop_geom, grid, dilation)
            if card.input.mask_outside_liver:
                image[~context_grid] = 0.0
            if dilation > 0:
                back = resample(context_grid.astype(np.uint8), grid, crop_geom, Interpolation.NEAREST, 0)
                context = liver_crop | (back != 0)
            del context_grid
        check_cancel(cancel)
        with_liver = card.post.liver_from_tumor_stage
        fine_mm = self.thresholds.candidate_fine_spacing_mm or None
        # The second (fine) pass, when asked for, gets the last three quarters of the progress: it has about
        # (coarse / fine spacing)^3 times as many voxels.
        main_progress = sub_progress(progress, 0.0, 0.25) if fine_mm else progress
        maps = self._predict(self.tumor_net, image, card, main_progress, cancel, "tumor", warnings, with_liver)
        del image
        q = maps[0] if with_liver else maps
        low = self.thresholds.candidate_probability
        level = min(0.5, low) if low else 0.5  # faint regions are candidates: map them back too
        q_crop = _map_back(q, grid, crop_geom, self.options.probability_map, level)
        tumor = (q_crop >= 0.5) & context
        if card.post.fill_holes:
            tumor = fill_holes(tumor) & context
        iterations = self._refine_iterations(card)
        if iterations:
            check_cancel(cancel)
            refine_grid = self.options.refine_grid or card.post.chan_vese_grid
            image_crop = window_hu(ct_crop, card.input.hu_window)
            tumor = refine_tumor(image_crop, tumor, context, crop_geom, iterations, refine_grid)
        refined = None
        if with_liver:
            q_fg = _map_back(maps[1], grid, crop_geom, True) * context
            organ = largest_component((q_fg >= 0.5) | tumor)
            if organ.any():
                tumor &= organ
                refined = _RefinedLiver(organ.astype(np.uint8), q_fg)
            else:
                warnings.append(
                    "the tumor network found no liver in the liver stage's mask: the liver stage's mask is kept"
                )
        # The liver the lesion classifier measures against: the liver of the labelmap, tumor included.
        organ_crop = (refined.mask > 0 if refined is not None else liver_crop) | tumor
        lesions, confidence, candidates = split_by_thresholds(
            tumor, q_crop, crop_geom, self.thresholds, ct_crop, self.lesion_classifier, organ_crop
        )
        if low:
            candidates = add_low_probability(
                candidates,
                q_crop,
                context,
                lesions,
                low,
                crop_geom,
                LOW_PROBABILITY_MIN_ML,
                self.thresholds.candidate_limit,
            )
        if fine_mm:
            fine_progress = sub_progress(progress, 0.25, 1.0)
            fine = self.fine_pass(ct_crop, liver_crop, crop_geom, fine_mm, fine_progress, cancel, warnings)
            candidates = add_fine_pass(
                candidates,
                q_crop,
                fine,
                context,
                lesions,
                crop_geom,
                LOW_PROBABILITY_MIN_ML,
                self.thresholds.candidate_limit,
            )
        scan_limit = self.thresholds.candidate_scan or 0
        if scan_limit:
            check_cancel(cancel)
            candidates = add_scan_findings(
                candidates,
                q_crop,
                self.liver_scan(ct_crop, crop_geom, organ_crop, lesions),
                context,
                lesions,
                crop_geom,
                LOW_PROBABILITY_MIN_ML,
                scan_limit,
            )
        return _TumorStage(box, lesions, q_crop, confidence, refined, candidates)

    @staticmethod
    def liver_scan(ct_crop: np.ndarray, crop_geom: Geometry, organ_crop: np.ndarray, lesions: np.ndarray) -> np.ndarray:
        """The scores of every finding of the liver scan on the crop (0 elsewhere): lesion-like regions of the CT
        where the network found nothing (:mod:`SmoothSegNetLib.correction.scan`). The liver is the organ without
        the lesions (the floors' candidates are liver here, and the scan may find them again; they are listed
        once). Every finding, not the card's number: those on a floor's candidate are dropped first, and then the
        card's number of the best others are listed (:func:`add_scan_findings`)."""
        # Imported here: the scan uses the add-lesion search (SmoothSegNetLib.correction), which itself imports
        # the inference helpers; at module level the two packages would import each other.
        from SmoothSegNetLib.correction.scan import findings_score_map, scan_liver

        labels = np.where(lesions > 0, 2, np.where(organ_crop, 1, 0)).astype(np.uint8)
        findings = scan_liver(ct_crop, crop_geom, labels, lesions, None)
        return findings_score_map(findings, lesions.shape)

    def fine_pass(
        self,
        ct_crop: np.ndarray,
        liver_crop: np.ndarray,
        crop_geom: Geometry,
        spacing_mm: float,
        progress: ProgressCallback,
        cancel: CancelCheck | None,
        warnings: list[str],
    ) -> np.ndarray:
        """The tumor probability of a second pass of the tumor network on an isotropic grid of ``spacing_mm``
        (the card's orientation, liver context masked as in the first pass), mapped back to the crop where it
        reaches 0.5 (0 elsewhere). A small lesion spans more voxels there: the network, trained at the card's
        spacing, sees a 12 mm lesion as it sees a ``12 * card spacing / spacing_mm`` mm one."""
        card = self.tumor_card
        assert card is not None and self.tumor_net is not None  # guarded by the caller
        grid = canonical_geometry(crop_geom, (spacing_mm,) * 3, card.input.orientation)
        image = window_hu(resample_ct(ct_crop, crop_geom, grid), card.input.hu_window)
        if card.input.mask_outside_liver:
            image[~tumor_stage_mask(liver_crop, crop_geom, grid, card.input.liver_mask_dilation_mm)] = 0.0
        check_cancel(cancel)
        maps = self._predict(
            self.tumor_net,
            image,
            card,
            progress,
            cancel,
            "tumor",
            warnings,
            card.post.liver_from_tumor_stage,
        )
        del image
        q = maps[0] if card.post.liver_from_tumor_stage else maps
        return _map_back(q, grid, crop_geom, False)

    def _lesion_thresholds(self, card: ModelCard) -> LesionThresholds:
        """The floors a tumor component must reach to be a lesion: the options' values, else the card's."""
        min_ml, ml_source = _floor(self.options.min_lesion_ml, card.post.min_lesion_ml)
        min_conf, conf_source = _floor(self.options.min_lesion_confidence, card.post.min_lesion_confidence)
        min_hu, hu_source = _floor(self.options.min_lesion_hu, card.post.min_lesion_hu)
        min_score, score_source = _floor(self.options.min_lesion_score, card.post.min_lesion_score)
        if min_score and self.lesion_classifier is None:
            raise InputError(
                f"--min-lesion-score needs a tumor card with a lesion classifier; {card.id!r} has none "
                "(postprocessing.lesion_classifier)"
            )
        low, low_source = _floor(self.options.candidate_probability, card.post.candidate_probability)
        fine, fine_source = _floor(self.options.candidate_fine_spacing_mm, card.post.candidate_fine_spacing_mm)
        scan, scan_source = _floor(self.options.candidate_scan, card.post.candidate_scan)
        return LesionThresholds(
            min_lesion_ml=min_ml,
            min_lesion_ml_source=ml_source,
            min_lesion_confidence=min_conf,
            min_lesion_confidence_source=conf_source,
            min_lesion_hu=min_hu,
            min_lesion_hu_source=hu_source,
            min_lesion_score=min_score,
            min_lesion_score_source=score_source,
            candidate_probability=low,
            candidate_probability_source=low_source,
            candidate_fine_spacing_mm=fine,
            candidate_fine_spacing_mm_source=fine_source,
            candidate_limit=card.post.candidate_limit if low or fine else None,
            candidate_scan=None if scan is None else int(scan),
            candidate_scan_source=scan_source,
        )

    def _refine_iterations(self, card: ModelCard) -> int:
        if self.options.refine is None:
            return card.post.chan_vese_iterations
        if not self.options.refine:
            return 0
        return card.post.chan_vese_iterations or DEFAULT_REFINE_ITERATIONS


@dataclass(frozen=True)
class _TumorStage:
    """What the tumor stage found in its ``box`` of the input grid (arrays are crops ``[k, j, i]`` of the box)."""

    box: Slices
    lesions: np.ndarray
    q: np.ndarray
    confidence: dict[int, float]
    refined: _RefinedLiver | None
    candidates: Candidates


@dataclass(frozen=True)
class _RefinedLiver:
    """The liver in the tumor box as the tumor network sees it: the mask and its decision probability."""

    mask: np.ndarray
    q: np.ndarray


def tumor_stage_mask(liver_kji: np.ndarray, crop: Geometry, grid: Geometry, dilation_mm: float) -> np.ndarray:
    """The tumor network's view of the liver on its ``grid``: the liver of the ``crop`` (any voxel it reaches
    by linear interpolation) grown by ``dilation_mm`` (:func:`liver_context`). Training masks with the same
    function, from the reference liver."""
    liver_grid = resample(liver_kji.astype(np.uint8), crop, grid, Interpolation.LINEAR, 0) != 0
    return liver_context(liver_grid, _spacing_kji(grid), dilation_mm)


def _spacing_kji(geometry: Geometry) -> tuple[float, float, float]:
    i, j, k = geometry.spacing_mm
    return (k, j, i)


def _map_back(q: np.ndarray, grid: Geometry, target: Geometry, everywhere: bool, level: float = 0.5) -> np.ndarray:
    """``q`` (on the network ``grid``) interpolated onto ``target``; only its >= ``level`` support unless
    ``everywhere``."""
    out = np.zeros(target.shape_kji, dtype=np.float32)
    sub = _whole(out.shape) if everywhere else _support_box(q, grid, target, level)
    if sub is not None:
        out[sub] = resample(q, grid, crop_geometry(target, sub), Interpolation.LINEAR, 0.0)
    return out


def _margin_kji(geometry: Geometry, margin_mm: float) -> tuple[int, int, int]:
    sx, sy, sz = geometry.spacing_mm
    return (math.ceil(margin_mm / sz), math.ceil(margin_mm / sy), math.ceil(margin_mm / sx))


def _support_box(q: np.ndarray, grid: Geometry, target: Geometry, level: float = 0.5) -> Slices | None:
    """The part of ``target`` where ``q`` (on ``grid``) interpolates to ``level`` or more; ``None`` if nowhere.

    A linear interpolation is a weighted mean of the 8 surrounding grid values, so it reaches ``level`` only
    within one grid voxel of a grid voxel at ``level`` or more: that box (its corners mapped to ``target``
    indices, plus one voxel) is all that needs mapping back; everywhere else the value is below ``level``.
    """
    coarse = bounding_box(q >= level, (1, 1, 1))
    if coarse is None:
        return None
    lo = [s.start - 0.5 for s in coarse]
    hi = [s.stop - 0.5 for s in coarse]
    corners_kji = np.array([[k, j, i] for k in (lo[0], hi[0]) for j in (lo[1], hi[1]) for i in (lo[2], hi[2])])
    lps = grid.index_to_lps(corners_kji[:, ::-1])
    ijk = target.lps_to_index(lps)
    first = np.floor(ijk.min(axis=0)).astype(int) - 1
    last = np.ceil(ijk.max(axis=0)).astype(int) + 1
    out = []
    for axis_kji in range(3):
        n = 2 - axis_kji
        start = max(0, int(first[n]))
        stop = min(target.shape_kji[axis_kji], int(last[n]) + 1)
        if stop <= start:
            return None
        out.append(slice(start, stop))
    return (out[0], out[1], out[2])


def _whole(shape: tuple[int, ...]) -> Slices:
    return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))


def _body_box(ct: CTVolume, card: ModelCard) -> Slices:
    """The liver stage's region: the body's bounding box (+ margin) when the card asks for it, else everything."""
    threshold = card.input.crop_to_body_hu
    if threshold is None:
        return _whole(ct.array.shape)
    box = bounding_box(ct.array > threshold, _margin_kji(ct.geometry, card.input.crop_margin_mm))
    return box if box is not None else _whole(ct.array.shape)


def tumor_box(liver: np.ndarray, geometry: Geometry, card: ModelCard) -> Slices:
    if not card.input.crop_to_liver:
        return _whole(liver.shape)
    box = bounding_box(liver, _margin_kji(geometry, card.input.crop_margin_mm))
    assert box is not None  # the caller checked that the liver is not empty
    return box


def _check_ct(ct: CTVolume) -> None:
    if not isinstance(ct, CTVolume):
        raise InputError(f"segment needs a CTVolume, got {type(ct).__name__}: read it with SmoothSegNetLib.io")
    if ct.array.ndim != 3 or not np.issubdtype(ct.array.dtype, np.number) or ct.array.dtype == np.bool_:
        raise InputError(f"the CT must be a 3D numeric array in HU, got dtype {ct.array.dtype} shape {ct.array.shape}")


def _lesion_classifier(card: ModelCard) -> LogisticModel | None:
    """The card's lesion classifier, or ``None``.

    Raises:
        ModelError: the card's classifier is not a valid model.
    """
    if card.post.lesion_classifier is None:
        return None
    try:
        return LogisticModel.from_json(card.post.lesion_classifier)
    except ValueError as exc:
        raise ModelError(f"model {card.id!r}: postprocessing.lesion_classifier: {exc}") from exc


def _model_info(card: ModelCard, sha256: str | None) -> dict[str, Any]:
    return {
        "id": card.id,
        "title": card.title,
        "version": card.version,
        "task": card.task,
        "sha256": sha256,
        "weights": card.weights.file,
    }


def segment(
    ct: CTVolume,
    options: SegmentOptions | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
    *,
    registry: Registry | None = None,
) -> SegmentationResult:
    """Segment the liver and liver tumors of ``ct``.

    Args:
        ct: the CT in HU (any orientation, spacing, obliquity).
        options: models, device, lesion size, refinement (defaults: the demo cards on the best device).
        progress: ``progress(stage, fraction, message)``; stages ``liver``, ``tumor``, ``done``.
        cancel: checked between windows and stages.
        registry: where cards and weights are looked up (default: ``$SMOOTHSEGNET_HOME`` + bundled).

    Returns:
        A :class:`SegmentationResult` on exactly ``ct``'s grid. No liver, or a tumor-free liver, are normal
        outcomes reported in ``warnings``.

    Raises:
        ModelError: a card or its weights are missing or do not verify.
        Cancelled: ``cancel`` returned true.
    """
    return Segmenter(options, registry)(ct, progress, cancel)
