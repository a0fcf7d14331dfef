"""A lesion classifier: a logistic model over a component's features that says how likely it is a true lesion.

The model is plain data (feature names, their centring and scale, the weights), kept in the tumor card's
``postprocessing.lesion_classifier`` and read without executing anything. :func:`fit_logistic` fits one
(L2-regularised logistic regression by Newton's method); the evaluation that chose the bundled one is
:mod:`SmoothSegNetLib.evaluation.lesion_classifier`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from SmoothSegNetLib.inference.lesion_features import FEATURES


@dataclass(frozen=True)
class LogisticModel:
    """``p = 1 / (1 + exp(-(intercept + sum(weights * (x - centre) / scale))))`` over ``features``; components of
    ``max_ml`` or more are not scored (they are lesions: the model was fitted below that size)."""

    features: tuple[str, ...]
    centre: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float
    max_ml: float | None = None
    #: The feature names a model may use (the tumor card's classifier: :data:`FEATURES`; the liver scan of
    #: :mod:`SmoothSegNetLib.correction.scan` adds its blob detector's).
    vocabulary: tuple[str, ...] = field(default=FEATURES, compare=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.features)
        if not n or any(len(v) != n for v in (self.centre, self.scale, self.weights)):
            raise ValueError("a lesion classifier needs the same number (>= 1) of features, centres, scales, weights")
        unknown = sorted(set(self.features) - set(self.vocabulary))
        if unknown:
            raise ValueError(f"unknown lesion classifier feature(s) {unknown}; known: {list(self.vocabulary)}")
        values = (*self.centre, *self.scale, *self.weights, self.intercept)
        if not all(math.isfinite(v) for v in values) or any(s <= 0 for s in self.scale):
            raise ValueError("lesion classifier values must be finite and its scales > 0")
        if self.max_ml is not None and not (math.isfinite(self.max_ml) and self.max_ml > 0):
            raise ValueError(f"lesion classifier max_ml must be a volume > 0 (ml), got {self.max_ml!r}")

    def score(self, features: Mapping[str, float]) -> float:
        """The probability that a component with these features is a true lesion."""
        x = np.array([features[f] for f in self.features], dtype=float)
        z = self.intercept + float(np.dot(self.weights, (x - self.centre) / np.asarray(self.scale)))
        return 1.0 / (1.0 + math.exp(-min(max(z, -60.0), 60.0)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "features": list(self.features),
            "centre": [round(v, 6) for v in self.centre],
            "scale": [round(v, 6) for v in self.scale],
            "weights": [round(v, 6) for v in self.weights],
            "intercept": round(self.intercept, 6),
        }
        if self.max_ml is not None:
            out["max_ml"] = self.max_ml
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], vocabulary: Sequence[str] = FEATURES) -> LogisticModel:
        try:
            return cls(
                features=tuple(str(f) for f in data["features"]),
                centre=tuple(float(v) for v in data["centre"]),
                scale=tuple(float(v) for v in data["scale"]),
                weights=tuple(float(v) for v in data["weights"]),
                intercept=float(data["intercept"]),
                max_ml=None if data.get("max_ml") is None else float(data["max_ml"]),
                vocabulary=tuple(vocabulary),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a lesion classifier needs features, centre, scale, weights, intercept: {exc}") from exc


def fit_logistic(
    rows: Sequence[Mapping[str, float]],
    labels: Sequence[bool],
    features: Sequence[str],
    l2: float = 1.0,
    max_ml: float | None = None,
    vocabulary: Sequence[str] = FEATURES,
) -> LogisticModel:
    """L2-regularised logistic regression (the intercept not penalised), by Newton's method, on standardised
    features.

    Raises:
        ValueError: no rows, or only one class.
    """
    y = np.asarray(labels, dtype=float)
    if not len(rows) or y.min() == y.max():
        raise ValueError("fitting a lesion classifier needs rows of both classes")
    x = np.array([[r[f] for f in features] for r in rows], dtype=float)
    centre = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.column_stack([np.ones(len(x)), (x - centre) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], float(l2))
    penalty[0] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -60, 60)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return LogisticModel(
        features=tuple(features),
        centre=tuple(float(v) for v in centre),
        scale=tuple(float(v) for v in scale),
        weights=tuple(float(v) for v in w[1:]),
        intercept=float(w[0]),
        max_ml=max_ml,
        vocabulary=tuple(vocabulary),
    )
