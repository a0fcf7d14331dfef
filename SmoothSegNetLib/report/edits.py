"""Which lesions were edited by hand since an earlier report, and what of that report still holds.

A lesion is unchanged when its voxels are exactly those of one lesion of the earlier lesion map; it then keeps
that lesion's network confidence and its ``edited`` flag (an edit stays an edit through later runs). Any
other lesion (grown, shrunk, split, merged, drawn) is edited and has no network confidence any more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Warnings that :func:`SmoothSegNetLib.report.measure` writes again from the current edits (not carried).
EDIT_WARNING_MARK = "edited by hand after the network result"


@dataclass(frozen=True)
class CarriedEdits:
    """What a new measurement takes from an earlier report.

    Attributes:
        edited: ids (new numbering) of lesions edited by hand since the network result.
        confidence: network confidence of the unchanged lesions, by new id.
        warnings: the earlier report's warnings, except those about edits (they are written again).
    """

    edited: tuple[int, ...] = ()
    confidence: dict[int, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _same_lesions(previous: np.ndarray, current: np.ndarray) -> dict[int, int]:
    """new id -> old id for every lesion whose voxels are exactly those of one earlier lesion."""
    old = previous.astype(np.int64).ravel()
    new = current.astype(np.int64).ravel()
    old_counts = np.bincount(old)
    new_counts = np.bincount(new)
    either = (old > 0) | (new > 0)
    pairs, joint = np.unique(np.stack([new[either], old[either]]), axis=1, return_counts=True)
    same = {}
    for (n, m), count in zip(pairs.T.tolist(), joint.tolist()):
        if n > 0 and m > 0 and count == new_counts[n] == old_counts[m]:
            same[int(n)] = int(m)
    return same


def carry_edits(
    previous_report: Mapping[str, Any] | None, previous_lesions: np.ndarray | None, lesions: np.ndarray
) -> CarriedEdits:
    """Compare the lesion map ``lesions`` [k, j, i] with the one an earlier report measured.

    Args:
        previous_report: the earlier report.json (``None``: nothing to carry).
        previous_lesions: the lesion map that report measured, on the same grid (``None``: unknown, so no
            lesion can be told unchanged or edited; nothing is marked edited and no confidence is carried).
        lesions: the lesion map measured now.
    """
    if previous_report is None:
        return CarriedEdits()
    from SmoothSegNetLib.report.manual_axes import WARNING_MARKS

    marks = (EDIT_WARNING_MARK, *WARNING_MARKS)  # written again from the current edits and lines
    warnings = tuple(
        w for w in previous_report.get("warnings", []) if isinstance(w, str) and not any(m in w for m in marks)
    )
    if previous_lesions is None or previous_lesions.shape != lesions.shape:
        return CarriedEdits(warnings=warnings)
    entries = {int(e["id"]): e for e in previous_report.get("lesions", []) if isinstance(e, Mapping) and "id" in e}
    same = _same_lesions(previous_lesions, lesions)
    edited, confidence = [], {}
    for n in range(1, int(lesions.max(initial=0)) + 1):
        old = entries.get(same[n]) if n in same else None
        if old is None or old.get("edited"):
            edited.append(n)
        elif old.get("confidence") is not None:
            confidence[n] = float(old["confidence"])
    return CarriedEdits(tuple(edited), confidence, warnings)
