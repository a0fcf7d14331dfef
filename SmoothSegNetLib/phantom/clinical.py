"""A synthetic clinical record per phantom, with the HCC-TACE-Seg variable names, related to the tumor burden.

The record is drawn *after* the labels, from the true tumor-to-liver volume ratio (TLVR) and the lesions,
with noise: AFP, portal vein thrombosis, vascular invasion, nodes and metastases become likelier with
burden; CLIP, Okuda, TNM (AJCC 7th) and BCLC are then derived from those values by their definitions,
simplified. So a regression from the record predicts TLVR moderately well, as the label-smoothing method
needs, without revealing it. The true TLVR is kept apart, under ``ground_truth``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from SmoothSegNetLib.resources import RESOURCES_DIR

if TYPE_CHECKING:
    from SmoothSegNetLib.phantom.generator import Lesion

VARIABLES_PATH = RESOURCES_DIR / "Clinical" / "hcc_tace_variables.json"
SCHEMA = "smoothsegnet.phantom-clinical/1"
TNM_STAGES = ("Stage-I", "Stage-II", "Stage-IIIA", "Stage-IIIB", "Stage-IIIC", "Stage-IVA", "Stage-IVB")


@functools.lru_cache(maxsize=1)
def load_variables() -> dict[str, Any]:
    """The variable table ``Resources/Clinical/hcc_tace_variables.json``."""
    with VARIABLES_PATH.open(encoding="utf-8") as handle:
        table: dict[str, Any] = json.load(handle)
    return table


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def _age_group(age: int) -> str:
    for limit, name in ((40, "<=40"), (50, "41-50"), (60, "51-60"), (70, "61-70")):
        if age <= limit:
            return name
    return ">70"


def _tnm(
    count: int, largest_cm: float, vascular: bool, pvt: bool, nodes: bool, metastasis: bool, adjacent: bool
) -> str:
    if metastasis:
        return "Stage-IVB"
    if nodes:
        return "Stage-IVA"
    if adjacent:
        return "Stage-IIIC"
    if pvt:
        return "Stage-IIIB"
    if count >= 2 and largest_cm > 5.0:
        return "Stage-IIIA"
    if (count <= 1 and vascular) or count >= 2:
        return "Stage-II"
    return "Stage-I"


def _bclc(cps: str, ps: int, count: int, largest_cm: float, invasive: bool) -> str:
    if cps == "C" or ps > 2:
        return "Stage-D"
    if invasive or ps > 0:
        return "Stage-C"
    if count > 3 or (count >= 2 and largest_cm > 3.0):
        return "Stage-B"
    if count <= 1 and largest_cm <= 2.0 and cps == "A":
        return "0"
    return "Stage-A"


def make_clinical_record(
    rng: np.random.Generator, seed: int, tlvr: float, lesions: Sequence[Lesion], cirrhosis: bool
) -> dict[str, Any]:
    """The clinical record of one phantom (``clinical.json`` content).

    Args:
        rng: the phantom's clinical random stream.
        seed: the phantom seed (gives ``TCIA_ID``).
        tlvr: true tumor / (liver + tumor) volume ratio from the labels.
        lesions: lesion ground truth (count and largest diameter enter the staging).
        cirrhosis: whether the phantom's liver was drawn cirrhotic (nodular, shrunken right lobe).
    """
    burden = float(np.sqrt(max(tlvr, 0.0)))
    visible = [les for les in lesions if les.volume_ml > 0]
    count = len(visible)
    largest_cm = max((les.diameters_mm[0] for les in visible), default=0.0) / 10.0
    liver_function = 0.6 * cirrhosis + 1.5 * burden + rng.normal(0.0, 0.45)
    cps = "A" if liver_function < 0.9 else ("B" if liver_function < 1.7 else "C")
    cps_points = {"A": 0, "B": 1, "C": 2}[cps]
    multinodular = (count >= 2) != (rng.random() < 0.05)
    involvement_high = tlvr + rng.normal(0.0, 0.05) > 0.5
    afp = float(10 ** np.clip(0.8 + 5.0 * burden + rng.normal(0.0, 0.7), 0.0, 6.0))
    pvt = rng.random() < _sigmoid(-3.0 + 9.0 * burden)
    vascular = pvt or rng.random() < _sigmoid(-2.5 + 8.0 * burden)
    nodes = rng.random() < _sigmoid(-3.5 + 5.0 * burden)
    metastasis = rng.random() < _sigmoid(-4.0 + 6.0 * burden)
    adjacent = largest_cm > 10.0 and rng.random() < 0.3
    morphology = 2 if involvement_high else (1 if multinodular else 0)
    clip = min(cps_points + morphology + int(afp >= 400) + int(pvt), 6)
    okuda_points = int(involvement_high) + sum(rng.random() < _sigmoid(-2.5 + 1.5 * cps_points) for _ in range(3))
    okuda = "Stage I" if okuda_points == 0 else ("Stage II" if okuda_points <= 2 else "Stage III")
    ps = int(np.clip(np.floor(rng.normal(1.2 * burden, 0.5) + 0.3), 0, 4))
    age = int(np.clip(round(rng.normal(63.0, 10.0)), 30, 90))
    hepatitis = str(rng.choice(["No virus", "HBV only", "HCV only", "HCV and HBV"], p=[0.35, 0.2, 0.35, 0.1]))
    variables = {
        "Sex": "M" if rng.random() < 0.8 else "F",
        "age": age,
        "agegp": _age_group(age),
        "hepatitis": hepatitis,
        "Evidence_of_cirh": "Yes" if cirrhosis else "No",
        "CPS": cps,
        "tumor_nodul": "multinodular" if multinodular else "uninodular",
        "T_involvment": ">50%" if involvement_high else "< or = 50%",
        "AFP": round(afp, 1),
        "AFP_group": ">=400" if afp >= 400 else "<400",
        "Portal Vein Thrombosis": int(pvt),
        "Vascular invasion": int(vascular),
        "Lymphnodes": int(nodes),
        "Metastasis": int(metastasis),
        "CLIP": clip,
        "CLIP_Score": f"Stage_{clip}",
        "Okuda": okuda,
        "TNM": _tnm(count, largest_cm, vascular, pvt, nodes, metastasis, adjacent),
        "BCLC": _bclc(cps, ps, count, largest_cm, pvt or vascular or nodes or metastasis),
    }
    return {
        "schema": SCHEMA,
        "TCIA_ID": f"PHANTOM_{int(seed):08d}",
        "synthetic": True,
        "variables": variables,
        "ground_truth": {
            "tlvr": round(tlvr, 6),
            "lesion_count": count,
            "largest_diameter_mm": round(largest_cm * 10.0, 2),
            "note": "true values from the labels: targets for checking, never predictors",
        },
    }


def encode_variables(variables: dict[str, Any], names: Sequence[str] | None = None) -> np.ndarray:
    """Numbers for the given variables (default: the table's ``default_predictors``) using the category maps.

    ``AFP`` is encoded as log10(AFP); numeric variables pass through.
    """
    table = load_variables()
    by_name = {v["name"]: v for v in table["variables"]}
    out = []
    for name in names if names is not None else table["default_predictors"]:
        value = variables[name]
        spec = by_name[name]
        if name == "AFP":
            out.append(float(np.log10(max(float(value), 1e-3))))
        elif "map" in spec:
            out.append(float(spec["map"][str(value)]))
        else:
            out.append(float(value))
    return np.asarray(out, dtype=float)
