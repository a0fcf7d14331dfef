"""Turning a CT and its reference labels into a training case on a stage's network grid.

The input preparation is the inference pipeline's own (:mod:`SmoothSegNetLib.inference.preprocess`): the
card's canonical grid, the HU window scaled to [0, 1], network layout ``[i, j, k]``. For the tumor stage the
crop is the liver bounding box on the tumor grid plus the card's margin, and voxels outside the reference
liver are set to the window's low value (0), as the paper's local stage.

Source labels follow HCC-TACE-Seg: 0 other, 1 liver, 2 tumor, 3 portal vein, 4 aorta (LiTS: 1 liver,
2 tumor). Stage classes: liver stage 0 background, 1 liver *including* tumor; tumor stage 0 background,
1 liver, 2 tumor. The portal vein counts as liver when ``portal_vein_as_liver`` (the reference code's
choice for HCC-TACE-Seg), else as background; the aorta is background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from SmoothSegNetLib.inference.pipeline import tumor_box, tumor_stage_mask
from SmoothSegNetLib.inference.preprocess import (
    network_grid,
    resample_ct,
    resample_labels,
    to_network_layout,
    window_hu,
)
from SmoothSegNetLib.models.card import ModelCard
from SmoothSegNetLib.resample import crop_geometry
from SmoothSegNetLib.training.patches import PreparedCase
from SmoothSegNetLib.volume import CTVolume

LIVER, TUMOR, PORTAL_VEIN = 1, 2, 3


def stage_labels(labels_kji: np.ndarray, stage: str, portal_vein_as_liver: bool = True) -> np.ndarray:
    """Source labels (0..4) as the stage's classes (see the module docstring); uint8, same shape."""
    labels = np.asarray(labels_kji)
    liver = labels == LIVER
    if portal_vein_as_liver:
        liver |= labels == PORTAL_VEIN
    tumor = labels == TUMOR
    out = np.zeros(labels.shape, dtype=np.uint8)
    if stage == "liver":
        out[liver | tumor] = 1
    elif stage == "tumor":
        out[liver] = 1
        out[tumor] = 2
    else:
        raise ValueError(f"stage must be 'liver' or 'tumor', got {stage!r}")
    return out


def true_tlvr(labels_kji: np.ndarray, voxel_volume_mm3: float = 1.0) -> float:
    """Tumor volume over liver volume including tumor, from source labels (NaN without liver)."""
    tumor = float(np.count_nonzero(labels_kji == TUMOR))
    liver = float(np.count_nonzero(labels_kji == LIVER)) + tumor
    return tumor / liver if liver > 0 else math.nan


def prepare_case(
    ct: CTVolume,
    labels_kji: np.ndarray,
    card: ModelCard,
    case_id: str,
    *,
    tlvr_target: float = math.nan,
    portal_vein_as_liver: bool = True,
    mask_dilation_mm: float = 0.0,
) -> PreparedCase:
    """The training case of ``card``'s stage from a CT and its source labels (on the CT's grid).

    Tumor stage: the image is masked outside the reference liver grown by ``mask_dilation_mm`` on the network
    grid (:func:`~SmoothSegNetLib.inference.pipeline.tumor_stage_mask`, the pipeline's own mask).

    Raises:
        ValueError: labels not on the CT grid, or (tumor stage) no liver in the labels.
    """
    if labels_kji.shape != ct.array.shape:
        raise ValueError(f"case {case_id}: labels shape {labels_kji.shape} differs from the CT's {ct.array.shape}")
    classes = stage_labels(labels_kji, card.task, portal_vein_as_liver)
    tlvr = true_tlvr(labels_kji)
    if card.task == "liver":
        grid = network_grid(ct.geometry, card)
        image = window_hu(resample_ct(ct.array, ct.geometry, grid), card.input.hu_window)
        label = resample_labels(classes, ct.geometry, grid)
    else:
        # The same crop, grid and mask as the pipeline's tumor stage, from the reference liver.
        liver = classes > 0
        if not liver.any():
            raise ValueError(f"case {case_id}: the labels hold no liver, so there is no tumor-stage crop")
        box = tumor_box(liver, ct.geometry, card)
        crop = crop_geometry(ct.geometry, box)
        grid = network_grid(crop, card)
        image = window_hu(resample_ct(ct.array[box], crop, grid), card.input.hu_window)
        if card.input.mask_outside_liver:
            image[~tumor_stage_mask(liver[box], crop, grid, mask_dilation_mm)] = 0.0
        label = resample_labels(classes[box], crop, grid)
    return PreparedCase(
        case_id=case_id,
        image=np.ascontiguousarray(to_network_layout(image)),
        label=np.ascontiguousarray(to_network_layout(label)),
        tlvr_target=float(tlvr_target),
        tlvr_true=tlvr,
    )


def mask_dilation_for(key: int, bounds: Sequence[float]) -> float:
    """The tumor-stage liver-mask dilation (mm) of one case: uniform in ``bounds``, fixed by ``key``."""
    low, high = float(bounds[0]), float(bounds[1])
    if high <= low:
        return low
    return float(np.random.default_rng([int(key), 37]).uniform(low, high))
