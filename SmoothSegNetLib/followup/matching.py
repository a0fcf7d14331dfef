"""Match the lesions of a follow-up to the baseline's, after registration, globally and one-to-one.

Both lesion maps are on the baseline grid (the follow-up's warped through the registration). A pair of
lesions is a *candidate* if they overlap or their centroids lie within ``max_distance_mm``; among the
candidates, :func:`scipy.optimize.linear_sum_assignment` picks the pairing of least total cost
(``1 - Dice + distance / max_distance_mm``), so two lesions never claim the same one and a greedy first
choice cannot steal a better match. Before that, one-to-many overlaps are told apart: a follow-up lesion
covering a sizeable share of two or more baseline lesions is a *merge*; a baseline lesion covering a sizeable
share of two or more follow-up lesions is a *split*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

#: Centroids closer than this (mm) may match even without overlap.
MAX_DISTANCE_MM = 15.0
#: An overlap counts for merge/split if it holds at least this share of the smaller lesion.
PART_SHARE = 0.2
_NO_MATCH = 1e6


@dataclass(frozen=True)
class Match:
    """One row of the tracking table: ``status`` in matched, new, disappeared, merged, split."""

    status: str
    baseline_id: int | None
    followup_id: int | None


def overlap_table(baseline: np.ndarray, followup: np.ndarray) -> np.ndarray:
    """``counts[b, f]``: voxels of baseline lesion b (1-based) inside follow-up lesion f; row/column 0 is background."""
    nb, nf = int(baseline.max(initial=0)), int(followup.max(initial=0))
    flat = baseline.astype(np.int64).ravel() * (nf + 1) + followup.astype(np.int64).ravel()
    return np.bincount(flat, minlength=(nb + 1) * (nf + 1)).reshape(nb + 1, nf + 1)


def _parts(counts: np.ndarray) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Merges (follow-up id -> baseline ids) and splits (baseline id -> follow-up ids)."""
    sizes_b, sizes_f = counts.sum(axis=1), counts.sum(axis=0)
    share = np.zeros(counts.shape, dtype=bool)
    for b in range(1, counts.shape[0]):
        for f in range(1, counts.shape[1]):
            smaller = min(sizes_b[b], sizes_f[f])
            share[b, f] = smaller > 0 and counts[b, f] >= PART_SHARE * smaller
    merges = {f: [int(b) for b in np.flatnonzero(share[:, f])] for f in range(1, counts.shape[1])}
    splits = {b: [int(f) for f in np.flatnonzero(share[b, :])] for b in range(1, counts.shape[0])}
    merges = {f: bs for f, bs in merges.items() if len(bs) >= 2}
    splits = {b: fs for b, fs in splits.items() if len(fs) >= 2}
    # A many-to-many knot is told as merges only (its follow-up lesions each cover several baseline ones).
    splits = {b: fs for b, fs in splits.items() if not any(b in bs for bs in merges.values())}
    return merges, splits


def match_lesions(
    baseline: np.ndarray,
    followup_on_baseline: np.ndarray,
    baseline_centroids_mm: dict[int, np.ndarray],
    followup_centroids_mm: dict[int, np.ndarray],
    max_distance_mm: float = MAX_DISTANCE_MM,
) -> list[Match]:
    """Track lesions from the baseline to one follow-up.

    Args:
        baseline: baseline lesion instance map ``[k, j, i]`` (0 background, lesion ids 1..n).
        followup_on_baseline: the follow-up's instance map warped onto the baseline grid (nearest neighbour).
        baseline_centroids_mm: baseline lesion id -> centroid (baseline LPS mm).
        followup_centroids_mm: follow-up lesion id -> centroid mapped into baseline LPS mm.
        max_distance_mm: centroids within this may match without overlapping.

    Returns:
        Rows ordered: baseline lesions by id (matched, merged, split, disappeared), then new lesions.
    """
    if baseline.shape != followup_on_baseline.shape:
        raise ValueError(f"lesion maps differ in shape: {baseline.shape} vs {followup_on_baseline.shape}")
    b_ids, f_ids = sorted(baseline_centroids_mm), sorted(followup_centroids_mm)
    nb, nf = max(b_ids, default=0), max(f_ids, default=0)
    counts = np.zeros((nb + 1, nf + 1), dtype=np.int64)
    table = overlap_table(baseline, followup_on_baseline)
    counts[: min(table.shape[0], nb + 1), : min(table.shape[1], nf + 1)] = table[: nb + 1, : nf + 1]
    merges, splits = _parts(counts)
    in_merge_b = {b for bs in merges.values() for b in bs}
    in_split_f = {f for fs in splits.values() for f in fs}
    free_b = [b for b in b_ids if b not in in_merge_b and b not in splits]
    free_f = [f for f in f_ids if f not in merges and f not in in_split_f]
    pairs = _assign(counts, free_b, free_f, baseline_centroids_mm, followup_centroids_mm, max_distance_mm)
    rows: list[Match] = []
    for b in b_ids:
        if b in splits:
            rows += [Match("split", b, f) for f in splits[b]]
        elif b in in_merge_b:
            rows.append(Match("merged", b, next(f for f, bs in merges.items() if b in bs)))
        elif b in pairs:
            rows.append(Match("matched", b, pairs[b]))
        else:
            rows.append(Match("disappeared", b, None))
    claimed = set(pairs.values()) | set(merges) | in_split_f
    rows += [Match("new", None, f) for f in f_ids if f not in claimed]
    return rows


def _assign(
    counts: np.ndarray,
    free_b: list[int],
    free_f: list[int],
    cb: dict[int, np.ndarray],
    cf: dict[int, np.ndarray],
    max_distance_mm: float,
) -> dict[int, int]:
    if not free_b or not free_f:
        return {}
    sizes_b, sizes_f = counts.sum(axis=1), counts.sum(axis=0)
    cost = np.full((len(free_b), len(free_f)), _NO_MATCH)
    for r, b in enumerate(free_b):
        for c, f in enumerate(free_f):
            distance = float(np.linalg.norm(np.asarray(cb[b]) - np.asarray(cf[f])))
            overlap = int(counts[b, f])
            if overlap == 0 and distance > max_distance_mm:
                continue
            total = int(sizes_b[b] + sizes_f[f])
            dice = 2.0 * overlap / total if total else 0.0
            cost[r, c] = 1.0 - dice + distance / max_distance_mm
    rows, cols = linear_sum_assignment(cost)
    return {free_b[r]: free_f[c] for r, c in zip(rows, cols) if cost[r, c] < _NO_MATCH}
