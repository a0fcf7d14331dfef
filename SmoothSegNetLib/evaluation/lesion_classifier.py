"""Fit the lesion classifier and see what it does to recall, precision and the review list (tuning only).

Reads the tumor components of :mod:`SmoothSegNetLib.evaluation.lesion_features` (found with every floor off, with
their features and the true lesions they touch) and fits a logistic model (:func:`fit_logistic`): is a component
a true lesion? To score each phantom with a model that never saw it, the tuning seeds are split in two halves
and each half is scored by the model fitted on the other (two-fold cross-validation); ``--fit`` then fits the
model on all the seeds, for the card.

Rules compared, per RECIST band: the card's floors (>= 0.2 ml, mean probability >= 0.7), and the classifier's
(components of at least ``--min-ml`` whose score reaches t). The review list: the components not accepted (the
pipeline's floor candidates); of the true lesions no accepted component touches, how many one of them touches.

The defaults (features, L2, the size range, the score floor) are the bundled demo card's choices (docs/small-lesions.md
section 7). ``--into-card CARD`` puts the model fitted on every seed and the score floor into a tumor card (replacing
its confidence floor), as ``scripts/train_demo.sh`` does for the weights it trains.

Run: ``python -m SmoothSegNetLib.evaluation.lesion_classifier --seeds 2004:2064 --cache build/lesion-features``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import SmoothSegNetError
from SmoothSegNetLib.evaluation.lesions import RECIST_BINS, proportion_text
from SmoothSegNetLib.inference.lesion_classifier import LogisticModel, fit_logistic
from SmoothSegNetLib.inference.lesion_features import FEATURES
from SmoothSegNetLib.outputs import atomic_path

Rule = Callable[[dict[str, Any]], bool]

#: The bundled demo card's choices (docs/small-lesions.md section 7): the features that do not depend on the voxel
#: size, the L2 penalty, the size range it decides and the score floor.
CHOSEN_FEATURES = tuple(f for f in FEATURES if f not in ("noise", "cnr", "spread"))
CHOSEN_L2 = 20.0
CHOSEN_MAX_ML = 10.0
CHOSEN_MIN_SCORE = 0.3


def load(cache: Path, seeds: Sequence[int]) -> list[dict[str, Any]]:
    return [json.loads((cache / f"features-{s}.json").read_text(encoding="utf-8")) for s in seeds]


def scored(component: dict[str, Any], min_ml: float, max_ml: float) -> bool:
    """Whether the classifier decides this component: at least the volume floor and under ``max_ml`` (larger
    components are always lesions)."""
    return bool(min_ml <= component["ml"] < max_ml)


def fit_model(
    cases: Sequence[dict[str, Any]], features: Sequence[str], l2: float, min_ml: float, max_ml: float
) -> LogisticModel:
    """The model fitted on the components of ``cases`` that it decides (:func:`scored`)."""
    rows = [c for case in cases for c in case["components"] if scored(c, min_ml, max_ml)]
    return fit_logistic(rows, [bool(c["lesions"]) for c in rows], features, l2, max_ml)


def cross_scores(
    cases: Sequence[dict[str, Any]], features: Sequence[str], l2: float, min_ml: float, max_ml: float
) -> None:
    """Give each component a ``score`` from the model fitted on the other half of the cases (in place; 1 for
    those at or over ``max_ml``)."""
    halves = (cases[: len(cases) // 2], cases[len(cases) // 2 :])
    for part, other in ((halves[0], halves[1]), (halves[1], halves[0])):
        model = fit_model(other, features, l2, min_ml, max_ml)
        for case in part:
            for c in case["components"]:
                c["score"] = 1.0 if c["ml"] >= max_ml else model.score(c)


def outcome(cases: Sequence[dict[str, Any]], accept: Rule, review_limit: int | None = None) -> dict[str, Any]:
    """Recall per band, precision, and the review list's catch under an accept rule."""
    hits: dict[str, list[int]] = {band: [0, 0] for band, _, _ in RECIST_BINS}
    predicted = true_predicted = caught = missed_total = listed = 0
    for case in cases:
        accepted = [c for c in case["components"] if accept(c)]
        found = {t for c in accepted for t in c["lesions"]}
        predicted += len(accepted)
        true_predicted += sum(bool(c["lesions"]) for c in accepted)
        rest = sorted((c for c in case["components"] if not accept(c)), key=lambda c: -c.get("score", 0.0))
        if review_limit is not None:
            rest = rest[:review_limit]
        listed += len(rest)
        reviewed = {t for c in rest for t in c["lesions"]}
        for lesion in case["lesions"]:
            band = lesion["band"]
            hits[band][1] += 1
            if lesion["lesion"] in found:
                hits[band][0] += 1
            else:
                missed_total += 1
                caught += lesion["lesion"] in reviewed
    return {
        "recall": hits,
        "predicted": predicted,
        "precision": true_predicted / predicted if predicted else float("nan"),
        "review": (caught, missed_total),
        "listed_per_case": listed / max(len(cases), 1),
    }


def row(name: str, out: dict[str, Any]) -> str:
    bands = " | ".join(f"{h}/{n}" for h, n in out["recall"].values())
    caught, missed = out["review"]
    return (
        f"| {name} | {bands} | {out['predicted']} | {out['precision']:.2f} | "
        f"{proportion_text(caught, missed)} | {out['listed_per_case']:.1f} |"
    )


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve (the chance that a true component outscores a false one)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def into_card(
    path: Path,
    cases: Sequence[dict[str, Any]],
    features: Sequence[str],
    l2: float,
    min_ml: float,
    max_ml: float,
    min_score: float,
    seeds: str,
    min_per_class: int,
) -> LogisticModel:
    """Fit the model on every case and write it, with the score floor ``min_score``, into the tumor card at
    ``path`` (validated, written whole; the confidence floor it replaces is removed).

    Raises:
        ValueError: the card is not a tumor card, or fewer than ``min_per_class`` true or false components.
    """
    from SmoothSegNetLib.models.card import write_card_file

    card = json.loads(path.read_text(encoding="utf-8"))
    if card.get("task") != "tumor":
        raise ValueError(f"{path} is not a tumor card (task {card.get('task')!r})")
    rows = [c for case in cases for c in case["components"] if scored(c, min_ml, max_ml)]
    true = sum(bool(c["lesions"]) for c in rows)
    if min(true, len(rows) - true) < min_per_class:
        raise ValueError(
            f"{len(rows)} components of {min_ml:g}-{max_ml:g} ml on seeds {seeds}, {true} on a true lesion: fewer "
            f"than {min_per_class} of each kind to fit a lesion classifier on"
        )
    model = fit_model(cases, features, l2, min_ml, max_ml)
    first, _, end = seeds.partition(":")
    post = card.setdefault("postprocessing", {})
    post.pop("min_lesion_confidence", None)
    post["min_lesion_score"] = min_score
    post["lesion_classifier"] = {
        **model.to_json(),
        "fitted_on": (
            f"tuning phantoms {first}-{int(end) - 1}: the {len(rows)} tumor components of {min_ml:g}-{max_ml:g} ml "
            f"found with every floor off ({true} on a true lesion); L2 {l2:g}; threshold {min_score:g} chosen by "
            "two-fold cross-validation on the same seeds (SmoothSegNetLib.evaluation.lesion_classifier)"
        ),
    }
    write_card_file(path, card)
    return model


def analyse(cases: Sequence[dict[str, Any]], features: Sequence[str], args: argparse.Namespace) -> None:
    """Print the ROC areas and the table of rules, from two-fold scores (see the module docstring)."""
    cross_scores(cases, features, args.l2, args.min_ml, args.max_ml)
    comps = [c for case in cases for c in case["components"] if scored(c, args.min_ml, args.max_ml)]
    truth = [bool(c["lesions"]) for c in comps]
    by_score = auc([c["score"] for c in comps], truth)
    by_mean = auc([c["q_mean"] for c in comps], truth)
    sys.stdout.write(
        f"{len(comps)} components of {args.min_ml:g}-{args.max_ml:g} ml, {sum(truth)} on a true lesion; "
        f"AUC (two-fold): classifier {by_score:.3f}, mean probability {by_mean:.3f}\n"
    )
    bands = " | ".join(band for band, _, _ in RECIST_BINS)
    sys.stdout.write(
        f"\n| rule | {bands} | predicted | precision | review list catch | listed per case |\n"
        + "|---" * (len(RECIST_BINS) + 5)
        + "|\n"
    )

    def card(c: dict[str, Any]) -> bool:
        return bool(c["ml"] >= 0.2 and c["q_mean"] >= 0.7)

    sys.stdout.write(row("card floors (0.2 ml, 0.7)", outcome(cases, card)) + "\n")
    for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):

        def rule(c: dict[str, Any], t: float = t) -> bool:
            return bool(c["ml"] >= args.min_ml and c["score"] >= t)

        sys.stdout.write(row(f"{args.min_ml:g} ml, score >= {t:g}", outcome(cases, rule)) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2064", help="half-open range A:B of tuning phantom seeds")
    parser.add_argument("--cache", type=Path, default=Path("build/lesion-features"), help="feature cache")
    parser.add_argument("--l2", type=float, default=CHOSEN_L2, help="L2 penalty of the logistic fits")
    parser.add_argument("--min-ml", type=float, default=0.2, help="smallest component accepted (the volume floor)")
    parser.add_argument("--max-ml", type=float, default=CHOSEN_MAX_ML, help="components this large are always lesions")
    parser.add_argument(
        "--features", default=",".join(CHOSEN_FEATURES), help=f"comma-separated feature names, of {','.join(FEATURES)}"
    )
    parser.add_argument("--fit", type=Path, default=None, help="write the model fitted on every seed here (JSON)")
    parser.add_argument(
        "--into-card", type=Path, default=None, help="put the model fitted on every seed into this tumor card"
    )
    parser.add_argument("--min-score", type=float, default=CHOSEN_MIN_SCORE, help="the card's score floor")
    parser.add_argument(
        "--min-per-class", type=int, default=10, help="fewest true and false components to fit a card's model on"
    )
    args = parser.parse_args(argv)
    first, _, end = args.seeds.partition(":")
    try:
        cases = load(args.cache, range(int(first), int(end)))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: cannot read the components of seeds {args.seeds} from {args.cache}: {exc}\n")
        return 2
    features = [f for f in args.features.split(",") if f]
    try:
        analyse(cases, features, args)
    except ValueError as exc:  # a half of the seeds holds only true or only false components
        sys.stdout.write(f"no two-fold scores: {exc}\n")
    model = None
    if args.into_card is not None:
        try:
            model = into_card(
                args.into_card,
                cases,
                features,
                args.l2,
                args.min_ml,
                args.max_ml,
                args.min_score,
                args.seeds,
                args.min_per_class,
            )
        except (OSError, ValueError, SmoothSegNetError) as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        sys.stdout.write(
            f"\nwrote the lesion classifier and min_lesion_score {args.min_score:g} into {args.into_card}\n"
        )
    if args.fit is not None:
        if model is None:
            model = fit_model(cases, features, args.l2, args.min_ml, args.max_ml)
        try:
            with atomic_path(args.fit) as tmp:
                tmp.write_text(json.dumps(model.to_json(), indent=2) + "\n", "utf-8")
        except OSError as exc:
            sys.stderr.write(f"error: cannot write the model to {args.fit}: {exc}\n")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
