"""The small-lesion analysis (issue 16): which stage loses each lesion, and the floors tried afterwards."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from SmoothSegNetLib.evaluation.small_lesions import (
    analyse_case,
    candidate_catch,
    lesion_stage,
    stage_table,
    sweep_floors,
)
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE, T
from SmoothSegNetLib.volume import CTVolume, Geometry

NO_FLOOR = (0.0, None)


@pytest.mark.parametrize(
    ("in_liver", "max_p", "found", "floors", "stage"),
    [
        (0.4, 0.9, [], NO_FLOOR, "outside liver"),
        (1.0, 0.49, [], NO_FLOOR, "low probability"),
        (1.0, 0.9, [], NO_FLOOR, "refinement"),
        (1.0, 0.9, [{"volume_ml": 0.3, "confidence": 0.9}], (0.5, None), "volume floor"),
        (1.0, 0.9, [{"volume_ml": 0.8, "confidence": 0.6}], (0.5, 0.7), "confidence floor"),
        (
            1.0,
            0.9,
            [{"volume_ml": 0.3, "confidence": 0.9}, {"volume_ml": 0.8, "confidence": 0.8}],
            (0.5, 0.7),
            "detected",
        ),
        # A component that passes both floors counts even when the lesion is mostly outside the liver mask.
        (0.2, 0.9, [{"volume_ml": 0.8, "confidence": 0.8}], (0.5, 0.7), "detected"),
    ],
)
def test_stage_is_the_first_that_loses_the_lesion(
    in_liver: float, max_p: float, found: list[dict[str, float]], floors: tuple[float, float | None], stage: str
) -> None:
    assert lesion_stage(in_liver, max_p, found, floors) == stage


def _case() -> tuple[SimpleNamespace, SimpleNamespace]:
    """A 2 x 2 x 3 mm grid: lesion 1 (4 voxels, found as 2 of them), lesion 2 (1 voxel, probability 0.3),
    and a false component of 3 voxels."""
    geometry = Geometry.create((4, 10, 10), spacing_mm=(2.0, 2.0, 3.0))
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[:, 1:9, 1:9] = 1
    tissues = np.zeros_like(labels)
    tissues[1, 2, 2:4] = LESION_TISSUE_BASE
    tissues[2, 2, 2:4] = LESION_TISSUE_BASE
    tissues[1, 6, 6] = LESION_TISSUE_BASE + 1
    labels[tissues > 0] = 2
    tissues[labels == 1] = T.LIVER
    hu = np.where(labels == 1, 100, 0).astype(np.int16)
    hu[tissues == LESION_TISSUE_BASE] = 60
    hu[tissues == LESION_TISSUE_BASE + 1] = 130
    lesions = [
        SimpleNamespace(id=1, kind="hypodense", delta_hu=-40.0),
        SimpleNamespace(id=2, kind="hyperdense", delta_hu=30.0),
    ]
    phantom = SimpleNamespace(ct=CTVolume(hu, geometry), labels=labels, tissues=tissues, lesions=lesions)
    predicted = np.zeros(geometry.shape_kji, dtype=np.uint16)
    predicted[1, 2, 2:4] = 1
    predicted[3, 7, 2:5] = 2
    q = np.zeros(geometry.shape_kji, dtype=np.float16)
    q[predicted > 0] = 0.9
    q[1, 6, 6] = 0.3
    result = SimpleNamespace(
        labelmap=np.where(predicted > 0, 2, labels > 0).astype(np.uint8),
        probability={"tumor": q},
        lesions=predicted,
        confidence={1: 0.9, 2: 0.75},
    )
    return phantom, result


def test_analyse_case_records_each_lesion_and_component() -> None:
    phantom, result = _case()
    data = analyse_case(phantom, result)
    first, second = data["lesions"]
    voxel_ml = 12.0 / 1000
    assert first["volume_ml"] == pytest.approx(4 * voxel_ml) and first["long_axis_mm"] == pytest.approx(
        4.0
    )  # two 2 mm voxels, edge to edge
    assert first["found"] == [{"volume_ml": pytest.approx(2 * voxel_ml), "confidence": 0.9}]
    assert first["contrast_hu"] == -40.0 and first["max_probability"] == pytest.approx(0.9, abs=1e-3)
    assert second["found"] == [] and second["max_probability"] == pytest.approx(0.3, abs=1e-3)
    assert second["contrast_hu"] == 30.0
    assert data["components"] == [
        {"volume_ml": pytest.approx(2 * voxel_ml), "confidence": 0.9, "true": True, "median_hu": 60, "on": "lesion"},
        {"volume_ml": pytest.approx(3 * voxel_ml), "confidence": 0.75, "true": False, "median_hu": 100, "on": "liver"},
    ]


def test_floors_applied_afterwards_move_recall_and_precision_as_counted_by_hand() -> None:
    phantom, result = _case()
    cases = [analyse_case(phantom, result)]
    rows = {(r["min_lesion_ml"], r["min_lesion_confidence"]): r for r in sweep_floors(cases, [0.0, 0.03], [None, 0.8])}
    # Both lesions are under 10 mm; lesion 1 is found by a 0.024 ml component of confidence 0.9, lesion 2 never.
    assert rows[(0.0, None)]["<10 mm"] == (1, 2) and rows[(0.0, None)]["precision"] == 0.5
    assert rows[(0.0, 0.8)]["<10 mm"] == (1, 2) and rows[(0.0, 0.8)]["precision"] == 1.0
    assert rows[(0.03, None)]["<10 mm"] == (0, 2) and rows[(0.03, None)]["predicted"] == 1
    table = stage_table(cases, (0.03, None))
    assert "| <10 mm | 2 | 0 | 1 | 0 | 1 | 0 | 0 |" in table
    # With the 0.03 ml floor both lesions are missed; lesion 1 is still touched by a (dropped) candidate.
    assert candidate_catch(cases, (0.03, None)) == (1, 2) and candidate_catch(cases, NO_FLOOR) == (0, 1)


def test_floors_off_switches_off_every_lesion_floor_the_pipeline_has() -> None:
    """The analyses segment with every floor off: a floor added to the pipeline later must be added here too."""
    import dataclasses

    from SmoothSegNetLib.evaluation.small_lesions import FLOORS_OFF
    from SmoothSegNetLib.inference import SegmentOptions

    floors = {f.name for f in dataclasses.fields(SegmentOptions) if f.name.startswith("min_lesion")}
    assert set(FLOORS_OFF) == floors
    off = SegmentOptions(**FLOORS_OFF)
    assert (off.min_lesion_ml, off.min_lesion_confidence, off.min_lesion_score) == (0.0, 0.0, 0.0)
    assert off.min_lesion_hu == -1024.0
