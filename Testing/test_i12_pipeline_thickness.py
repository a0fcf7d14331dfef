"""Issue 12 item 2, invariance: the same anatomy reconstructed at 1, 2.5 and 5 mm slices measures the same.

The bundled sample's patient (phantom seed 20260003, portal-venous; 2 x 2 mm in-plane, the same 224 mm of
slices) is rasterised at three slice thicknesses by the phantom generator (anatomy drawn in millimetres from
the seed, so the same patient on each grid) and segmented by the real pipeline with the bundled demo models.
Targets (issue 12): liver volume within 3 %, total tumor volume within 5 %, long axis of each lesion >= 20 mm
within 2 mm.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.report import measure

SEED = 20260003  # the bundled sample's patient (reserved for checks, never trained on)
SLICES_MM = (1.0, 2.5, 5.0)
FOV_Z_MM = 224.0


@pytest.fixture(scope="module")
def reports() -> dict[float, dict[str, Any]]:
    segmenter = Segmenter(SegmentOptions(device="cpu"))
    out = {}
    for slice_mm in SLICES_MM:
        size_ijk = (192, 192, round(FOV_Z_MM / slice_mm))
        phantom = make_phantom(SEED, size_ijk, (2.0, 2.0, slice_mm), phase="portal_venous")
        result = segmenter(phantom.ct)
        out[slice_mm] = measure(phantom.ct, result.labelmap, result.lesions, confidence=result.confidence)
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
@pytest.mark.xfail(
    strict=True,
    reason="issue 12 target not met by the demo weights: lesion 1's predicted long axis is 80.6 / 81.1 / 74.4 mm "
    "at 1 / 2.5 / 5 mm slices (truth 72.1 mm; 83.3 / 79.9 / 73.8 mm with the tumor weights before issue 16). "
    "Both networks take in a slip of muscle (50-85 HU, as dark as the "
    "lesion) indenting the liver at the lesion's posterior edge (z -428..-412 mm): the liver mask holds it and "
    "the tumor network calls it tumor (probability up to 0.98), so the long axis runs into it on the slices that "
    "sample it (0.95 / 0.70 / 0.20 ml of muscle). Not post-processing (no refinement: 80.6 / 78.9 / 71.7 mm); "
    "docs/trustworthy-numbers-pipeline.md. Lesion 2 (40 mm) stays within 1.6 mm",
)
def test_long_axes_of_lesions_of_20_mm_or_more_do_not_depend_on_the_slice_thickness(
    reports: dict[float, Any],
) -> None:
    rows = _matched_long_axes(reports)
    assert len(rows) == 2  # the sample's 68 mm and 41 mm lesions
    for row in rows:
        assert max(row) - min(row) <= 2.0, row
