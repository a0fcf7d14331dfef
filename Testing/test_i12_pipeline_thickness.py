"""Issue 12 item 2, invariance: the same anatomy reconstructed at 1, 2.5 and 5 mm slices measures the same.

The bundled sample's patient (phantom seed 20260003, portal-venous; 2 x 2 mm in-plane, the same 224 mm of
slices) is rasterised at three slice thicknesses by the phantom generator (anatomy drawn in millimetres from
the seed, so the same patient on each grid) and segmented by the real pipeline with the bundled demo models.
Targets (issue 12): liver volume within 3 %, total tumor volume within 5 %, long axis of each lesion >= 20 mm
within 2 mm. The long axes are also held against the truth: RECIST on the phantom's own lesion masks, on the same
grids.

History: until the tumor weights of card 0.3.0 the long-axis test was a strict expected failure (lesion 1: 80.6 /
81.1 / 74.4 mm, truth 72.1): both networks took in a slip of muscle beside the lesion, which each slice thickness
samples differently (docs/trustworthy-numbers-pipeline.md). With 0.3.0 (tumor network fine-tuned on grown liver
masks and lesions against muscle): 71.0 / 72.1 / 70.7 mm.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.report.recist import recist_axes

SEED = 20260003  # the bundled sample's patient (reserved for checks, never trained on)
SLICES_MM = (1.0, 2.5, 5.0)
FOV_Z_MM = 224.0


@pytest.fixture(scope="module")
def reports() -> dict[float, dict[str, Any]]:
    """Per slice thickness: the pipeline's report, and under ``"truth"`` the true lesions' RECIST long axes and
    centroids (the phantom's lesion tissues measured on the same grid)."""
    segmenter = Segmenter(SegmentOptions(device="cpu"))
    out = {}
    for slice_mm in SLICES_MM:
        size_ijk = (192, 192, round(FOV_Z_MM / slice_mm))
        phantom = make_phantom(SEED, size_ijk, (2.0, 2.0, slice_mm), phase="portal_venous")
        result = segmenter(phantom.ct)
        out[slice_mm] = measure(phantom.ct, result.labelmap, result.lesions, confidence=result.confidence)
        truth = []
        for n in range(len(phantom.lesions)):
            mask = phantom.tissues == LESION_TISSUE_BASE + n
            axes = recist_axes(mask, phantom.ct.geometry)
            if axes is not None:
                k, j, i = np.nonzero(mask)
                centroid = phantom.ct.geometry.index_to_lps(np.stack([i, j, k], axis=1)).mean(axis=0)
                truth.append({"long_axis_mm": float(axes.long_axis_mm), "centroid_lps_mm": centroid.tolist()})
        out[slice_mm]["truth"] = truth
    return out


def _spread(values: list[float]) -> float:
    return max(values) / min(values) - 1.0


@pytest.mark.slow
def test_liver_and_total_tumor_volume_do_not_depend_on_the_slice_thickness(reports: dict[float, Any]) -> None:
    liver = [reports[s]["liver"]["volume_ml"] for s in SLICES_MM]
    tumor = [reports[s]["tumor_burden"]["total_volume_ml"] for s in SLICES_MM]
    assert _spread(liver) <= 0.03, liver
    assert _spread(tumor) <= 0.05, tumor


def _matched_long_axes(reports: dict[float, Any]) -> list[list[float]]:
    """Long axes of each lesion >= 20 mm of the thinnest reconstruction, matched by centroid (within 10 mm)."""
    rows = []
    for lesion in reports[SLICES_MM[0]]["lesions"]:
        if lesion["long_axis_mm"] < 20:
            continue
        row = []
        for s in SLICES_MM:
            near = [
                other
                for other in reports[s]["lesions"]
                if np.linalg.norm(np.subtract(other["centroid_lps_mm"], lesion["centroid_lps_mm"])) < 10
            ]
            assert len(near) == 1, (s, lesion["centroid_lps_mm"])
            row.append(near[0]["long_axis_mm"])
        rows.append(row)
    return rows


@pytest.mark.slow
def test_long_axes_of_lesions_of_20_mm_or_more_do_not_depend_on_the_slice_thickness(
    reports: dict[float, Any],
) -> None:
    rows = _matched_long_axes(reports)
    assert len(rows) == 2  # the sample's 68 mm and 41 mm lesions
    for row in rows:
        assert max(row) - min(row) <= 2.0, row


@pytest.mark.slow
def test_long_axes_of_lesions_of_20_mm_or_more_match_the_true_lesions(reports: dict[float, Any]) -> None:
    """Each predicted lesion >= 20 mm is within 3 mm of the RECIST long axis of the true lesion under it (the
    phantom's lesion mask on the same grid; the demo weights draw the edge within about a voxel)."""
    checked = 0
    for slice_mm in SLICES_MM:
        for lesion in reports[slice_mm]["lesions"]:
            if lesion["long_axis_mm"] < 20:
                continue
            near = [
                t
                for t in reports[slice_mm]["truth"]
                if np.linalg.norm(np.subtract(t["centroid_lps_mm"], lesion["centroid_lps_mm"])) < 10
            ]
            assert len(near) == 1, (slice_mm, lesion["centroid_lps_mm"])
            assert abs(lesion["long_axis_mm"] - near[0]["long_axis_mm"]) <= 3.0, (slice_mm, lesion, near[0])
            checked += 1
    assert checked == 2 * len(SLICES_MM)
