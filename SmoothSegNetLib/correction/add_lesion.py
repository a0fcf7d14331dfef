"""Segment ONE lesion around a point and add it as the next lesion (the engine of ``add-lesion``).

The lesions worth a click are the ones the tumor network missed, so the lesion is found from the CT around the
point (:mod:`SmoothSegNetLib.correction.grow`: the radial profile of the smoothed CT in shells around the point
gives the lesion's value, the liver's, the lesion's edge and an enhancing rim's; the lesion is the ball of that
radius inside the liver), and must look like one: an edge at least ``min_radius_mm`` out and a contrast of at
least ``min_contrast_hu`` and ``min_contrast_z`` times the liver's noise. The tumor network still runs in one
window of the card's ``roi_size_ijk`` (card spacing and orientation, centred on the point, liver context masked
as the pipeline masks it: :func:`SmoothSegNetLib.inference.pipeline.tumor_stage_mask`): its probability is the
added lesion's confidence, and its thresholded component at the point is the fallback when growing finds
nothing (``network_first`` swaps the two). The lesion lies in the liver and keeps one voxel away from every
other lesion (so a connected-component relabelling keeps it separate). See
:mod:`SmoothSegNetLib.correction.search`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.correction.grow import away_from_lesions
from SmoothSegNetLib.correction.search import CLICK_NETWORK, Crop, component_near, find_lesion, network_component
from SmoothSegNetLib.correction.settings import AddLesionSettings, default_settings
from SmoothSegNetLib.errors import InputError, ModelError
from SmoothSegNetLib.inference.options import SegmentOptions
from SmoothSegNetLib.inference.pipeline import tumor_stage_mask
from SmoothSegNetLib.inference.preprocess import from_network_layout, resample_ct, to_network_layout, window_hu
from SmoothSegNetLib.inference.runtime import OnnxRuntime, open_runtime
from SmoothSegNetLib.models import ModelCard, Registry
from SmoothSegNetLib.progress import no_progress
from SmoothSegNetLib.resample import Interpolation, canonical_geometry, crop_geometry, orientation_direction, resample
from SmoothSegNetLib.volume import CTVolume, Geometry

log = logging.getLogger(__name__)

Slices = tuple[slice, slice, slice]
LIVER, TUMOR = 1, 2


@dataclass(frozen=True)
class AddedLesion:
    """One lesion found around a point.

    Attributes:
        lesion_id: the id it gets (one more than the largest existing lesion id).
        box: ``[k, j, i]`` slices of the input grid holding ``mask``.
        mask: bool ``[k, j, i]`` on ``box``: the lesion's voxels.
        method: ``network`` (at ``threshold``), ``region_growing``, ``rim_fit`` or ``click_network`` (at
            ``threshold``).
        threshold: the decision probability threshold used (``None`` for region growing).
        confidence: mean tumor decision probability of the network inside the lesion (of the fine window when it
            found the lesion; the click network's probability when it did).
        contrast_hu: mean HU of the lesion minus the mean HU of the liver around it.
        point_lps_mm: the point clicked.
        timings_s: seconds per step.
    """

    lesion_id: int
    box: Slices
    mask: np.ndarray
    method: str
    threshold: float | None
    confidence: float
    contrast_hu: float
    point_lps_mm: tuple[float, float, float]
    timings_s: dict[str, float] = field(default_factory=dict)
    #: The isotropic spacing (mm) of the fine network window when it found the lesion (else ``None``).
    fine_network_spacing_mm: float | None = None
    #: Where (LPS mm, a voxel centre) the search that found the lesion started when the click was re-centred
    #: (settings ``recentre``), else ``None``.
    searched_from_lps_mm: tuple[float, float, float] | None = None

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.mask))

    def apply(self, labelmap: np.ndarray, lesions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New copies of ``labelmap`` (the lesion set to 2) and ``lesions`` (set to :attr:`lesion_id`)."""
        labels, instances = labelmap.copy(), lesions.copy()
        labels[self.box][self.mask] = TUMOR
        instances[self.box][self.mask] = self.lesion_id
        return labels, instances


def parse_point(text: str) -> tuple[float, float, float]:
    """``"X,Y,Z"`` (LPS mm) -> three finite floats, else InputError naming ``--at``."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise InputError(f"--at must be three numbers X,Y,Z in LPS millimetres (e.g. --at 12.5,-30,104), got {text!r}")
    return (values[0], values[1], values[2])


class PointSegmenter:
    """Loads the tumor card and its verified weights once, then adds lesions at points of any case."""

    def __init__(
        self,
        tumor_model: str,
        *,
        sha256: str | None = None,
        device: str = "cpu",
        threads: int | None = None,
        runtime: str = "auto",
        settings: AddLesionSettings | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings if settings is not None else default_settings()
        entry = (registry if registry is not None else Registry()).find(tumor_model)
        if entry.card.task != "tumor":
            raise ModelError(f"model {entry.card.id!r} is a {entry.card.task} model; add-lesion needs the tumor model")
        if sha256 is not None and entry.expected_sha256 is not None and sha256 != entry.expected_sha256:
            raise ModelError(
                f"the case was segmented with {entry.card.id} weights sha256 {sha256[:12]}…, but the installed ones "
                f"are {entry.expected_sha256[:12]}…: install the weights the case used, or segment it again"
            )
        self.card: ModelCard = entry.card
        # The same runtime as segment (auto: the verified ONNX graph on the CPU, PyTorch on a GPU).
        options = SegmentOptions(device=device, threads=threads, runtime=runtime)
        self.runtime = open_runtime(options, entry.onnx_path is not None)
        self.device = self.runtime.device
        self.network = self.runtime.load(entry)
        # The click network (settings ``click_network``): verified and loaded once, on an ONNX engine unless the
        # tumor network runs in PyTorch.
        self.click_network = None
        if self.settings.click_network:
            from SmoothSegNetLib.correction.click_net import ClickNetwork

            self.click_network = ClickNetwork(
                threads=threads, engine="auto" if isinstance(self.runtime, OnnxRuntime) else "torch"
            )

    def __call__(
        self, ct: CTVolume, labelmap: np.ndarray, lesions: np.ndarray, point_lps_mm: tuple[float, float, float]
    ) -> AddedLesion:
        """Segment the lesion at ``point_lps_mm`` (see the module docstring); nothing is modified.

        Args:
            ct: the CT (HU) of the case.
            labelmap: uint8 ``[k, j, i]`` on ``ct``'s grid: 0 background, 1 liver, 2 tumor.
            lesions: uint16 ``[k, j, i]`` lesion instances 1..n on the same grid.
            point_lps_mm: the point clicked, LPS millimetres.

        Raises:
            InputError: the point is outside the image, outside the liver, on an existing lesion, or nothing
                lesion-like is found there.
        """
        t0 = time.perf_counter()
        geometry = ct.geometry
        voxel = _point_voxel(point_lps_mm, geometry)
        label = int(labelmap[voxel])
        if label == TUMOR:
            raise InputError(
                f"the point {_fmt(point_lps_mm)} is already in lesion {int(lesions[voxel])}: "
                "click inside a missed lesion"
            )
        if label != LIVER:
            raise InputError(
                f"the point {_fmt(point_lps_mm)} (voxel i,j,k {voxel[::-1]}) is outside the liver: "
                "click inside the liver, on the missed lesion"
            )
        window, box = self._window(geometry, point_lps_mm)
        crop = crop_geometry(geometry, box)
        timings = {"prepare_s": time.perf_counter() - t0}
        q = self._probability(ct.array[box], labelmap[box] > 0, crop, window)
        timings["network_s"] = time.perf_counter() - t0 - timings["prepare_s"]
        local = (voxel[0] - box[0].start, voxel[1] - box[1].start, voxel[2] - box[2].start)
        allowed = _allowed(labelmap[box], lesions[box])
        spacing_kji = np.asarray(crop.spacing_mm[::-1], dtype=float)
        click_q, click_threshold = None, 0.5
        if self.click_network is not None:
            t1 = time.perf_counter()
            click_q = self.click_network.probability(ct.array[box], labelmap[box] > 0, crop, point_lps_mm)
            click_threshold = self.click_network.threshold
            timings["click_network_s"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        found = find_lesion(
            Crop(ct.array[box], q, allowed, local, spacing_kji, click_q, click_threshold),
            self.settings,
            self.card.post.chan_vese_iterations,
            self.card.input.hu_window,
        )
        timings["search_s"] = time.perf_counter() - t1
        fine_mm = None  # the spacing of the fine window, when it ran
        if found is None and self.settings.fine_network_spacing_mm:
            fine_mm = self.settings.fine_network_spacing_mm
            t1 = time.perf_counter()
            fine_window, _ = self._window(geometry, point_lps_mm, fine_mm)
            q = self._probability(ct.array[box], labelmap[box] > 0, crop, fine_window)
            found = network_component(
                Crop(ct.array[box], q, allowed, local, spacing_kji),
                self.settings,
                self.card.post.chan_vese_iterations,
                self.card.input.hu_window,
            )
            timings["fine_network_s"] = time.perf_counter() - t1
        if found is None:
            raise InputError(
                f"nothing lesion-like was found at {_fmt(point_lps_mm)}: click inside the lesion, near its centre "
                "(or draw it in Segment Editor)"
            )
        mask = found.mask
        confidence_map = click_q if click_q is not None and found.method == CLICK_NETWORK else q
        sub = ndimage.find_objects(mask.astype(np.uint8))[0]
        out_box = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub))
        timings["total_s"] = time.perf_counter() - t0
        return AddedLesion(
            lesion_id=int(lesions.max()) + 1 if lesions.size else 1,
            box=(out_box[0], out_box[1], out_box[2]),
            mask=mask[sub],
            method=found.method,
            threshold=found.threshold,
            confidence=round(float(confidence_map[mask].mean()), 4),
            contrast_hu=round(found.contrast_hu, 1),
            point_lps_mm=point_lps_mm,
            timings_s=timings,
            fine_network_spacing_mm=fine_mm,
            searched_from_lps_mm=_lps_of(geometry, box, found.searched_from),
        )

    # -- steps ----------------------------------------------------------------------------------------
    def _window(
        self, geometry: Geometry, point: tuple[float, float, float], spacing_mm: float | None = None
    ) -> tuple[Geometry, Slices]:
        """The network window (card spacing, or ``spacing_mm`` isotropic, and orientation; ``roi`` voxels
        centred on the point) and the box of input voxels it covers."""
        card = self.card
        roi = card.inference.roi_size_ijk or (64, 64, 48)
        direction = orientation_direction(card.input.orientation)
        spacing = (
            (spacing_mm,) * 3
            if spacing_mm
            else card.input.spacing_mm or canonical_geometry(geometry, None, card.input.orientation).spacing_mm
        )
        half = (np.asarray(roi, dtype=float) - 1.0) / 2.0 * np.asarray(spacing, dtype=float)
        origin = np.asarray(point, dtype=float) - direction @ half
        window = Geometry.create((roi[2], roi[1], roi[0]), spacing, origin, direction)
        corners = np.array(
            [[a, b, c] for a in (-0.5, roi[0] - 0.5) for b in (-0.5, roi[1] - 0.5) for c in (-0.5, roi[2] - 0.5)]
        )
        ijk = geometry.lps_to_index(window.index_to_lps(corners))
        first = np.floor(ijk.min(axis=0)).astype(int) - 1
        last = np.ceil(ijk.max(axis=0)).astype(int) + 2
        size = geometry.size_ijk
        i, j, k = (slice(max(0, int(first[n])), min(size[n], int(last[n]))) for n in range(3))
        return window, (k, j, i)

    def _probability(self, ct_crop: np.ndarray, liver_crop: np.ndarray, crop: Geometry, window: Geometry) -> np.ndarray:
        """The tumor decision probability on the crop (the input grid), from one network window."""
        card = self.card
        image = window_hu(resample_ct(ct_crop, crop, window), card.input.hu_window)
        if card.input.mask_outside_liver:
            context = tumor_stage_mask(liver_crop, crop, window, card.input.liver_mask_dilation_mm)
            image[~context] = 0.0
        q, _ = self.runtime.predict(
            self.network, to_network_layout(image), card, 1, no_progress, None, "add-lesion", False
        )
        q_window = np.ascontiguousarray(from_network_layout(q))
        return resample(q_window, window, crop, Interpolation.LINEAR, 0.0)


# -- helpers ------------------------------------------------------------------------------------------
def _fmt(point: tuple[float, float, float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in point) + ") mm LPS"


def _point_voxel(point: tuple[float, float, float], geometry: Geometry) -> tuple[int, int, int]:
    """The ``[k, j, i]`` index of the voxel holding the point, else InputError (outside the image)."""
    ijk = geometry.lps_to_index(np.asarray(point, dtype=float))
    nearest = np.rint(ijk).astype(int)
    size = geometry.size_ijk
    if not all(0 <= int(nearest[n]) < size[n] for n in range(3)):
        raise InputError(
            f"the point {_fmt(point)} is outside the image (voxel i,j,k {tuple(int(v) for v in nearest)}, size "
            f"{size}): give a point inside the CT, in LPS millimetres (Slicer shows RAS: negate its first two numbers)"
        )
    return (int(nearest[2]), int(nearest[1]), int(nearest[0]))


def _lps_of(geometry: Geometry, box: Slices, voxel: tuple[int, int, int] | None) -> tuple[float, float, float] | None:
    """The LPS position (mm) of a ``[k, j, i]`` voxel of the crop ``box``, or ``None``."""
    if voxel is None:
        return None
    ijk = np.array([voxel[2] + box[2].start, voxel[1] + box[1].start, voxel[0] + box[0].start], dtype=float)
    x, y, z = (round(float(v), 3) for v in geometry.index_to_lps(ijk))
    return (x, y, z)


def _allowed(labels: np.ndarray, lesions: np.ndarray) -> np.ndarray:
    """Liver voxels that neither are nor touch (26-neighbours) an existing lesion."""
    return away_from_lesions(labels == LIVER, lesions > 0)


#: The search's component finder, under the name the tests have used.
_component_near = component_near
