"""Lesion matching (global, one-to-one, merge/split) and RECIST 1.1 / mRECIST rules on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from SmoothSegNetLib.followup.matching import Match, match_lesions
from SmoothSegNetLib.followup.response import VisitSizes, assess, classify, followup_sizes, select_targets


def _boxes(shape: tuple[int, int, int], boxes: dict[int, tuple[slice, slice, slice]]) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint16)
    for lesion, box in boxes.items():
        out[box] = lesion
    return out


def _centroids(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Centroids in mm on a 1 mm grid at the origin (i, j, k order)."""
    return {int(v): np.argwhere(labels == v).mean(axis=0)[::-1] for v in np.unique(labels) if v}


def test_global_assignment_beats_greedy() -> None:
    # No overlaps; centroids on a line (mm): A 10, B 20 at baseline; X 13, Y 4 at follow-up.
    # Greedy (closest first) takes A->X (3 mm), then B->Y is 16 mm (> 15): B lost, Y "new".
    # The optimum pairs A->Y (6 mm) and B->X (7 mm): both lesions tracked.
    empty = np.zeros((4, 4, 4), dtype=np.uint16)
    base = {1: np.array([10.0, 0, 0]), 2: np.array([20.0, 0, 0])}
    fu = {1: np.array([13.0, 0, 0]), 2: np.array([4.0, 0, 0])}
    assert match_lesions(empty, empty, base, fu) == [Match("matched", 1, 2), Match("matched", 2, 1)]


def test_new_disappeared_and_far_lesions() -> None:
    base = _boxes(
        (10, 60, 60), {1: (slice(2, 6), slice(2, 8), slice(2, 8)), 2: (slice(2, 6), slice(40, 46), slice(40, 46))}
    )
    # Follow-up 1: shifted 3 voxels (no overlap with baseline 1? it still overlaps), 2: far from anything.
    fu = _boxes(
        (10, 60, 60), {1: (slice(2, 6), slice(5, 11), slice(2, 8)), 2: (slice(2, 6), slice(20, 26), slice(50, 56))}
    )
    rows = match_lesions(base, fu, _centroids(base), _centroids(fu))
    assert rows == [Match("matched", 1, 1), Match("disappeared", 2, None), Match("new", None, 2)]


def test_close_lesions_match_on_distance_without_overlap() -> None:
    base = _boxes((10, 30, 30), {1: (slice(2, 5), slice(2, 5), slice(2, 5))})
    fu = _boxes((10, 30, 30), {1: (slice(2, 5), slice(2, 5), slice(8, 11))})  # 6 mm apart, no overlap
    assert match_lesions(base, fu, _centroids(base), _centroids(fu)) == [Match("matched", 1, 1)]
    assert match_lesions(base, fu, _centroids(base), _centroids(fu), max_distance_mm=5.0) == [
        Match("disappeared", 1, None),
        Match("new", None, 1),
    ]


def test_merge_and_split_are_told() -> None:
    shape = (10, 40, 60)
    base = _boxes(
        shape,
        {
            1: (slice(2, 8), slice(5, 15), slice(5, 15)),
            2: (slice(2, 8), slice(5, 15), slice(18, 28)),
            3: (slice(2, 8), slice(25, 35), slice(30, 50)),
        },
    )
    fu = _boxes(
        shape,
        {
            1: (slice(2, 8), slice(5, 15), slice(5, 28)),  # covers 1 and 2: merged
            2: (slice(2, 8), slice(25, 35), slice(30, 38)),
            3: (slice(2, 8), slice(25, 35), slice(42, 50)),
        },
    )
    rows = match_lesions(base, fu, _centroids(base), _centroids(fu))
    assert rows == [Match("merged", 1, 1), Match("merged", 2, 1), Match("split", 3, 2), Match("split", 3, 3)]
    # RECIST: a split target counts the sum of its fragments; a merge is counted once.
    sizes = followup_sizes([1, 2, 3], rows, {1: 30.0, 2: 9.0, 3: 8.0})
    assert sizes == {1: 30.0, 2: 0.0, 3: 17.0}


def test_targets_are_the_two_largest_measurable() -> None:
    assert select_targets({1: 9.9, 2: 35.0, 3: 12.0, 4: 35.0, 5: 50.0}) == [5, 2]
    assert select_targets({1: 9.99, 2: 4.0}) == []
    assert select_targets({3: 10.0}) == [3]


@pytest.mark.parametrize(
    ("baseline", "nadir", "followup", "new", "gone", "expected"),
    [
        (50.0, 50.0, 35.0, 0, False, "PR"),  # exactly -30 %
        (50.0, 50.0, 35.1, 0, False, "SD"),
        (50.0, 40.0, 48.0, 0, False, "PD"),  # +20 % over the nadir and +8 mm
        (20.0, 20.0, 24.0, 0, False, "SD"),  # +20 % but only +4 mm
        (20.0, 20.0, 25.0, 0, False, "PD"),  # +25 % and +5 mm
        (50.0, 50.0, 10.0, 1, False, "PD"),  # a new lesion wins over shrinkage
        (50.0, 50.0, 0.0, 0, True, "CR"),
        (50.0, 50.0, 0.0, 0, False, "PR"),  # targets gone, another lesion remains
    ],
)
def test_classify(baseline: float, nadir: float, followup: float, new: int, gone: bool, expected: str) -> None:
    assert classify(baseline, nadir, followup, new, gone)[0] == expected


def test_assess_sums_nadir_and_changes_by_hand() -> None:
    # Baseline: lesions 1 (40 mm), 2 (30 mm), 3 (12 mm), 4 (8 mm): targets 1 and 2, sum 70 mm.
    base = {1: 40.0, 2: 30.0, 3: 12.0, 4: 8.0}
    tracking = {1: "L1", 2: "L2", 3: "L3", 4: "L4"}
    v1 = VisitSizes(
        [Match("matched", 1, 1), Match("matched", 2, 2), Match("matched", 3, 3), Match("disappeared", 4, None)],
        {1: 25.0, 2: 20.0, 3: 10.0},
    )  # sum 45: -35.71 % -> PR
    v2 = VisitSizes(
        [Match("matched", 1, 2), Match("matched", 2, 1), Match("matched", 3, 3)], {1: 28.0, 2: 27.0, 3: 10.0}
    )  # sum 55: +22.2 % over the nadir 45 and +10 mm -> PD
    out = assess(base, [v1, v2], tracking)
    assert out["target_lesions"] == ["L1", "L2"] and out["baseline_sum_mm"] == 70.0
    first, second = out["visits"]
    assert (first["followup_sum_mm"], first["nadir_sum_mm"], first["response"]) == (45.0, 70.0, "PR")
    assert first["change_from_baseline_percent"] == -35.71
    assert (second["followup_sum_mm"], second["nadir_sum_mm"], second["response"]) == (55.0, 45.0, "PD")
    assert second["change_from_nadir_percent"] == 22.22 and second["change_from_baseline_percent"] == -21.43
    assert out["response"] == "PD" and out["followup_sum_mm"] == 55.0


def test_assess_not_evaluable_with_reasons() -> None:
    out = assess({1: 8.0}, [VisitSizes([Match("matched", 1, 1)], {1: 9.0})], {1: "L1"})
    assert out["response"] == "NE" and "no measurable target" in out["reason"]
    out = assess({1: 30.0}, [VisitSizes([Match("matched", 1, 1)], {1: 9.0}, "phase is portal_venous")], {1: "L1"})
    assert out["response"] == "NE" and out["reason"] == "phase is portal_venous"


def test_volumetric_totals_and_change() -> None:
    from SmoothSegNetLib.followup.response import volumetric

    out = volumetric([8.0, 6.0, 0])
    assert out == {"total_volume_ml": [8.0, 6.0, 0.0], "change_from_baseline_percent": [-25.0, -100.0]}
    assert isinstance(out["total_volume_ml"][2], float)
    assert volumetric([0.0, 2.0])["change_from_baseline_percent"] == [None]
