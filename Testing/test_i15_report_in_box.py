"""The live table's measure on the labels' bounding box gives exactly the full-grid report (issue 15 speed)."""

from __future__ import annotations

import numpy as np
import pytest
from _mrml_helpers import GEOMETRIES, synthetic_arrays

from SmoothSegNetLib.slicer_support.session import EditedResult, recompute_report, recompute_report_in_box
from SmoothSegNetLib.volume import CTVolume


def _without_time(report: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in report.items() if k != "created_utc"}


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("case", ["inside", "at_edge", "protruding"])
def test_report_in_box_equals_the_full_grid_report(name: str, case: str) -> None:
    ct_kji, labelmap, lesions = synthetic_arrays()
    if case == "at_edge":  # a third lesion on the image's last slice and first row: the box meets the image border
        labelmap[9, 0:2, 5:8], lesions[9, 0:2, 5:8] = 2, 3
    if case == "protruding":  # on the box's first slice, liver around it in-plane: only its k-1 face is outside
        labelmap[1, 4:8, 4:8] = 1
        labelmap[1, 5:7, 5:7], lesions[1, 5:7, 5:7] = 2, 3
    ct = CTVolume(ct_kji, GEOMETRIES[name])
    ids = {n: f"lesion_{n}" for n in range(1, int(lesions.max()) + 1)}
    result = EditedResult(labelmap, lesions, ids, (2,))
    previous = {"lesions": [{"id": 1, "confidence": 0.75}]}
    full, boxed = recompute_report(ct, result, previous), recompute_report_in_box(ct, result, previous)
    assert boxed["lesions"][0]["confidence"] == 0.75
    assert _without_time(boxed) == _without_time(full)


def test_report_in_box_of_an_empty_labelmap() -> None:
    ct_kji, labelmap, lesions = synthetic_arrays()
    ct = CTVolume(ct_kji, GEOMETRIES["oblique"])
    empty = EditedResult(np.zeros_like(labelmap), np.zeros_like(lesions), {}, ())
    assert _without_time(recompute_report_in_box(ct, empty, None)) == _without_time(recompute_report(ct, empty, None))
