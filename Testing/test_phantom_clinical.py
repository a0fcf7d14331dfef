"""The phantoms' clinical record: HCC-TACE-Seg variable names, valid categories, related to the tumor burden."""

from __future__ import annotations

import numpy as np
import pytest

from SmoothSegNetLib.phantom import encode_variables, load_variables, make_phantom


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [make_phantom(seed, (48, 48, 32), (8.0, 8.0, 8.0)).clinical for seed in range(1000, 1040)]


def _loo_ridge_predictions(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """Leave-one-out predictions of a ridge regression on standardised columns (no case sees its own label)."""
    out = np.zeros(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        mu, sd = x[keep].mean(axis=0), x[keep].std(axis=0) + 1e-9
        a = np.c_[np.ones(keep.sum()), (x[keep] - mu) / sd]
        w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y[keep])
        out[i] = np.r_[1.0, (x[i] - mu) / sd] @ w
    return out


def test_variables_named_and_valued_as_in_the_table(records: list[dict]) -> None:
    table = {v["name"]: v for v in load_variables()["variables"]}
    for record in records:
        assert set(record["variables"]) == set(table)
        for name, value in record["variables"].items():
            spec = table[name]
            if "categories" in spec:
                assert value in spec["categories"], (name, value)
            else:
                assert isinstance(value, (int, float)) and value >= 0
        assert record["TCIA_ID"].startswith("PHANTOM_")
        assert 0.0 <= record["ground_truth"]["tlvr"] < 1.0
        assert "tlvr" not in record["variables"]
        assert record["ground_truth"]["phantom"]["cirrhotic"] == (record["variables"]["Evidence_of_cirh"] == "Yes")
    assert {r["variables"]["Evidence_of_cirh"] for r in records} == {"Yes", "No"}


def test_reference_category_maps() -> None:
    """The maps of the reference code (lingchm/medassist-liver-cancer) are kept exactly."""
    table = {v["name"]: v["map"] for v in load_variables()["variables"] if "map" in v}
    assert table["T_involvment"] == {"< or = 50%": 1, ">50%": 2}
    assert table["CPS"] == {"A": 1, "B": 2, "C": 3}
    assert table["Okuda"] == {"Stage I": 1, "Stage II": 2, "Stage III": 3}
    assert table["BCLC"] == {"0": 0, "Stage-A": 1, "Stage-B": 2, "Stage-C": 3, "Stage-D": 4}
    assert list(table["TNM"].values()) == [1, 2, 3, 4, 5, 6, 7]
    assert table["CLIP_Score"]["Stage_6"] == 6


def test_encoding_uses_the_maps() -> None:
    variables = {"T_involvment": ">50%", "AFP": 1000.0, "CPS": "B", "age": 61}
    assert encode_variables(variables, ["T_involvment", "AFP", "CPS", "age"]).tolist() == [2.0, 3.0, 2.0, 61.0]


def test_clip_score_follows_its_definition(records: list[dict]) -> None:
    for record in records:
        v = record["variables"]
        morphology = 2 if v["T_involvment"] == ">50%" else (1 if v["tumor_nodul"] == "multinodular" else 0)
        expected = {"A": 0, "B": 1, "C": 2}[v["CPS"]] + morphology + (v["AFP"] >= 400) + v["Portal Vein Thrombosis"]
        assert v["CLIP"] == min(expected, 6) and v["CLIP_Score"] == f"Stage_{v['CLIP']}"
        assert v["AFP_group"] == (">=400" if v["AFP"] >= 400 else "<400")


def test_record_predicts_tlvr_out_of_fold(records: list[dict]) -> None:
    """A leave-one-out ridge regression on the default predictors correlates with the true TLVR (r > 0.5)."""
    x = np.array([encode_variables(r["variables"]) for r in records])
    y = np.array([r["ground_truth"]["tlvr"] for r in records])
    assert (y == 0).any() and y.max() > 0.1
    r = float(np.corrcoef(_loo_ridge_predictions(x, y), y)[0, 1])
    assert 0.5 < r < 0.95
    log_afp = np.log10([rec["variables"]["AFP"] for rec in records])
    assert float(np.corrcoef(log_afp, y)[0, 1]) > 0.4
