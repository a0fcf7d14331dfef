"""Clinical variables, the ridge regression and its out-of-fold use (no case sees its own label)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from SmoothSegNetLib.training.clinical import (
    ClinicalDataError,
    encode_records,
    fit_ridge,
    kfold_indices,
    load_variable_table,
    out_of_fold_tlvr,
    read_clinical_table,
)

TABLE = load_variable_table()


def test_encoding_follows_the_category_maps() -> None:
    records = [
        {"T_involvment": ">50%", "CLIP_Score": "Stage_3", "TNM": "Stage-IIIA", "AFP": 1000, "hepatitis": "HCV only"},
        {"T_involvment": "< or = 50%", "CLIP_Score": None, "TNM": "Stage-unknown", "AFP": "", "hepatitis": "No virus"},
    ]
    x, names = encode_records(records, TABLE, ["T_involvment", "CLIP_Score", "TNM", "AFP", "hepatitis"])
    assert names[:4] == ["T_involvment", "CLIP_Score", "TNM", "log10_AFP"]
    assert names[4:] == ["hepatitis=No virus", "hepatitis=HBV only", "hepatitis=HCV only", "hepatitis=HCV and HBV"]
    assert x[0, :4].tolist() == [2.0, 3.0, 3.0, 3.0]
    assert x[0, 4:].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert x[1, 0] == 1.0 and all(math.isnan(v) for v in x[1, 1:4])  # missing and unknown values are NaN
    assert x[1, 4:].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_unknown_predictor_and_bad_number_are_refused() -> None:
    with pytest.raises(ClinicalDataError, match="predictor 'tumour_size' is not in the clinical variable table"):
        encode_records([{}], TABLE, ["tumour_size"])
    with pytest.raises(ClinicalDataError, match="clinical variable AFP must be a number, got 'high'"):
        encode_records([{"AFP": "high"}], TABLE, ["AFP"])


def test_ridge_recovers_an_exact_linear_law_with_tiny_strength() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    y = 0.1 + x @ np.array([0.02, -0.01, 0.03])
    model = fit_ridge(x, y, alpha=1e-9)
    assert np.allclose(model.predict(x), y, atol=1e-9)


def test_imputation_uses_the_training_rows_only() -> None:
    x = np.array([[1.0], [3.0], [np.nan], [5.0]])
    model = fit_ridge(x[:3], np.array([0.1, 0.3, 0.2]), alpha=1e-9)
    assert model.medians.tolist() == [2.0]  # median of 1 and 3, not touching row 4's 5
    assert model.predict(np.array([[np.nan]]))[0] == pytest.approx(0.2)


def test_no_case_sees_its_own_label() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4))
    y = np.clip(0.2 + 0.05 * x[:, 0] + rng.normal(0, 0.01, 40), 0, 1)
    folds = kfold_indices(40, 5, seed=0)
    before = out_of_fold_tlvr(x, y, folds)
    changed = y.copy()
    changed[folds[2]] = 0.9  # change every label of fold 2 ...
    after = out_of_fold_tlvr(x, changed, folds)
    # ... and fold 2's own predictions do not move, while the other folds' models do see the change.
    assert np.array_equal(before.predictions[folds[2]], after.predictions[folds[2]])
    others = np.setdiff1d(np.arange(40), folds[2])
    assert not np.allclose(before.predictions[others], after.predictions[others])
    assert before.pearson_r > 0.8 and before.mae < 0.02


def test_folds_are_checked() -> None:
    x, y = np.zeros((6, 1)), np.zeros(6)
    with pytest.raises(ClinicalDataError, match="disjoint parts covering all"):
        out_of_fold_tlvr(x, y, [np.array([0, 1, 2]), np.array([2, 3, 4, 5])])


def test_reads_the_tcia_spreadsheet_layout(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["TCIA_ID", "age", "T_involvment", "CLIP_Score", "AFP"])
    sheet.append(["HCC_001", 61, ">50%", "Stage_2", 12.5])
    sheet.append(["HCC_002", 70, "< or = 50%", None, 3000])
    sheet.append([None, None, None, None, None])
    path = tmp_path / "HCC-TACE-Seg_clinical_data-V2.xlsx"
    book.save(path)
    table = read_clinical_table(path)
    assert sorted(table) == ["HCC_001", "HCC_002"]
    assert table["HCC_001"]["T_involvment"] == ">50%" and table["HCC_002"]["AFP"] == 3000
    x, _names = encode_records([table["HCC_001"], table["HCC_002"]], TABLE, ["age", "CLIP_Score"])
    assert x[0].tolist() == [61.0, 2.0] and math.isnan(x[1, 1])


def test_repeated_patient_and_missing_id_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("TCIA_ID,age\nHCC_001,50\nHCC_001,51\n")
    with pytest.raises(ClinicalDataError, match="patient HCC_001 appears twice"):
        read_clinical_table(path)
    path.write_text("id,age\nHCC_001,50\n")
    with pytest.raises(ClinicalDataError, match="has no column 'TCIA_ID'"):
        read_clinical_table(path)
