"""The lesion-classifier analysis (tuning only): recall per band, precision and the review list under an accept
rule, the ROC area, and the two-fold scores, on hand-made component lists."""

from __future__ import annotations

from typing import Any

import pytest

from SmoothSegNetLib.evaluation.lesion_classifier import auc, cross_scores, outcome


def _comp(ml: float, q: float, lesions: list[int], score: float = 0.0) -> dict[str, Any]:
    return {"ml": ml, "q_mean": q, "lesions": lesions, "score": score, "thin": q}


def _cases() -> list[dict[str, Any]]:
    """Case A: lesions 1 (10-20 mm) and 2 (<10 mm); a true component on 1 (score 0.8), a false one (0.6), a small
    one on 2 (0.05 ml). Case B: lesion 1 (>50 mm) under a big component (score 0.2), a false one (0.1)."""
    return [
        {
            "seed": 1,
            "lesions": [{"lesion": 1, "band": "10-20 mm"}, {"lesion": 2, "band": "<10 mm"}],
            "components": [_comp(1.0, 0.9, [1], 0.8), _comp(0.5, 0.8, [], 0.6), _comp(0.05, 0.7, [2], 0.9)],
        },
        {
            "seed": 2,
            "lesions": [{"lesion": 1, "band": ">50 mm"}],
            "components": [_comp(150.0, 0.6, [1], 0.2), _comp(0.3, 0.9, [], 0.1)],
        },
    ]


def test_outcome_counts_recall_per_band_precision_and_the_review_list() -> None:
    out = outcome(_cases(), lambda c: c["ml"] >= 0.2 and c["score"] >= 0.5)
    # Accepted: A's true (lesion 1) and false components. Lesion 2 (only a 0.05 ml component) and B's lesion are
    # missed; the components not accepted hold both of them (the review list).
    assert out["recall"] == {"<10 mm": [0, 1], "10-20 mm": [1, 1], "20-50 mm": [0, 0], ">50 mm": [0, 1]}
    assert out["predicted"] == 2 and out["precision"] == pytest.approx(0.5)
    assert out["review"] == (2, 2) and out["listed_per_case"] == pytest.approx(1.5)
    # The review list limited to one per case, highest score first: A lists the 0.05 ml one (0.9), B the big
    # component (0.2) over the false one (0.1).
    assert outcome(_cases(), lambda c: c["ml"] >= 0.2 and c["score"] >= 0.5, review_limit=1)["review"] == (2, 2)
    assert outcome(_cases(), lambda c: False, review_limit=1)["review"] == (2, 3)


def test_auc_is_the_chance_a_true_component_outscores_a_false_one() -> None:
    # True 0.8, 0.2, 0.6 against false 0.6, 0.1: (0.8, 0.6) win, (0.8, 0.1) win, (0.2, 0.6) lose, (0.2, 0.1) win,
    # (0.6, 0.6) tie, (0.6, 0.1) win: 4.5 of 6.
    assert auc([0.8, 0.2, 0.6, 0.1, 0.6], [True, True, False, False, True]) == pytest.approx(4.5 / 6)
    assert auc([0.5], [True]) != auc([0.5], [True])  # nan: one class only


def test_two_fold_scores_come_from_the_other_half_and_big_components_score_one() -> None:
    cases = _cases() * 2  # halves: (A, B) and (A, B) again: each half can fit on the other
    for case in cases:
        case["components"] = [dict(c) for c in case["components"]]
    cross_scores(cases, ["thin"], l2=1.0, min_ml=0.2, max_ml=10.0)
    big = cases[1]["components"][0]
    assert big["score"] == 1.0  # 150 ml: never scored
    # The same component in both halves gets the same score (both halves hold the same cases).
    assert cases[0]["components"][0]["score"] == pytest.approx(cases[2]["components"][0]["score"])
    # Fitted on thin (= q here): true ones have q 0.9 vs false 0.8 and 0.9: the true one scores above the 0.8 one.
    assert cases[0]["components"][0]["score"] > cases[0]["components"][1]["score"]
