"""Card templates for the demo networks, and the card writer training calls after it saved weights.

The demo pipeline must segment a 512x512x120 CT (0.75 x 0.75 x 2.5 mm) in under 8 s on 2 CPU cores with a
peak RSS under 2.5 GB, so the demo cards use a small MONAI SegResNet (``init_filters`` 8, instance norm)
on coarse grids:

* liver (global stage): 3 mm isotropic, LPS orientation (no flip for the usual axial CT), HU [-150, 250],
  on the body's bounding box (voxels above -500 HU, + 10 mm: the air around the body is skipped), the whole
  box in one pass (padded to a multiple of 8), 2 channels (background, liver — the liver channel means
  liver INCLUDING its tumors, so training labels must merge labels 1 and 2).
* tumor (local stage): 2 mm isotropic, on the liver bounding box + 10 mm, voxels outside the liver
  set to the window's low value (as the paper), HU [-200, 250], the whole crop in one pass, 3 channels
  (background, liver, tumor), 2 iterations of morphological Chan–Vese refinement, lesions >= 0.1 ml kept.

Training (helper G) must prepare inputs exactly like :mod:`SmoothSegNetLib.inference.preprocess` does:
canonical grid from the card (``canonical_grid``), ``window_hu`` to [0, 1], tensors ``[B, C, i, j, k]``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from SmoothSegNetLib.errors import ModelError
from SmoothSegNetLib.models.card import CARD_SCHEMA_ID, write_card_file
from SmoothSegNetLib.models.weights import sha256_file

_LIVER_CODE = {"scheme": "SCT", "value": "10200004", "meaning": "Liver"}
_ANATOMY = {"scheme": "SCT", "value": "123037004", "meaning": "Anatomical Structure"}
_TUMOR_CODE = {"scheme": "SCT", "value": "108369006", "meaning": "Neoplasm"}
_ALTERED = {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"}

_BACKGROUND = {"channel": 0, "id": "background", "name": "Background"}
_LIVER = {
    "channel": 1,
    "id": "liver",
    "name": "Liver",
    "color_rgb": [221, 130, 101],
    "snomed_category": _ANATOMY,
    "snomed_type": _LIVER_CODE,
}
_TUMOR = {
    "channel": 2,
    "id": "tumor",
    "name": "Tumor",
    "color_rgb": [255, 210, 0],
    "snomed_category": _ALTERED,
    "snomed_type": _TUMOR_CODE,
}

_DEMO_TITLE = "DEMO weights trained on synthetic phantoms, not for clinical use"

_DEMO_COMMON: dict[str, Any] = {
    "schema": CARD_SCHEMA_ID,
    "version": "0.1.0",
    "license": "Apache-2.0",
    "intended_use": "Demonstration and software testing of SmoothSegNet only. NOT for clinical use.",
    "limitations": (
        "DEMO weights trained on synthetic phantoms only; they say nothing about performance on patient CT. "
        "Not for clinical use."
    ),
    "references": ["arXiv:2410.10005"],
}


def demo_card_template(task: str) -> dict[str, Any]:
    """The demo card for ``task`` (``"liver"`` or ``"tumor"``) with weights fields still to fill.

    Returns a fresh dict; :func:`write_trained_card` fills ``weights`` and ``training``.
    """
    if task == "liver":
        card: dict[str, Any] = {
            "id": "smoothsegnet-demo-liver",
            "title": "SmoothSegNet liver (global stage) — " + _DEMO_TITLE,
            "task": "liver",
            "architecture": {
                "name": "SegResNet",
                "args": {
                    "spatial_dims": 3,
                    "in_channels": 1,
                    "out_channels": 2,
                    "init_filters": 8,
                    "blocks_down": [1, 2, 2, 4],
                    "blocks_up": [1, 1, 1],
                    "norm": "INSTANCE",
                },
            },
            "input": {
                "spacing_mm": [3.0, 3.0, 3.0],
                "orientation": "LPS",
                "hu_window": [-150, 250],
                "crop_to_body_hu": -500,
                "crop_margin_mm": 10.0,
            },
            "inference": {
                "mode": "whole",
                "size_divisible_by": 8,
                "max_voxels": 8000000,
                "roi_size_ijk": [160, 160, 160],
            },
            "output": {"activation": "softmax", "classes": [_BACKGROUND, _LIVER]},
            "postprocessing": {"largest_component": True, "fill_holes": True},
        }
    elif task == "tumor":
        card = {
            "id": "smoothsegnet-demo-tumor",
            "title": "SmoothSegNet tumor (local stage) — " + _DEMO_TITLE,
            "task": "tumor",
            "architecture": {
                "name": "SegResNet",
                "args": {
                    "spatial_dims": 3,
                    "in_channels": 1,
                    "out_channels": 3,
                    "init_filters": 8,
                    "blocks_down": [1, 2, 2, 4],
                    "blocks_up": [1, 1, 1],
                    "norm": "INSTANCE",
                },
            },
            "input": {
                "spacing_mm": [2.0, 2.0, 2.0],
                "orientation": "LPS",
                "hu_window": [-200, 250],
                "crop_margin_mm": 10.0,
                "mask_outside_liver": True,
            },
            "inference": {
                "mode": "whole",
                "size_divisible_by": 8,
                "max_voxels": 8000000,
                "roi_size_ijk": [128, 128, 128],
            },
            "output": {"activation": "softmax", "classes": [_BACKGROUND, _LIVER, _TUMOR]},
            "postprocessing": {"fill_holes": True, "chan_vese_iterations": 2, "min_lesion_ml": 0.1},
        }
    else:
        raise ValueError(f"task must be 'liver' or 'tumor', got {task!r}")
    card.update(copy.deepcopy(_DEMO_COMMON))
    card["weights"] = {"file": f"{card['id']}.safetensors", "sha256": None, "format": "safetensors", "url": None}
    card["training"] = {"data": "to be filled by training"}
    return copy.deepcopy(card)


def write_trained_card(
    template: dict[str, Any],
    weights_path: str | os.PathLike[str],
    card_path: str | os.PathLike[str],
    training: dict[str, Any],
    *,
    version: str | None = None,
    url: str | None = None,
) -> Path:
    """Write the card for freshly trained weights: sha256, file name, size and training information filled.

    Args:
        template: a card dict (e.g. :func:`demo_card_template`), not modified.
        weights_path: the saved weights (``.safetensors`` or ``.pt``); the card refers to it by file name,
            so keep both in the same folder.
        card_path: where to write the card JSON.
        training: free-form training record (data, seeds, label smoothing settings, validation figures).
        version: optional new version string; url: optional download URL.

    Raises:
        ModelError: the weights file is missing or the resulting card is invalid.
    """
    weights = Path(weights_path)
    if not weights.is_file():
        raise ModelError(f"weights file {weights} does not exist: save the weights before writing their card")
    card = copy.deepcopy(template)
    card.pop("onnx", None)  # a graph of other weights; 'models install' exports the new one
    fmt = "safetensors" if weights.suffix == ".safetensors" else "pt"
    card["weights"] = {
        **card.get("weights", {}),
        "file": weights.name,
        "sha256": sha256_file(weights),
        "format": fmt,
        "size_bytes": weights.stat().st_size,
        "url": url if url is not None else card.get("weights", {}).get("url"),
    }
    card["training"] = copy.deepcopy(training)
    if version is not None:
        card["version"] = version
    return write_card_file(card_path, card)
