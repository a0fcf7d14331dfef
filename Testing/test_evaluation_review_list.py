"""The review-list analysis (tuning only): which missed lesions the candidates hold, per faint-region setting."""

from __future__ import annotations

import numpy as np

from SmoothSegNetLib.evaluation.review_list import review_case, review_table
from SmoothSegNetLib.report.candidates import Candidates
from SmoothSegNetLib.volume import Geometry

GEOMETRY = Geometry.create((10, 10, 30), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


def _case() -> tuple[np.ndarray, dict[int, str], np.ndarray, Candidates, np.ndarray, np.ndarray]:
    """True lesions 1 (found), 2 (under a floor candidate), 3 (faint: q 0.3), 4 (faint: q 0.15); a faint false
    region (q 0.4, 8 voxels) on normal liver."""
    truth = np.zeros((10, 10, 30), np.uint16)
    truth[1:4, 1:4, 1:4] = 1
    truth[1:4, 1:4, 8:11] = 2
    truth[1:4, 1:4, 15:18] = 3
    truth[1:4, 1:4, 22:25] = 4
    lesions = np.where(truth == 1, 1, 0).astype(np.uint16)
    floor = np.zeros_like(truth)
    floor[2:3, 2:3, 9:10] = 1
    q = np.zeros(truth.shape, np.float32)
    q[truth == 1] = 0.9
    q[2, 2, 9] = 0.6
    q[truth == 3] = 0.3
    q[truth == 4] = 0.15
    q[6:8, 6:8, 20:22] = 0.4
    return (
        truth,
        {1: "10-20 mm", 2: "<10 mm", 3: "<10 mm", 4: "10-20 mm"},
        lesions,
        Candidates(floor, {1: "below_min_lesion_ml"}),
        q,
        np.ones(truth.shape, bool),
    )


def test_review_counts_missed_lesions_in_candidates_per_setting() -> None:
    truth, bands, lesions, floor, q, liver = _case()
    settings = [(0.0, None), (0.2, None), (0.2, 1), (0.1, None)]
    out = review_case(truth, bands, lesions, floor, q, liver, GEOMETRY, settings, 0.0)
    assert out[(0.0, None)] == {"missed": ["<10 mm", "<10 mm", "10-20 mm"], "caught": ["<10 mm"], "candidates": 1,
                                "false": 0}  # fmt: skip
    # At 0.2: lesion 3 and the false region (peak 0.4) are added; with a limit of one only the false region.
    assert out[(0.2, None)]["caught"] == ["<10 mm", "<10 mm"] and out[(0.2, None)]["false"] == 1
    assert out[(0.2, 1)]["caught"] == ["<10 mm"] and out[(0.2, 1)]["candidates"] == 2
    assert out[(0.1, None)]["caught"] == ["<10 mm", "<10 mm", "10-20 mm"] and out[(0.1, None)]["candidates"] == 4
    table = review_table([out], settings)
    assert "| off | – | 0.333 (1/3; 95 % CI" in table
    assert "| 0.1 | – | 1.000 (3/3; 95 % CI" in table and "| 2/2 | 1/1 | 0/0 | 0/0 | 4.0 | 1 |" in table


def test_review_adds_the_fine_pass_components_after_the_faint_regions() -> None:
    truth, bands, lesions, floor, q, liver = _case()
    q_fine = np.zeros_like(q)
    q_fine[truth == 4] = 0.8  # lesion 4 (q 0.15 on the first pass) is found by the fine pass
    q_fine[truth == 1] = 0.9  # the accepted lesion again: not a candidate
    q_fine[7:9, 0:2, 0:2] = 0.95  # a false fine component (8 voxels), the highest mean
    settings = [(0.0, None), (0.0, 1), (0.2, None)]
    out = review_case(truth, bands, lesions, floor, q, liver, GEOMETRY, settings, 0.0, q_fine)
    assert out[(0.0, None)]["caught"] == ["<10 mm", "10-20 mm"] and out[(0.0, None)]["candidates"] == 3
    assert out[(0.0, None)]["false"] == 1
    # A limit of one keeps the false component (mean 0.95) over lesion 4 (0.8).
    assert out[(0.0, 1)]["caught"] == ["<10 mm"] and out[(0.0, 1)]["false"] == 1
    # With faint regions at 0.2 first: lesion 3 and the faint false region, then the two fine components.
    assert out[(0.2, None)]["caught"] == ["<10 mm", "<10 mm", "10-20 mm"] and out[(0.2, None)]["false"] == 2
