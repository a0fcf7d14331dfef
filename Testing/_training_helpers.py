"""Shared fixtures of the training tests: a tiny card template and tiny synthetic cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.models import demo_card_template
from SmoothSegNetLib.training.patches import PreparedCase


def tiny_card_template(task: str, spacing_mm: float = 8.0) -> dict[str, Any]:
    """The demo card of ``task`` with a tiny SegResNet on a coarse grid (fast on CPU)."""
    card = demo_card_template(task)
    card["architecture"]["args"].update({"init_filters": 4, "blocks_down": [1, 1], "blocks_up": [1]})
    card["input"]["spacing_mm"] = [spacing_mm, spacing_mm, spacing_mm]
    card["id"] = f"tiny-{task}"
    card["weights"]["file"] = f"tiny-{task}.safetensors"
    return card


def write_tiny_config(folder: Path, stage: str, **overrides: Any) -> Path:
    """A training config on a handful of tiny phantoms rendered at 8 mm."""
    card_path = folder / f"tiny-{stage}-card.json"
    card_path.write_text(json.dumps(tiny_card_template(stage)), encoding="utf-8")
    config: dict[str, Any] = {
        "schema": "smoothsegnet.train_config/1",
        "stage": stage,
        "card_template": card_path.name,
        "data": {"kind": "phantom", "train_seeds": [500, 506], "val_seeds": [600, 601], "oblique_fraction": 0.3},
        "loss": {"smoothing": "clinical" if stage == "tumor" else "none"},
        "patch_size_ijk": [16, 16, 16],
        "batch_size": 2,
        "iterations": 6,
        "val_every": 3,
        "checkpoint_every": 3,
        "num_threads": 1,
    }
    config.update(overrides)
    path = folder / f"tiny-{stage}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def ball_case(seed: int, size: int = 24) -> PreparedCase:
    """A liver ball with a tumor ball inside, windowed-looking intensities plus noise; ``[i, j, k]``."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij")).astype(np.float32)
    centre = rng.uniform(size * 0.4, size * 0.6, 3)
    radius = rng.uniform(size * 0.25, size * 0.35)
    liver = ((grid - centre[:, None, None, None]) ** 2).sum(0) < radius**2
    tumor_centre = centre + rng.uniform(-2, 2, 3)
    tumor = ((grid - tumor_centre[:, None, None, None]) ** 2).sum(0) < (radius * 0.45) ** 2
    label = np.zeros((size,) * 3, dtype=np.uint8)
    label[liver] = 1
    label[liver & tumor] = 2
    image = np.choose(label, [np.float32(0.1), np.float32(0.6), np.float32(0.3)]).astype(np.float32)
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    tlvr = float((label == 2).sum() / (label > 0).sum())
    return PreparedCase(f"ball-{seed}", image, label, tlvr_target=tlvr, tlvr_true=tlvr)
