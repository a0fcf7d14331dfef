"""The tissue table of the phantoms (``tissues.json`` beside this module): ids, labels and HU ranges per phase."""

from __future__ import annotations

import enum
import functools
import json
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).with_name("tissues.json")

#: First tissue id used for lesions: lesion n (0-based) is painted with tissue id ``LESION_TISSUE_BASE + n``.
LESION_TISSUE_BASE = 100
#: At most this many lesions per phantom (tissue ids stay below 256).
MAX_LESIONS = 150


class Phase(str, enum.Enum):
    """Contrast phase of a phantom."""

    NON_CONTRAST = "non_contrast"
    ARTERIAL = "arterial"
    PORTAL_VENOUS = "portal_venous"


class LesionKind(str, enum.Enum):
    """Appearance of a lesion relative to the liver around it."""

    HYPODENSE = "hypodense"
    HYPERDENSE = "hyperdense"
    RIM_ENHANCING = "rim_enhancing"


class T(enum.IntEnum):
    """Tissue ids (the ``id`` column of ``tissues.json``)."""

    AIR = 0
    FAT_SUBCUTANEOUS = 1
    FAT_VISCERAL = 2
    MUSCLE = 3
    BONE_CORTICAL = 4
    BONE_CANCELLOUS = 5
    INTERVERTEBRAL_DISC = 6
    SPINAL_CANAL = 7
    RIB = 8
    LIVER = 9
    HEPATIC_VEIN = 10
    PORTAL_VEIN = 11
    AORTA = 12
    IVC = 13
    SPLEEN = 14
    KIDNEY_CORTEX = 15
    KIDNEY_MEDULLA = 16
    RENAL_SINUS_FAT = 17
    GALLBLADDER = 18
    GUT_WALL = 19
    GUT_CONTENT = 20
    GAS = 21
    PANCREAS = 22
    LUNG = 23
    HEART = 24
    STOOL = 25
    HEPATIC_CYST = 26
    FAT_RETROPERITONEAL = 27
    TABLE = 28


@functools.lru_cache(maxsize=1)
def load_table() -> dict[str, Any]:
    """The parsed ``tissues.json``; checked against the :class:`T` enumeration."""
    with TABLE_PATH.open(encoding="utf-8") as handle:
        table: dict[str, Any] = json.load(handle)
    by_id = {int(t["id"]): t["name"] for t in table["tissues"]}
    for tissue in T:
        if by_id.get(int(tissue)) != tissue.name.lower():
            raise RuntimeError(f"{TABLE_PATH} does not list tissue {tissue.name.lower()} with id {int(tissue)}")
    return table


def tissue_labels() -> dict[int, int]:
    """Tissue id -> ground-truth label (0 other, 1 liver, 3 portal vein, 4 aorta; lesions are 2)."""
    return {int(t["id"]): int(t["label"]) for t in load_table()["tissues"]}
