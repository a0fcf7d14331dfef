"""Files of a training run: the metrics log (CSV, optional TensorBoard), checkpoints, RNG states."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from SmoothSegNetLib.training.config import ConfigError

METRICS_FIELDS = ("iteration", "loss", "learning_rate", "val_dice", "elapsed_s")


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    state = rng.bit_generator.state
    return {"state": str(state["state"]["state"]), "inc": str(state["state"]["inc"])}


def restore_rng(rng: np.random.Generator, saved: dict[str, Any]) -> None:
    state = dict(rng.bit_generator.state)
    state["state"] = {"state": int(saved["state"]), "inc": int(saved["inc"])}
    state["has_uint32"], state["uinteger"] = 0, 0
    rng.bit_generator.state = state


class MetricsLog:
    """Appends rows to ``metrics.csv`` (and TensorBoard when enabled) on rank 0."""

    def __init__(self, path: Path, enabled: bool, tensorboard: bool, keep_until: int | None) -> None:
        self.path = path
        self.enabled = enabled
        self.writer: Any = None
        if not enabled:
            return
        rows: list[dict[str, str]] = []
        if keep_until is not None and path.exists():
            with open(path, newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["iteration"]) <= keep_until]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRICS_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ConfigError(
                    "tensorboard is true but the tensorboard package is not installed: pip install tensorboard"
                ) from exc
            self.writer = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, iteration: int, loss: float, lr: float, val_dice: float | None, elapsed_s: float) -> None:
        if not self.enabled:
            return
        row = {
            "iteration": iteration,
            "loss": f"{loss:.6f}",
            "learning_rate": f"{lr:.6g}",
            "val_dice": "" if val_dice is None else f"{val_dice:.6f}",
            "elapsed_s": f"{elapsed_s:.1f}",
        }
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=METRICS_FIELDS).writerow(row)
        if self.writer is not None:
            self.writer.add_scalar("loss", loss, iteration)
            self.writer.add_scalar("learning_rate", lr, iteration)
            if val_dice is not None:
                self.writer.add_scalar("val_dice", val_dice, iteration)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    from SmoothSegNetLib.outputs import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))
