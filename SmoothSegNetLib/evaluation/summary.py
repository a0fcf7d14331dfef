"""Tables and a plot from per-case evaluation results: CSV files, a terminal/markdown table, a PNG."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.evaluation.evaluate import CaseResult, finite_mean
from SmoothSegNetLib.evaluation.lesions import RECIST_BINS, f1_score, proportion_text

CASE_FIELDS = (
    "case",
    "liver_dice",
    "liver_iou",
    "liver_hd95_mm",
    "liver_assd_mm",
    "tumor_dice",
    "tumor_iou",
    "tumor_hd95_mm",
    "tumor_assd_mm",
    "lesions_reference",
    "lesions_predicted",
    "lesion_recall",
    "lesion_precision",
    "lesion_f1",
    "largest_long_axis_mm",
    "tumor_volume_ml",
    "diameter_group",
    "volume_group",
)
LESION_FIELDS = (
    "case",
    "lesion",
    "long_axis_mm",
    "volume_ml",
    "recist_bin",
    "diameter_group",
    "volume_group",
    "detected",
)


def _f(value: float, digits: int = 4) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def case_rows(results: Sequence[CaseResult]) -> list[dict[str, str]]:
    """One CSV row per case (empty cells for undefined values)."""
    rows = []
    for r in results:
        d = r.detection
        rows.append(
            {
                "case": r.case_id,
                "liver_dice": _f(r.liver.dice),
                "liver_iou": _f(r.liver.iou),
                "liver_hd95_mm": _f(r.liver.hd95_mm, 2),
                "liver_assd_mm": _f(r.liver.assd_mm, 2),
                "tumor_dice": _f(r.tumor.dice),
                "tumor_iou": _f(r.tumor.iou),
                "tumor_hd95_mm": _f(r.tumor.hd95_mm, 2),
                "tumor_assd_mm": _f(r.tumor.assd_mm, 2),
                "lesions_reference": str(len(d.lesions)),
                "lesions_predicted": str(d.predicted_count),
                "lesion_recall": _f(d.recall),
                "lesion_precision": _f(d.precision),
                "lesion_f1": _f(d.f1),
                "largest_long_axis_mm": _f(r.largest_long_axis_mm, 1),
                "tumor_volume_ml": _f(r.tumor_volume_ml, 2),
                "diameter_group": r.diameter_group,
                "volume_group": r.volume_group,
            }
        )
    return rows


def lesion_rows(results: Sequence[CaseResult]) -> list[dict[str, str]]:
    """One CSV row per reference lesion."""
    return [
        {
            "case": r.case_id,
            "lesion": str(lesion.id),
            "long_axis_mm": _f(lesion.long_axis_mm, 1),
            "volume_ml": _f(lesion.volume_ml, 3),
            "recist_bin": lesion.recist_bin,
            "diameter_group": lesion.diameter_group,
            "volume_group": lesion.volume_group,
            "detected": "yes" if lesion.detected else "no",
        }
        for r in results
        for lesion in r.lesions
    ]


def write_csv(path: Path, fields: Sequence[str], rows: Sequence[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)


def _mean_sd(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "–"
    return f"{np.mean(finite):.3f} ± {np.std(finite):.3f}" if len(finite) > 1 else f"{finite[0]:.3f}"


def summary_rows(results: Sequence[CaseResult]) -> list[tuple[str, str, str]]:
    """``(group, metric, value)`` rows: overall means, the paper's size groups, RECIST-bin detection."""
    rows: list[tuple[str, str, str]] = []
    n = len(results)
    rows.append((f"all ({n} cases)", "liver Dice", _mean_sd([r.liver.dice for r in results])))
    rows.append((f"all ({n} cases)", "liver IoU", _mean_sd([r.liver.iou for r in results])))
    rows.append((f"all ({n} cases)", "liver HD95 mm", _mean_sd([r.liver.hd95_mm for r in results])))
    rows.append((f"all ({n} cases)", "liver ASSD mm", _mean_sd([r.liver.assd_mm for r in results])))
    with_tumor = [r for r in results if r.lesions]
    m = len(with_tumor)
    rows.append((f"cases with tumor ({m})", "tumor Dice", _mean_sd([r.tumor.dice for r in with_tumor])))
    rows.append((f"cases with tumor ({m})", "tumor IoU", _mean_sd([r.tumor.iou for r in with_tumor])))
    rows.append((f"cases with tumor ({m})", "tumor HD95 mm", _mean_sd([r.tumor.hd95_mm for r in with_tumor])))
    rows.append((f"cases with tumor ({m})", "tumor ASSD mm", _mean_sd([r.tumor.assd_mm for r in with_tumor])))
    for group in ("<10 cm", ">=10 cm"):
        members = [r for r in with_tumor if r.diameter_group == group]
        rows.append(
            (f"largest lesion {group} ({len(members)})", "tumor Dice", _mean_sd([r.tumor.dice for r in members]))
        )
    for group in ("<500 cm3", ">=500 cm3"):
        members = [r for r in with_tumor if r.volume_group == group]
        rows.append((f"tumor volume {group} ({len(members)})", "tumor Dice", _mean_sd([r.tumor.dice for r in members])))
    lesions = [lesion for r in results for lesion in r.lesions]
    predicted = sum(r.detection.predicted_count for r in results)
    true_pos = sum(r.detection.predicted_true_positive for r in results)
    recall = sum(x.detected for x in lesions) / len(lesions) if lesions else math.nan
    precision = true_pos / predicted if predicted else math.nan
    label = f"lesions ({len(lesions)} ref, {predicted} pred)"
    rows.append((label, "detection recall", proportion_text(sum(x.detected for x in lesions), len(lesions))))
    rows.append((label, "detection precision", proportion_text(true_pos, predicted)))
    rows.append((label, "detection F1", _f(f1_score(recall, precision), 3) or "–"))
    for name, _low, _high in RECIST_BINS:
        in_bin = [x for x in lesions if x.recist_bin == name]
        value = proportion_text(sum(x.detected for x in in_bin), len(in_bin))
        rows.append((f"lesions {name} ({len(in_bin)})", "detection recall", value))
    return rows


def format_table(rows: Sequence[tuple[str, str, str]], markdown: bool = False) -> str:
    """The summary as aligned text (or a markdown table)."""
    header = ("group", "metric", "value")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(3)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def summary_dict(results: Sequence[CaseResult]) -> dict[str, Any]:
    """Machine-readable means (NaN-free: undefined values are null)."""

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 4)

    with_tumor = [r for r in results if r.lesions]
    return {
        "cases": len(results),
        "liver_dice_mean": clean(finite_mean([r.liver.dice for r in results])),
        "liver_hd95_mm_mean": clean(finite_mean([r.liver.hd95_mm for r in results])),
        "tumor_dice_mean": clean(finite_mean([r.tumor.dice for r in with_tumor])),
        "tumor_dice_lt_10cm": clean(finite_mean([r.tumor.dice for r in with_tumor if r.diameter_group == "<10 cm"])),
        "tumor_dice_ge_10cm": clean(finite_mean([r.tumor.dice for r in with_tumor if r.diameter_group == ">=10 cm"])),
        "lesion_recall": clean(finite_mean([float(x.detected) for r in results for x in r.lesions])),
    }


def plot_results(results: Sequence[CaseResult], path: Path) -> None:
    """A PNG: per-case liver and tumor Dice by group, and detection recall per RECIST bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    groups = [
        ("liver", [r.liver.dice for r in results]),
        ("tumor", [r.tumor.dice for r in results if r.lesions]),
        ("tumor <10 cm", [r.tumor.dice for r in results if r.lesions and r.diameter_group == "<10 cm"]),
        ("tumor >=10 cm", [r.tumor.dice for r in results if r.lesions and r.diameter_group == ">=10 cm"]),
    ]
    for x, (_name, values) in enumerate(groups):
        if values:
            left.scatter(np.full(len(values), x) + np.linspace(-0.15, 0.15, len(values)), values, s=14)
            left.hlines(np.mean(values), x - 0.3, x + 0.3, colors="black")
    left.set_xticks(range(len(groups)), [f"{g}\n(n={len(v)})" for g, v in groups])
    left.set_ylim(0, 1.02)
    left.set_ylabel("Dice per case")
    left.set_title("Segmentation overlap")
    lesions = [x for r in results for x in r.lesions]
    names = [name for name, _l, _h in RECIST_BINS]
    counts = [len([x for x in lesions if x.recist_bin == n]) for n in names]
    recalls = [sum(x.detected for x in lesions if x.recist_bin == n) / c if c else 0.0 for n, c in zip(names, counts)]
    right.bar(range(len(names)), recalls, color="#ffd200", edgecolor="black")
    right.set_xticks(range(len(names)), [f"{n}\n(n={c})" for n, c in zip(names, counts)])
    right.set_ylim(0, 1.02)
    right.set_ylabel("detection recall")
    right.set_title("Lesion detection by RECIST long axis")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
