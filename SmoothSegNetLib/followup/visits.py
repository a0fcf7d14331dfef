"""Reading the visits of a follow-up: each an output folder of ``segment`` or ``report``, with its CT.

A visit folder must hold ``report.json``, ``segmentation.nrrd`` (1 liver, 2 tumor) and ``lesions.nrrd``
(lesion k has value k, as in the report). The CT is the one the report names (``input.path``, or
``input.source`` when that is an existing path) unless overridden.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.volume import CTVolume

PHASES = ("arterial", "portal_venous", "non_contrast", "unknown")


@dataclass(frozen=True, eq=False)
class Visit:
    """One visit: its folder, report, CT, labels ``[k, j, i]`` and lesion instances on the CT grid."""

    index: int
    folder: Path
    report: dict[str, Any]
    ct: CTVolume
    ct_path: str
    labels: np.ndarray
    lesions: np.ndarray
    phase: str

    @property
    def dicom(self) -> dict[str, Any]:
        return dict(self.report.get("input", {}).get("dicom") or {})

    @property
    def patient_id(self) -> str | None:
        return self.dicom.get("patient_id")

    @property
    def study_date(self) -> str | None:
        return self.dicom.get("study_date")

    def lesion_entries(self) -> dict[int, dict[str, Any]]:
        return {int(e["id"]): e for e in self.report.get("lesions", [])}


def _ct_path(index: int, folder: Path, report: dict[str, Any], override: str | None) -> str:
    if override is not None:
        return override
    entry = report.get("input", {})
    for key in ("path", "source"):
        value = entry.get(key)
        if value and Path(value).exists():
            return str(value)
    raise InputError(
        f"visit {index} ({folder}): report.json names no CT that exists here (input.source "
        f"{entry.get('source')!r}): pass --image {index}=PATH"
    )


def load_visit(index: int, folder: str | Path, image: str | None, phase: str, labelmap: str | None = None) -> Visit:
    """Read one visit folder (``index`` 0 is the baseline); ``image``/``labelmap`` override its CT/labelmap.

    Label values other than 1 (liver) and 2 (tumor), e.g. a phantom's vessels, are read as background.

    Raises:
        InputError: no report.json, missing labelmaps, no CT, grids or lesion ids that disagree.
    """
    from SmoothSegNetLib.io import read_volume
    from SmoothSegNetLib.report.inputs import read_labelmap, require_same_grid

    root = Path(folder)
    report_path = root / "report.json"
    if not report_path.is_file():
        raise InputError(
            f"visit {index} ({root}) has no report.json: give an output folder of 'smoothsegnet segment' or 'report'"
        )
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"visit {index}: cannot read {report_path}: {exc}") from exc
    if not (root / "lesions.nrrd").is_file():
        raise InputError(f"visit {index} ({root}) has no lesions.nrrd: rerun 'smoothsegnet report' into that folder")
    segmentation = Path(labelmap) if labelmap is not None else root / "segmentation.nrrd"
    if not segmentation.is_file():
        raise InputError(
            f"visit {index} ({root}) has no segmentation.nrrd (a 'report' folder keeps its labelmap elsewhere): "
            f"pass --labels {index}=LABELMAP"
        )
    ct_path = _ct_path(index, root, report, image)
    ct = read_volume(ct_path)
    labels, g_labels = read_labelmap(segmentation, f"visit {index} labelmap")
    lesions, g_lesions = read_labelmap(root / "lesions.nrrd", f"visit {index} lesions.nrrd")
    require_same_grid(g_labels, ct, f"visit {index} labelmap")
    require_same_grid(g_lesions, ct, f"visit {index} lesions.nrrd")
    ids = sorted(int(v) for v in np.unique(lesions) if v)
    listed = sorted(int(e["id"]) for e in report.get("lesions", []))
    if ids != listed:
        raise InputError(
            f"visit {index} ({root}): lesions.nrrd holds lesion ids {ids[:8]} but report.json lists {listed[:8]}: "
            "rerun 'smoothsegnet report' so both agree"
        )
    labels = np.where(np.isin(labels, (1, 2)), labels, 0).astype(np.uint8)
    return Visit(index, root, report, ct, str(ct_path), labels, np.asarray(lesions), phase)


def check_visits(visits: Sequence[Visit]) -> None:
    """The visits show one patient (DICOM Patient ID where known) in date order (StudyDate where known; equal
    dates are allowed)."""
    known = [(v.index, v.patient_id) for v in visits if v.patient_id]
    if len({pid for _, pid in known}) > 1:
        listing = ", ".join(f"visit {i}: {pid}" for i, pid in known)
        raise InputError(f"the visits are from different patients (DICOM Patient ID {listing}): give one patient's")
    dated = [(v.index, v.study_date) for v in visits if v.study_date]
    for (i, a), (j, b) in itertools.pairwise(dated):
        if str(b) < str(a):  # the same day is allowed (e.g. a repeated scan)
            raise InputError(
                f"visit {j} (study date {b}) is before visit {i} (study date {a}): give the baseline first and "
                "the follow-ups in date order"
            )


def parse_overrides(items: Sequence[str], option: str, count: int, allowed: Sequence[str] | None = None) -> dict:
    """``N=VALUE`` items (N a visit index 0..count-1); a bare VALUE applies to every visit (key -1)."""
    out: dict[int, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            key, value = "-1", item
        try:
            n = int(key)
        except ValueError as exc:
            raise InputError(
                f"{option} must be N=VALUE with N a visit number, got {item!r}: e.g. {option} 1=ct.nrrd"
            ) from exc
        if n != -1 and not 0 <= n < count:
            raise InputError(f"{option} {item!r}: visit number must be 0..{count - 1} (0 is the baseline)")
        if allowed is not None and value not in allowed:
            raise InputError(f"{option} {item!r}: the value must be one of {', '.join(allowed)}")
        out[n] = value
    return out
