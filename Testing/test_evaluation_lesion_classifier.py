"""The lesion-classifier analysis (tuning only): recall per band, precision and the review list under an accept
rule, the ROC area, and the two-fold scores, on hand-made component lists; the bundled classifier refitted from its
committed components; a tuning phantom segmented again into those components."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

from SmoothSegNetLib.evaluation.lesion_classifier import auc, cross_scores, main, outcome
from SmoothSegNetLib.models import load_card


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


COMPONENTS = REPO_ROOT / "Resources" / "Models" / "demo-tumor-classifier-components.json"
BUNDLED_TUMOR = REPO_ROOT / "Resources" / "Models" / "smoothsegnet-demo-tumor.json"


def _cache(folder: Path) -> Path:
    """The committed components, one record per tuning phantom, as ``evaluation.lesion_features`` writes them."""
    folder.mkdir()
    for case in json.loads(COMPONENTS.read_text(encoding="utf-8"))["cases"]:
        (folder / f"features-{case['seed']}.json").write_text(json.dumps(case), encoding="utf-8")
    return folder


def _card_without_classifier(path: Path) -> Path:
    card = json.loads(BUNDLED_TUMOR.read_text(encoding="utf-8"))
    post = card["postprocessing"]
    del post["lesion_classifier"], post["min_lesion_score"]
    post["min_lesion_confidence"] = 0.7  # what the training script's cards held before the classifier
    path.write_text(json.dumps(card), encoding="utf-8")
    return path


def test_the_bundled_classifier_is_refitted_number_for_number_from_its_committed_components(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _cache(tmp_path / "lf")
    card = _card_without_classifier(tmp_path / "card.json")
    assert main(["--seeds", "2004:2064", "--cache", str(cache), "--into-card", str(card)]) == 0
    out = capsys.readouterr().out
    # The tuning figures of docs/small-lesions.md section 7 (two-fold scores).
    assert "67 components of 0.2-10 ml, 27 on a true lesion; AUC (two-fold): classifier 0.862" in out
    assert "| 0.2 ml, score >= 0.3 | 0/9 | 8/29 | 37/40 | 23/23 | 81 | 0.84 |" in out
    written = json.loads(card.read_text(encoding="utf-8"))
    bundled = json.loads(BUNDLED_TUMOR.read_text(encoding="utf-8"))
    assert written["postprocessing"] == bundled["postprocessing"]  # the confidence floor is gone, the score floor set
    assert load_card(card).post.lesion_classifier is not None  # a valid card the pipeline reads


def test_into_card_refuses_too_few_components_and_non_tumor_cards_and_leaves_the_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _cache(tmp_path / "lf")
    card = _card_without_classifier(tmp_path / "card.json")
    before = card.read_bytes()
    # Seeds 2004-2013: 16 components of 0.2-10 ml, fewer than 10 of them true.
    assert main(["--seeds", "2004:2014", "--cache", str(cache), "--into-card", str(card)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "fewer than 10 of each kind" in err and err.count("\n") == 1
    assert card.read_bytes() == before
    liver = tmp_path / "liver.json"
    liver.write_text((REPO_ROOT / "Resources" / "Models" / "smoothsegnet-demo-liver.json").read_text())
    before = liver.read_bytes()
    assert main(["--seeds", "2004:2064", "--cache", str(cache), "--into-card", str(liver)]) == 2
    assert "is not a tumor card" in capsys.readouterr().err
    assert liver.read_bytes() == before
    # A seed range whose records are missing: one error line, nothing written.
    assert main(["--seeds", "2004:2070", "--cache", str(cache), "--into-card", str(card)]) == 2
    assert "cannot read the components" in capsys.readouterr().err


def test_fit_and_into_card_write_one_model_and_a_failure_writes_neither(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = _cache(tmp_path / "lf")
    card = _card_without_classifier(tmp_path / "card.json")
    model = tmp_path / "model.json"
    assert main(["--seeds", "2004:2064", "--cache", str(cache), "--into-card", str(card), "--fit", str(model)]) == 0
    fitted = json.loads(model.read_text(encoding="utf-8"))
    in_card = json.loads(card.read_text(encoding="utf-8"))["postprocessing"]["lesion_classifier"]
    assert fitted == {k: v for k, v in in_card.items() if k != "fitted_on"}
    bundled = json.loads(BUNDLED_TUMOR.read_text(encoding="utf-8"))["postprocessing"]["lesion_classifier"]
    assert fitted["weights"] == bundled["weights"] and fitted["intercept"] == bundled["intercept"]
    # The card refused (too few components): no model file either, and the card unchanged.
    capsys.readouterr()
    card = _card_without_classifier(tmp_path / "card2.json")
    before = card.read_bytes()
    model2 = tmp_path / "model2.json"
    assert main(["--seeds", "2004:2014", "--cache", str(cache), "--into-card", str(card), "--fit", str(model2)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not model2.exists() and card.read_bytes() == before
    # A model path that cannot be written: one error line, no partial file beside it.
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    assert main(["--seeds", "2004:2064", "--cache", str(cache), "--fit", str(blocked)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write the model to") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_a_tuning_phantom_segmented_again_gives_its_committed_components(tmp_path: Path) -> None:
    from SmoothSegNetLib.evaluation.lesion_features import collect

    seed = 2011  # two components of 0.2-10 ml, both on true lesions
    committed = next(c for c in json.loads(COMPONENTS.read_text())["cases"] if c["seed"] == seed)
    data = collect(seed, tmp_path, threads=1, tumor_model=str(BUNDLED_TUMOR))
    assert (tmp_path / f"features-{seed}.json").is_file()
    assert data["lesions"] == committed["lesions"]
    assert len(data["components"]) == len(committed["components"])
    for got, want in zip(
        sorted(data["components"], key=lambda c: c["ml"]), sorted(committed["components"], key=lambda c: c["ml"])
    ):
        assert got["lesions"] == want["lesions"]
        assert got.keys() == want.keys()
        for key, value in want.items():
            if key != "lesions":  # OpenVINO's sums differ in the last digits between CPUs
                assert got[key] == pytest.approx(value, rel=0.02, abs=0.01), key
