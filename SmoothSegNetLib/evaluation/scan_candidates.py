"""Evaluation of the liver scan (:mod:`SmoothSegNetLib.correction.scan`): how many missed lesions its findings
touch, at how many false findings per case, and the fit of its score model.

Reads the cache of :mod:`SmoothSegNetLib.evaluation.missed_lesions` (the pipeline's lesions on each phantom's
evaluation grid), makes each phantom again, scans it with every finding kept (no model, no limit) and records,
per finding, its features and the true lesions it touches (``scan-<seed>.json`` in ``--out``), and per true
lesion its long axis and whether the pipeline found it. Then the score model is fitted on half of the seeds
(by parity) and scored on the other half, both ways, so that every figure comes from a model that never saw
that phantom: the missed lesions (no accepted voxel) that one of the case's ``limit`` best findings touches,
per size band, and the findings per case on no lesion. ``--fit FILE`` writes the bundled settings with the
model fitted on every seed given.

Run: ``python -m SmoothSegNetLib.evaluation.scan_candidates --seeds 2004:2064 --cache build/add-lesion
--out build/scan`` (tuning seeds: the limit is chosen on them, and ``--model`` scores a fitted model on them).

``--true-liver`` records training phantoms instead, with no cache: each seed is made on its evaluation grid
(``--in-plane-factor``) and scanned with its true liver and no lesion found, so every lesion is a positive;
``--fit FILE --max-long-axis-mm 25`` then fits the model on the findings of lesions under 25 mm (those only on
larger lesions, which the network finds, are left out). The logistic model fitted that way was not bundled
(docs/small-lesions.md, section 13); ``--trees`` fits boosted trees instead, and ``--model FILE --calibrate OUT``
(tuning seeds) calibrates their scores on the pipeline's findings without changing their order: the bundled model
since card 0.4.3 (section 14): ``--true-liver --in-plane-factor 1 --seeds 1100:1600 --out build/scan-train
--max-long-axis-mm 25 --trees --fit FILE``, then ``--seeds 2004:2064 --out build/scan-full --model FILE
--calibrate Resources/Correction/scan.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.evaluation.lesions import RECIST_BINS, recist_bin
from SmoothSegNetLib.evaluation.missed_lesions import (
    IN_PLANE_FACTOR,
    evaluation_grid,
    in_plane_factor_arg,
    record_grid,
    true_lesion_mask,
)

if TYPE_CHECKING:
    from SmoothSegNetLib.correction.scan import ScanSettings
    from SmoothSegNetLib.inference.boosted_trees import BoostedTrees

log = logging.getLogger(__name__)

#: The score model's features and regularisation (chosen on tuning seeds 2004-2063, two-fold).
DEFAULT_FEATURES = (
    "hu",
    "ring_hu",
    "contrast",
    "abs_contrast",
    "depth",
    "continues",
    "log_ml",
    "log_strength",
    "ratio_small",
    "flat",
    "thin",
    "fill",
)
DEFAULT_L2 = 20.0
#: The boosted trees' features (``--trees``): the logistic model's and the seed's middle curvature ratio, scale,
#: sign and whether the finding is a small one (a tree can use a feature that matters on one side of a split only).
TREE_FEATURES = (*DEFAULT_FEATURES, "ratio_mid", "scale_mm", "bright", "small")


def fit_model(
    rows: Sequence[dict[str, Any]], labels: Sequence[bool], features: Sequence[str], l2: float, trees: bool = False
) -> Any:
    """The score model: boosted trees (``trees``; :mod:`SmoothSegNetLib.inference.boosted_trees`, default
    settings) or the L2-regularised logistic model."""
    from SmoothSegNetLib.correction.scan import SCAN_FEATURES

    if trees:
        from SmoothSegNetLib.inference.boosted_trees import fit_boosted_trees

        return fit_boosted_trees(rows, labels, features, vocabulary=SCAN_FEATURES)
    from SmoothSegNetLib.inference.lesion_classifier import fit_logistic

    return fit_logistic(rows, labels, features, l2, vocabulary=SCAN_FEATURES)


def collection_settings(small_radius_mm: float | None = None) -> ScanSettings:
    """The scan settings records are collected with: the bundled ones without their model (every finding is
    kept), with ``small_radius_mm`` if given."""
    from SmoothSegNetLib.correction.scan import default_scan_settings

    settings = replace(default_scan_settings(), model=None)
    return settings if small_radius_mm is None else replace(settings, small_radius_mm=small_radius_mm)


def collect_seed(
    seed: int,
    cache: Path | None,
    out: Path,
    min_radius_mm: float | None = None,
    small_radius_mm: float | None = None,
    in_plane_factor: float = IN_PLANE_FACTOR,
) -> dict[str, Any] | None:
    """Scan one cached phantom (or read its record); ``None`` when the cache skipped it. Without a cache (a
    training phantom, made on :func:`evaluation_grid` with ``in_plane_factor``), the scan sees the true liver
    with every lesion in it and no lesion found, so each true lesion is recorded as not found."""
    from SmoothSegNetLib.correction.scan import scan_findings
    from SmoothSegNetLib.correction.settings import default_settings
    from SmoothSegNetLib.phantom import make_phantom
    from SmoothSegNetLib.report.recist import recist_axes

    path = out / f"scan-{seed}.json"
    if path.is_file():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    if cache is None:
        # A training phantom: the true liver (its lesions included) and no lesion found, so that every lesion
        # the scan touches is a positive (see labelled).
        phantom = make_phantom(seed, *evaluation_grid(seed, in_plane_factor))
        labelmap = ((phantom.labels == 1) | (phantom.labels == 2)).astype(np.uint8)
        lesions = np.zeros(labelmap.shape, np.int32)
    else:
        record = json.loads((cache / f"missed-{seed}.json").read_text(encoding="utf-8"))
        if record.get("skipped"):
            return None
        phantom = make_phantom(seed, *record_grid(seed, record))
        stored = np.load(cache / f"seg-{seed}.npz")
        labelmap, lesions = stored["labelmap"], stored["lesions"]
    geometry = phantom.ct.geometry
    ids = np.zeros(labelmap.shape, np.int32)
    truth = []
    for lesion in range(1, len(phantom.lesions) + 1):
        mask = true_lesion_mask(phantom.tissues, lesion)
        if not mask.any():
            continue
        ids[mask] = lesion
        axes = recist_axes(mask, geometry)
        truth.append(
            {
                "id": lesion,
                "long_axis_mm": round(float(axes.long_axis_mm) if axes else 0.0, 2),
                "found": bool((labelmap[mask] == 2).any()),
            }
        )
    settings = collection_settings(small_radius_mm)
    t0 = time.perf_counter()
    search = default_settings()
    if min_radius_mm is not None:
        search = replace(search, min_radius_mm=min_radius_mm)
    findings = scan_findings(phantom.ct.array, geometry, labelmap, lesions, settings, search)
    seconds = time.perf_counter() - t0
    rows = []
    for rank, f in enumerate(findings):
        hits = sorted({int(v) for v in np.unique(ids[f.box][f.mask]) if v > 0})
        rows.append({"rank": rank, "hits": hits, "seed_kji": list(f.seed_kji), **f.features})
    data = {"seed": seed, "truth": truth, "findings": rows, "seconds": round(seconds, 2)}
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
    tmp.replace(path)
    log.info("seed %d: %d finding(s) in %.1f s", seed, len(rows), seconds)
    return data


def positive(case: dict[str, Any], finding: dict[str, Any]) -> bool:
    """A finding that touches a lesion the pipeline missed."""
    missed = {t["id"] for t in case["truth"] if not t["found"]}
    return any(h in missed for h in finding["hits"])


def labelled(
    cases: Sequence[dict[str, Any]], max_long_mm: float | None = None
) -> tuple[list[dict[str, Any]], list[bool]]:
    """The findings a model is fitted on and their labels (:func:`positive`). With ``max_long_mm``, a finding
    touches a missed lesion under that long axis to be positive, and one that touches only larger missed lesions
    is left out: on training phantoms scanned with the true liver, the large lesions (which the network finds)
    would otherwise give most of the positives."""
    rows: list[dict[str, Any]] = []
    labels: list[bool] = []
    for case in cases:
        missed = {t["id"]: t["long_axis_mm"] for t in case["truth"] if not t["found"]}
        for f in case["findings"]:
            touched = [missed[h] for h in f["hits"] if h in missed]
            small = [a for a in touched if max_long_mm is None or a < max_long_mm]
            if touched and not small:
                continue
            rows.append(f)
            labels.append(bool(small))
    return rows, labels


def cross_scores(
    cases: Sequence[dict[str, Any]], features: Sequence[str], l2: float, trees: bool = False
) -> list[list[float]]:
    """Two-fold scores (by seed parity) of every finding of every case."""
    scores = [[0.0] * len(c["findings"]) for c in cases]
    for fold in (0, 1):
        train = [(f, positive(c, f)) for c in cases if c["seed"] % 2 != fold for f in c["findings"]]
        model = fit_model([f for f, _ in train], [y for _, y in train], features, l2, trees)
        for n, c in enumerate(cases):
            if c["seed"] % 2 == fold:
                scores[n] = [model.score(f) for f in c["findings"]]
    return scores


def outcome(cases: Sequence[dict[str, Any]], scores: Sequence[Sequence[float]], limit: int) -> dict[str, Any]:
    """Missed lesions touched by each case's ``limit`` best findings, by band; findings kept and on no lesion."""
    caught: dict[str, int] = {}
    missed: dict[str, int] = {}
    kept = false = 0
    for case, score in zip(cases, scores):
        order = sorted(range(len(score)), key=lambda n: -score[n])[:limit]
        hits = {h for n in order for h in case["findings"][n]["hits"]}
        kept += len(order)
        false += sum(1 for n in order if not case["findings"][n]["hits"])
        for t in case["truth"]:
            if t["found"]:
                continue
            name = recist_bin(t["long_axis_mm"])
            missed[name] = missed.get(name, 0) + 1
            caught[name] = caught.get(name, 0) + (t["id"] in hits)
    return {"caught": caught, "missed": missed, "kept": kept, "false": false, "cases": len(cases)}


def row(name: str, out: dict[str, Any]) -> str:
    bands = " | ".join(f"{out['caught'].get(b, 0)}/{out['missed'].get(b, 0)}" for b, _, _ in RECIST_BINS)
    total, of = sum(out["caught"].values()), sum(out["missed"].values())
    cases = max(out["cases"], 1)
    return (
        f"| {name} | {bands} | {total}/{of} ({total / max(of, 1):.2f}) | {out['kept'] / cases:.1f} "
        f"| {out['false'] / cases:.1f} |"
    )


def table(
    cases: Sequence[dict[str, Any]],
    features: Sequence[str],
    l2: float,
    limits: Sequence[int],
    model: Any = None,
    trees: bool = False,
) -> str:
    """The catch table; scores from two-fold fits (boosted trees with ``trees``), or from ``model`` (a fitted
    one: held-out seeds)."""
    from SmoothSegNetLib.evaluation.lesion_classifier import auc

    if model is not None:
        scores = [[model.score(f) for f in c["findings"]] for c in cases]
    else:
        scores = cross_scores(cases, features, l2, trees)
    strength = [[f["log_strength"] for f in c["findings"]] for c in cases]
    flat = [s for case in scores for s in case]
    labels = [positive(c, f) for c in cases for f in c["findings"]]
    head = [
        f"{len(cases)} cases, {len(labels)} findings, {sum(labels)} on a missed lesion; "
        f"{'ROC area' if model is not None else 'two-fold ROC area'} "
        f"{auc(flat, labels):.3f} (seed strength alone {auc([s for c in strength for s in c], labels):.3f})",
        "",
        "| findings kept per case | <10 mm | 10-20 mm | 20-50 mm | >50 mm | missed lesions touched | kept per case "
        "| on no lesion per case |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines = [row(f"{limit}, by score", outcome(cases, scores, limit)) for limit in limits]
    lines += [row(f"{limit}, by seed strength", outcome(cases, strength, limit)) for limit in limits]
    every = max(len(c["findings"]) for c in cases) if cases else 0
    lines.append(row("all", outcome(cases, scores, every)))
    return "\n".join(head + lines)


def fit_file(
    cases: Sequence[dict[str, Any]],
    features: Sequence[str],
    l2: float,
    path: Path,
    settings: ScanSettings | None = None,
    max_long_mm: float | None = None,
    training: bool = False,
    trees: bool = False,
) -> None:
    """Write the scan settings (``settings``, default the bundled ones) with the model fitted on every case
    (:func:`labelled` with ``max_long_mm``); ``training``: the cases are training phantoms scanned with the true
    liver (``--true-liver``), not tuning phantoms segmented by the pipeline; ``trees``: boosted trees instead of
    the logistic model."""
    rows, labels = labelled(cases, max_long_mm)
    model = fit_model(rows, labels, features, l2, trees)
    data: dict[str, Any] = {"schema": "smoothsegnet.scan_settings/1"}
    used = settings if settings is not None else collection_settings()
    names = (
        *("grid_mm", "scales_mm", "clip_hu", "seeds", "separation_mm", "edge_mm", "clearance_mm", "window_mm"),
        *("max_contrast_hu", "small_radius_mm", "small_smoothing_mm", "small_min_ml"),
    )
    for name in names:
        value = getattr(used, name)
        data[name] = list(value) if isinstance(value, tuple) else value
    data.update(min_score=0.0, model=model.to_json())
    seeds = sorted(c["seed"] for c in cases)
    how = f"boosted trees ({_tree_settings_text()})" if trees else f"L2 {l2:g}"
    if training:
        under = "" if max_long_mm is None else f" under {max_long_mm:g} mm (findings only on larger lesions left out)"
        data["tuning"] = (
            f"Fitted on training phantoms {seeds[0]}-{seeds[-1]} ({len(cases)} cases), scanned "
            f"with the true liver and no lesion found: {len(rows)} findings, {sum(labels)} on a lesion{under}, by "
            f"SmoothSegNetLib.evaluation.scan_candidates --true-liver --fit{' --trees' if trees else ''}; features "
            f"{list(features)}, {how}. Tuning phantoms are left to score it (--model). See docs/small-lesions.md, "
            f"sections 13 and 14."
        )
    else:
        data["tuning"] = (
            f"Fitted on tuning phantoms {seeds[0]}-{seeds[-1]} ({len(cases)} cases, {len(rows)} findings, "
            f"{sum(labels)} on a lesion the pipeline missed) by SmoothSegNetLib.evaluation.scan_candidates --fit; "
            f"features {list(features)}, {how}. See docs/small-lesions.md, sections 9 and 10."
        )
    _write_settings(data, path)


def _write_settings(data: dict[str, Any], path: Path) -> None:
    """Write scan settings under a temporary name, check that they load, then rename them into place."""
    from SmoothSegNetLib.correction.scan import ScanSettings

    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    try:
        ScanSettings.from_dict(json.loads(tmp.read_text(encoding="utf-8")))  # the file must load
    except BaseException:
        tmp.unlink()
        raise
    tmp.replace(path)


def calibrate_file(cases: Sequence[dict[str, Any]], model_path: Path, path: Path) -> BoostedTrees:
    """Write the settings of ``model_path`` with its boosted trees calibrated on these cases' findings (every
    finding, labelled by :func:`positive`) and return the calibrated trees: the scores then say how often a
    finding so scored lay on a lesion the pipeline missed, and the ranking is unchanged."""
    from SmoothSegNetLib.correction.scan import ScanSettings
    from SmoothSegNetLib.inference.boosted_trees import BoostedTrees, fit_calibration

    data = json.loads(model_path.read_text(encoding="utf-8"))
    model = ScanSettings.from_dict(data).model
    if not isinstance(model, BoostedTrees):
        raise InputError(f"{model_path}: only a boosted-trees model is calibrated here")
    rows = [(model.log_odds(f), positive(c, f)) for c in cases for f in c["findings"]]
    try:
        slope, offset = fit_calibration([z for z, _ in rows], [y for _, y in rows])
    except ValueError as exc:  # no finding, none on a missed lesion, or a backward ranking
        raise InputError(
            f"cannot calibrate {model_path} on {len(cases)} case(s), {len(rows)} finding(s): {exc}"
        ) from exc
    calibrated = replace(model, slope=slope, offset=offset)
    data["model"] = calibrated.to_json()
    seeds = sorted(c["seed"] for c in cases)
    data["tuning"] = str(data.get("tuning", "")).split(" Calibrated on")[0] + (
        f" Calibrated on tuning phantoms {seeds[0]}-{seeds[-1]} ({len(cases)} cases segmented by the pipeline, "
        f"{len(rows)} findings, {sum(y for _, y in rows)} on a lesion it missed) by scan_candidates --model "
        f"--calibrate: slope {slope:.4f}, offset {offset:.4f} (the ranking is unchanged)."
    )
    _write_settings(data, path)
    return calibrated


def _tree_settings_text() -> str:
    from importlib.metadata import version

    from SmoothSegNetLib.inference.boosted_trees import TreeSettings

    s = TreeSettings()
    return (
        f"{s.iterations} iterations, learning rate {s.learning_rate:g}, at most {s.max_leaf_nodes} leaves, "
        f"{s.min_samples_leaf} findings per leaf, L2 {s.l2:g}; scikit-learn {version('scikit-learn')}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2004:2064", help="half-open range A:B of phantom seeds")
    parser.add_argument("--cache", type=Path, default=Path("build/add-lesion"), help="the missed_lesions cache")
    parser.add_argument("--out", type=Path, default=Path("build/scan"), help="where the scan records go")
    parser.add_argument(
        "--features", default=None, help="comma-separated (default: the logistic model's, or --trees' own)"
    )
    parser.add_argument(
        "--trees", action="store_true", help="boosted trees instead of the logistic model (fitting needs scikit-learn)"
    )
    parser.add_argument("--l2", type=float, default=DEFAULT_L2)
    parser.add_argument("--limits", default="1,2,3,5", help="findings kept per case, comma-separated")
    parser.add_argument("--min-radius", type=float, default=None, help="the search's min_radius_mm (tuning)")
    parser.add_argument(
        "--small-radius", type=float, default=None, help="the scan's small_radius_mm (tuning; default the bundled)"
    )
    parser.add_argument(
        "--true-liver",
        action="store_true",
        help="training phantoms: scan each seed's true liver with no lesion found (no cache; --fit then fits on them)",
    )
    parser.add_argument(
        "--in-plane-factor",
        type=in_plane_factor_arg,
        default=IN_PLANE_FACTOR,
        help=f"with --true-liver: the phantoms' grid (default {IN_PLANE_FACTOR:g}; 1: the held-out grid)",
    )
    parser.add_argument(
        "--max-long-axis-mm",
        type=float,
        default=None,
        help="fit on findings of missed lesions under this long axis only (others on larger lesions left out)",
    )
    parser.add_argument(
        "--calibrate",
        type=Path,
        default=None,
        help="with --model (boosted trees): write its settings with the trees calibrated on these seeds' findings",
    )
    parser.add_argument("--only", default=None, help="collect only seeds with seed %% N == R (N:R), no table")
    parser.add_argument("--fit", type=Path, default=None, help="write the settings with the model fitted on all")
    parser.add_argument(
        "--model", type=Path, default=None, help="score with the model of these settings (held-out seeds), no fit"
    )
    args = parser.parse_args(argv)
    if args.calibrate and (not args.model or args.true_liver):
        parser.error("--calibrate needs --model, and tuning phantoms segmented by the pipeline (not --true-liver)")
    model = None
    if args.model:  # read before any record is made: a bad file or a model --calibrate cannot take ends here
        from SmoothSegNetLib.correction.scan import ScanSettings
        from SmoothSegNetLib.inference.boosted_trees import BoostedTrees

        try:
            model = ScanSettings.from_dict(json.loads(args.model.read_text(encoding="utf-8"))).model
        except (OSError, ValueError, InputError) as exc:
            parser.error(f"--model {args.model}: {exc}")
        if args.calibrate and not isinstance(model, BoostedTrees):
            parser.error(f"--calibrate: {args.model} holds no boosted trees (only they are calibrated)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    first, _, end = args.seeds.partition(":")
    seeds = range(int(first), int(end))
    cache = None if args.true_liver else args.cache

    def collect(seed: int) -> dict[str, Any] | None:
        if cache is not None and not (cache / f"missed-{seed}.json").is_file():
            return None
        return collect_seed(seed, cache, args.out, args.min_radius, args.small_radius, args.in_plane_factor)

    if args.only:
        n, r = (int(v) for v in args.only.split(":"))
        for seed in (s for s in seeds if s % n == r):
            collect(seed)
        return 0
    cases = [case for case in map(collect, seeds) if case is not None]
    default = TREE_FEATURES if args.trees else DEFAULT_FEATURES
    features = [f for f in args.features.split(",") if f] if args.features else list(default)
    if args.true_liver:
        rows, labels = labelled(cases, args.max_long_axis_mm)
        sys.stdout.write(f"{len(cases)} training cases, {len(rows)} findings, {sum(labels)} positive\n")
        if args.fit:
            settings = collection_settings(args.small_radius)
            fit_file(
                cases, features, args.l2, args.fit, settings, args.max_long_axis_mm, training=True, trees=args.trees
            )
            sys.stdout.write(f"wrote {args.fit}\n")
        return 0
    if args.calibrate:
        try:
            model = calibrate_file(cases, args.model, args.calibrate)
        except InputError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        sys.stdout.write(f"wrote {args.calibrate}\n")
    limits = [int(v) for v in args.limits.split(",")]
    sys.stdout.write(table(cases, features, args.l2, limits, model, args.trees) + "\n")
    if args.fit:
        fit_file(
            cases,
            features,
            args.l2,
            args.fit,
            collection_settings(args.small_radius),
            args.max_long_axis_mm,
            trees=args.trees,
        )
        sys.stdout.write(f"wrote {args.fit}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
