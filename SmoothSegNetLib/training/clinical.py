"""Clinical knowledge: encode the HCC-TACE-Seg clinical variables and predict TLVR out-of-fold.

The variable names and category maps come from ``Resources/Clinical/hcc_tace_variables.json`` (the
reference code's maps). Encoding: ordinal and binary variables through their map, numeric ones as numbers
(``AFP`` as log10), nominal categorical ones one-hot; a missing or unknown value is NaN.

The regression is ridge regression (closed form, intercept not penalised) on standardised features. Why
ridge: the table is small (~100 patients) with correlated staging scores (CLIP, Okuda, TNM, BCLC all grow
with tumor burden), where ordinary least squares is unstable; the strength is chosen by an inner 5-fold
cross-validation over a log grid. Everything fitted — imputation medians, standardisation, the strength,
the coefficients — uses the training folds only, and each case's TLVR is predicted by the model of the fold
that held it out, so no case sees its own label.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.resources import RESOURCES_DIR

VARIABLES_PATH = RESOURCES_DIR / "Clinical" / "hcc_tace_variables.json"
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))


class ClinicalDataError(InputError):
    """The clinical table cannot be read or lacks what the regression needs."""


def load_variable_table(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The variable table (names, types, category maps, default predictors)."""
    with open(path or VARIABLES_PATH, encoding="utf-8") as handle:
        table: dict[str, Any] = json.load(handle)
    return table


def read_clinical_table(path: str | os.PathLike[str], id_column: str = "TCIA_ID") -> dict[str, dict[str, Any]]:
    """Rows of a clinical spreadsheet (``.xlsx`` through openpyxl, or ``.csv``) keyed by patient id.

    Raises:
        ClinicalDataError: unreadable file, no ``id_column``, or a repeated patient id.
    """
    path = Path(path)
    if not path.is_file():
        raise ClinicalDataError(f"clinical table {path} does not exist: pass the HCC-TACE-Seg clinical spreadsheet")
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        try:
            sheet = load_workbook(path, read_only=True, data_only=True).worksheets[0]
            rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        except Exception as exc:  # openpyxl raises many types for a damaged workbook
            raise ClinicalDataError(f"clinical table {path} cannot be read as xlsx: {exc}") from exc
    else:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [list(r) for r in csv.reader(handle)]
    rows = [r for r in rows if any(v not in (None, "") for v in r)]
    if not rows:
        raise ClinicalDataError(f"clinical table {path} is empty")
    header = [str(h).strip() if h is not None else "" for h in rows[0]]
    if id_column not in header:
        raise ClinicalDataError(
            f"clinical table {path} has no column {id_column!r} (columns: {', '.join(header[:8])}, ...)"
        )
    id_index = header.index(id_column)
    table: dict[str, dict[str, Any]] = {}
    for row in rows[1:]:
        case = str(row[id_index]).strip() if row[id_index] is not None else ""
        if not case:
            continue
        if case in table:
            raise ClinicalDataError(f"clinical table {path}: patient {case} appears twice; keep one row per patient")
        table[case] = {name: value for name, value in zip(header, row) if name}
    return table


def _missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _number(value: Any, name: str) -> float:
    if _missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ClinicalDataError(f"clinical variable {name} must be a number, got {value!r}; fix the table") from exc


def encode_records(
    records: Sequence[dict[str, Any]], table: dict[str, Any], predictors: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Feature matrix ``[cases, features]`` (NaN = missing) and the feature names.

    Raises:
        ClinicalDataError: a predictor not in the variable table.
    """
    variables = {v["name"]: v for v in table["variables"]}
    names = list(predictors if predictors is not None else table["default_predictors"])
    columns: list[np.ndarray] = []
    feature_names: list[str] = []
    for name in names:
        if name not in variables:
            raise ClinicalDataError(
                f"predictor {name!r} is not in the clinical variable table; known: {', '.join(variables)}"
            )
        spec = variables[name]
        values = [r.get(name) for r in records]
        if spec["type"] == "numeric":
            col = np.array([_number(v, name) for v in values], dtype=np.float64)
            if name == "AFP":
                col = np.log10(np.clip(col, 0.1, None))
            columns.append(col)
            feature_names.append(f"log10_{name}" if name == "AFP" else name)
        elif spec["type"] == "categorical":
            for category in spec["categories"]:
                col = np.array([math.nan if _missing(v) else float(str(v).strip() == str(category)) for v in values])
                columns.append(col)
                feature_names.append(f"{name}={category}")
        else:
            mapping = {str(k): float(v) for k, v in spec["map"].items()}
            col = np.array([math.nan if _missing(v) else mapping.get(str(v).strip(), math.nan) for v in values])
            columns.append(col)
            feature_names.append(name)
    return np.column_stack(columns) if columns else np.zeros((len(records), 0)), feature_names


@dataclass(frozen=True)
class RidgeModel:
    """A fitted ridge model with its own imputation and standardisation (all from its training rows)."""

    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = np.where(np.isnan(features), self.medians, features)
        return ((x - self.means) / self.scales) @ self.coef + self.intercept


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    mean_x, mean_y = x.mean(axis=0), float(y.mean())
    xc = x - mean_x
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - mean_y))
    return coef, mean_y - float(mean_x @ coef)


def fit_ridge(features: np.ndarray, target: np.ndarray, alpha: float) -> RidgeModel:
    """Impute (column medians), standardise and fit ridge with strength ``alpha`` on these rows only."""
    medians = np.nanmedian(np.where(np.isnan(features).all(axis=0), 0.0, features), axis=0)
    medians = np.where(np.isnan(medians), 0.0, medians)
    x = np.where(np.isnan(features), medians, features)
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales = np.where(scales > 1e-12, scales, 1.0)
    coef, intercept = _ridge((x - means) / scales, target, alpha)
    return RidgeModel(medians, means, scales, coef, intercept, alpha)


def kfold_indices(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """Indices of ``folds`` disjoint, shuffled folds covering ``range(n)``."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, folds)]


def choose_alpha(features: np.ndarray, target: np.ndarray, alphas: Sequence[float], seed: int = 0) -> float:
    """The strength with the lowest inner 5-fold (or leave-one-out when fewer rows) squared error."""
    n = len(target)
    folds = kfold_indices(n, min(5, n), seed)
    errors = []
    for alpha in alphas:
        total = 0.0
        for held in folds:
            train = np.setdiff1d(np.arange(n), held)
            model = fit_ridge(features[train], target[train], alpha)
            total += float(((model.predict(features[held]) - target[held]) ** 2).sum())
        errors.append(total)
    return float(alphas[int(np.argmin(errors))])


@dataclass(frozen=True)
class OutOfFoldResult:
    """Out-of-fold TLVR predictions and how well they match."""

    predictions: np.ndarray
    alphas: tuple[float, ...]
    pearson_r: float
    mae: float


def out_of_fold_tlvr(
    features: np.ndarray,
    tlvr: np.ndarray,
    folds: Sequence[np.ndarray],
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    seed: int = 0,
) -> OutOfFoldResult:
    """Predict each case's TLVR with a model fitted on the other folds only (clipped to [0, 1]).

    Args:
        features: ``[cases, features]`` from :func:`encode_records` (NaN = missing).
        tlvr: ``[cases]`` reference TLVR.
        folds: disjoint index arrays covering every case (e.g. the patient-level split).

    Raises:
        ClinicalDataError: folds that overlap or miss cases, fewer than 3 training rows in a fold.
    """
    n = len(tlvr)
    seen = np.concatenate([np.asarray(f, dtype=int) for f in folds]) if folds else np.zeros(0, int)
    if len(seen) != n or len(np.unique(seen)) != n:
        raise ClinicalDataError(f"folds must split the {n} cases into disjoint parts covering all of them")
    predictions = np.full(n, math.nan)
    chosen = []
    for held in folds:
        train = np.setdiff1d(np.arange(n), held)
        if len(train) < 3:
            raise ClinicalDataError(f"a fold leaves only {len(train)} training cases; use fewer folds or more cases")
        alpha = choose_alpha(features[train], tlvr[train], alphas, seed)
        model = fit_ridge(features[train], tlvr[train], alpha)
        predictions[held] = np.clip(model.predict(features[held]), 0.0, 1.0)
        chosen.append(alpha)
    r = float(np.corrcoef(predictions, tlvr)[0, 1]) if n > 2 and np.std(predictions) > 0 else math.nan
    return OutOfFoldResult(predictions, tuple(chosen), r, float(np.mean(np.abs(predictions - tlvr))))
