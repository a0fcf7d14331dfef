"""Boosted decision trees over a finding's features: a score model that can learn what a straight line cannot.

The liver scan's findings (:mod:`SmoothSegNetLib.correction.scan`) are ranked by a score model. A logistic model
(:class:`~SmoothSegNetLib.inference.lesion_classifier.LogisticModel`) weighs each feature along one direction; a
lesion's HU, for example, is neither "the higher the better" nor "the lower the better" (water-dense cysts and
bright vessels lie on either side). Boosted trees split each feature where it matters.

The model is plain data (feature names; each tree's split features, thresholds, children and leaf values; the
starting log-odds), kept in the scan's settings file and read without executing anything. Scoring walks each tree
from its root: a value ``<=`` the node's threshold goes left. :func:`fit_boosted_trees` fits one with
scikit-learn's histogram gradient boosting (an optional dependency, ``pip install SmoothSegNetLib[fit]``, needed only
to fit) and copies its trees out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KIND = "boosted_trees"


@dataclass(frozen=True)
class Tree:
    """One regression tree; node 0 is the root. ``feature[n] < 0`` marks a leaf, whose log-odds is ``value[n]``;
    otherwise a value ``<= threshold[n]`` of feature ``feature[n]`` goes to node ``left[n]``, else ``right[n]``."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    value: tuple[float, ...]

    def check(self, n_features: int) -> None:
        n = len(self.feature)
        if not n or any(len(v) != n for v in (self.threshold, self.left, self.right, self.value)):
            raise ValueError("a tree needs the same number (>= 1) of features, thresholds, lefts, rights, values")
        for node in range(n):
            f = self.feature[node]
            if f >= n_features:
                raise ValueError(f"tree node {node} splits on feature {f}; the model has {n_features}")
            if f < 0:
                if not math.isfinite(self.value[node]):
                    raise ValueError(f"tree leaf {node} has no finite value")
                continue
            # Children come after their parent: a walk always ends, at a leaf.
            if not all(node < c < n for c in (self.left[node], self.right[node])):
                raise ValueError(f"tree node {node}'s children must be later nodes of the tree")
            if not math.isfinite(self.threshold[node]):
                raise ValueError(f"tree node {node} has no finite threshold")

    def leaf_value(self, x: Sequence[float]) -> float:
        node = 0
        while self.feature[node] >= 0:
            node = self.left[node] if x[self.feature[node]] <= self.threshold[node] else self.right[node]
        return self.value[node]

    def to_json(self) -> dict[str, list[Any]]:
        return {
            "feature": list(self.feature),
            "threshold": [float(v) for v in self.threshold],
            "left": list(self.left),
            "right": list(self.right),
            "value": [float(v) for v in self.value],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tree:
        return cls(
            feature=_indices(data["feature"], "feature"),
            threshold=tuple(float(v) for v in data["threshold"]),
            left=_indices(data["left"], "left"),
            right=_indices(data["right"], "right"),
            value=tuple(float(v) for v in data["value"]),
        )


def _indices(values: Sequence[Any], name: str) -> tuple[int, ...]:
    """Whole numbers as written (``1.9`` is not node 1, and ``Infinity`` is not a node at all)."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v):
            raise ValueError(f"a tree's {name} indices must be whole numbers, got {v!r}")
        out.append(int(v))
    return tuple(out)


@dataclass(frozen=True)
class BoostedTrees:
    """``p = 1 / (1 + exp(-(slope * z + offset)))`` with ``z = baseline + the sum of each tree's leaf value``,
    over ``features``. ``slope`` and ``offset`` calibrate the trees' log-odds on the findings the score is shown
    for (:func:`fit_calibration`; the trees may be fitted on other findings): they change no ranking."""

    features: tuple[str, ...]
    baseline: float
    trees: tuple[Tree, ...]
    slope: float = 1.0
    offset: float = 0.0
    #: The feature names a model may use.
    vocabulary: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.features or not self.trees:
            raise ValueError("a boosted-trees model needs at least one feature and one tree")
        unknown = sorted(set(self.features) - set(self.vocabulary))
        if self.vocabulary and unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known: {list(self.vocabulary)}")
        if not math.isfinite(self.baseline):
            raise ValueError("a boosted-trees model's baseline must be finite")
        if not (math.isfinite(self.slope) and self.slope > 0 and math.isfinite(self.offset)):
            raise ValueError("a boosted-trees model's calibration needs a finite slope > 0 and a finite offset")
        for tree in self.trees:
            tree.check(len(self.features))

    def log_odds(self, features: Mapping[str, float]) -> float:
        x = [float(features[f]) for f in self.features]
        if not all(math.isfinite(v) for v in x):
            raise ValueError(f"features must be finite to be scored, got {dict(zip(self.features, x))}")
        return self.baseline + math.fsum(t.leaf_value(x) for t in self.trees)

    def score(self, features: Mapping[str, float]) -> float:
        """The model's probability for a finding with these features."""
        z = self.slope * self.log_odds(features) + self.offset
        return 1.0 / (1.0 + math.exp(-min(max(z, -60.0), 60.0)))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "features": list(self.features),
            "baseline": float(self.baseline),
            "calibration": {"slope": float(self.slope), "offset": float(self.offset)},
            "trees": [t.to_json() for t in self.trees],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], vocabulary: Sequence[str] = ()) -> BoostedTrees:
        if data.get("kind") != KIND:
            raise ValueError(f"a boosted-trees model has kind {KIND!r}, got {data.get('kind')!r}")
        try:
            calibration = data.get("calibration", {"slope": 1.0, "offset": 0.0})
            return cls(
                features=tuple(str(f) for f in data["features"]),
                baseline=float(data["baseline"]),
                trees=tuple(Tree.from_json(t) for t in data["trees"]),
                slope=float(calibration["slope"]),
                offset=float(calibration["offset"]),
                vocabulary=tuple(vocabulary),
            )
        except (KeyError, TypeError, OverflowError) as exc:
            raise ValueError(f"a boosted-trees model needs features, baseline and trees: {exc}") from exc


def fit_calibration(log_odds: Sequence[float], labels: Sequence[bool]) -> tuple[float, float]:
    """``(slope, offset)`` of a logistic model of ``labels`` on ``log_odds`` (Platt scaling: the lesion classifier's
    unpenalised fit on that one feature, taken back from its standardised form).

    Raises:
        ValueError: only one class, or a slope that is not > 0 (the log-odds rank the rows backwards: calibrating
            cannot mend that).
    """
    from SmoothSegNetLib.inference.lesion_classifier import fit_logistic

    fitted = fit_logistic([{"z": float(z)} for z in log_odds], labels, ["z"], l2=0.0, vocabulary=("z",))
    slope = fitted.weights[0] / fitted.scale[0]
    offset = fitted.intercept - slope * fitted.centre[0]
    if not (math.isfinite(slope) and slope > 0 and math.isfinite(offset)):
        raise ValueError(f"the calibration's slope is {slope:.3g}: the scores do not rank these findings")
    return slope, offset


@dataclass(frozen=True)
class TreeSettings:
    """How :func:`fit_boosted_trees` fits (chosen on tuning phantoms; docs/small-lesions.md, section 14)."""

    iterations: int = 100
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 40
    l2: float = 1.0


def fit_boosted_trees(
    rows: Sequence[Mapping[str, float]],
    labels: Sequence[bool],
    features: Sequence[str],
    settings: TreeSettings | None = None,
    vocabulary: Sequence[str] = (),
) -> BoostedTrees:
    """Fit boosted trees (logistic loss, a fixed number of iterations, no early stopping, so the same rows give
    the same trees) with scikit-learn and copy them out.

    Raises:
        ValueError: no rows, only one class, or a feature that is not finite.
        ImportError: scikit-learn is not installed (``pip install SmoothSegNetLib[fit]``).
    """
    y = np.asarray(labels, dtype=bool)
    if not len(rows) or y.all() or not y.any():
        raise ValueError("fitting boosted trees needs rows of both classes")
    x = np.array([[float(r[f]) for f in features] for r in rows], dtype=float)
    if not np.isfinite(x).all():
        # scikit-learn would learn a side for missing values, which the copied trees cannot hold (scoring refuses them)
        raise ValueError("fitting boosted trees needs finite features in every row")
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError as exc:  # pragma: no cover - the test environment has it
        raise ImportError("fitting boosted trees needs scikit-learn: pip install 'SmoothSegNetLib[fit]'") from exc
    s = settings if settings is not None else TreeSettings()
    fitted = HistGradientBoostingClassifier(
        loss="log_loss",
        learning_rate=s.learning_rate,
        max_iter=s.iterations,
        max_leaf_nodes=s.max_leaf_nodes,
        min_samples_leaf=s.min_samples_leaf,
        l2_regularization=s.l2,
        early_stopping=False,
        random_state=0,
    ).fit(x, y)
    trees = []
    for (predictor,) in fitted._predictors:  # one predictor per iteration for a binary problem
        nodes = predictor.nodes
        if np.any(nodes["is_categorical"]):  # pragma: no cover - no categorical features are declared
            raise ValueError("categorical splits cannot be copied out")
        leaf = nodes["is_leaf"].astype(bool)
        trees.append(
            Tree(
                feature=tuple(-1 if lf else int(f) for f, lf in zip(nodes["feature_idx"], leaf)),
                threshold=tuple(0.0 if lf else float(t) for t, lf in zip(nodes["num_threshold"], leaf)),
                left=tuple(0 if lf else int(c) for c, lf in zip(nodes["left"], leaf)),
                right=tuple(0 if lf else int(c) for c, lf in zip(nodes["right"], leaf)),
                value=tuple(float(v) if lf else 0.0 for v, lf in zip(nodes["value"], leaf)),
            )
        )
    baseline = float(np.ravel(fitted._baseline_prediction)[0])
    return BoostedTrees(features=tuple(features), baseline=baseline, trees=tuple(trees), vocabulary=tuple(vocabulary))
