"""The training loop of one stage: patches, loss, validation, checkpoints, early stopping, weights + card.

Files written in the run folder (rank 0 only; each through a temporary name):

* ``checkpoint.pt`` — model, optimiser, AMP scaler, iteration, best score, RNG states (``--resume`` reads it);
* ``best.safetensors`` — the weights with the best validation Dice so far;
* ``metrics.csv`` — ``iteration, loss, learning_rate, val_dice, elapsed_s`` every 10 iterations and at
  every validation (TensorBoard events too when asked);
* at the end ``<card id>.safetensors`` (the best weights) and ``<card id>.json`` (the filled model card).
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from SmoothSegNetLib.progress import CancelCheck, ProgressCallback, check_cancel, no_progress
from SmoothSegNetLib.training import distributed
from SmoothSegNetLib.training.config import ConfigError, TrainConfig, config_to_dict
from SmoothSegNetLib.training.loss import SmoothSegLoss
from SmoothSegNetLib.training.patches import PreparedCase, make_batch, sample_patch, whole_case_batch, with_foreground

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.safetensors"
METRICS_NAME = "metrics.csv"
METRICS_FIELDS = ("iteration", "loss", "learning_rate", "val_dice", "elapsed_s")
_LOG_EVERY = 10
_WARMUP_ITERATIONS = 20


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    weights_path: Path
    card_path: Path
    best_val_dice: float
    best_iteration: int
    iterations_run: int
    stopped_early: bool
    elapsed_s: float
    metrics_path: Path
    rank_checksums: tuple[float, ...] = ()


def learning_rate_at(iteration: int, config: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Linear warm-up over the first iterations, then cosine decay to 5 % of ``config.learning_rate``.

    With a time budget (``config.max_minutes``) the decay follows whichever is further along, iterations or
    wall time, so a run cut short by its budget still ends at the low learning rate.
    """
    base = config.learning_rate
    if iteration < _WARMUP_ITERATIONS:
        return base * (iteration + 1) / _WARMUP_ITERATIONS
    progress = min(1.0, (iteration - _WARMUP_ITERATIONS) / max(1, config.iterations - _WARMUP_ITERATIONS))
    if config.max_minutes > 0:
        progress = max(progress, min(1.0, elapsed_s / (60.0 * config.max_minutes)))
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def dice_score(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    total = int(prediction.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(prediction, truth).sum()) / total


def _pad_to_multiple(array: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    shape = array.shape[-3:]
    pads: list[int] = []
    for size in reversed(shape):
        pads.extend([0, (-size) % multiple])
    return torch.nn.functional.pad(array, pads), tuple(shape)


@torch.no_grad()
def predict_case(network: torch.nn.Module, image: np.ndarray, device: torch.device, multiple: int = 16) -> np.ndarray:
    """Arg-max classes of the whole ``[i, j, k]`` image in one pass (padded to a multiple of ``multiple``)."""
    from SmoothSegNetLib.models import forward_logits

    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
    padded, shape = _pad_to_multiple(tensor, multiple)
    logits = forward_logits(network, padded)[..., : shape[0], : shape[1], : shape[2]]
    return logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)


def validate(network: torch.nn.Module, cases: list[PreparedCase], target_class: int, device: torch.device) -> float:
    """Mean Dice of ``target_class`` over ``cases`` (whole-case prediction)."""
    was_training = network.training
    network.eval()
    scores = [
        dice_score(predict_case(network, c.image, device) == target_class, c.label == target_class) for c in cases
    ]
    network.train(was_training)
    return float(np.mean(scores)) if scores else math.nan


def validation_patches(cases: list[PreparedCase], config: TrainConfig, foreground_class: int) -> list[PreparedCase]:
    """``config.val_patches`` fixed patches of each case (seeded; half centred on ``foreground_class``)."""
    rng = np.random.default_rng(config.seed + 777)
    out = []
    for case in cases:
        case = with_foreground(case, foreground_class, seed=config.seed)
        for n in range(config.val_patches):
            image, label = sample_patch(case, config.patch_size_ijk, rng, 1.0 if n % 2 == 0 else 0.0)
            out.append(PreparedCase(f"{case.case_id}#{n}", image, label, case.tlvr_target, case.tlvr_true))
    return out


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    state = rng.bit_generator.state
    return {"state": str(state["state"]["state"]), "inc": str(state["state"]["inc"])}


def _restore_rng(rng: np.random.Generator, saved: dict[str, Any]) -> None:
    state = dict(rng.bit_generator.state)
    state["state"] = {"state": int(saved["state"]), "inc": int(saved["inc"])}
    state["has_uint32"], state["uinteger"] = 0, 0
    rng.bit_generator.state = state


class _Metrics:
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


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    from SmoothSegNetLib.outputs import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))


def train_stage(
    config: TrainConfig,
    train_cases: list[PreparedCase],
    val_cases: list[PreparedCase],
    outdir: str | Path,
    *,
    card_template: dict[str, Any],
    training_record: dict[str, Any],
    resume: bool = False,
    device: str = "auto",
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
) -> TrainResult:
    """Train one stage and write its weights and card into ``outdir``.

    Args:
        config: the run's settings.
        train_cases, val_cases: prepared cases on the stage's network grid (disjoint patients).
        outdir: run folder (created); must not hold a previous run unless ``resume``.
        card_template: the card to fill (architecture, input, inference settings of this stage).
        training_record: data provenance written into the card's ``training`` field.
        resume: continue from ``outdir/checkpoint.pt``.
        device: ``auto``, ``cpu``, ``cuda``... (see :func:`SmoothSegNetLib.inference.device.select_device`).
        progress, cancel: progress callback and cancel check.

    Raises:
        ConfigError: no training or validation cases, a previous run without ``resume``, or nothing to resume.
        Cancelled: the cancel check fired (the last checkpoint stays, so the run can be resumed).
    """
    from SmoothSegNetLib.inference.device import select_device
    from SmoothSegNetLib.models import build_network, card_from_dict, save_weights, write_trained_card

    if not train_cases or not val_cases:
        raise ConfigError(
            f"training needs cases for training and validation, got {len(train_cases)} and {len(val_cases)}"
        )
    outdir = Path(outdir)
    checkpoint_path = outdir / CHECKPOINT_NAME
    if resume and not checkpoint_path.exists():
        raise ConfigError(f"--resume: {checkpoint_path} does not exist; start without --resume")
    if not resume and checkpoint_path.exists():
        raise ConfigError(f"{outdir} already holds a training run: pass --resume to continue it or choose another -o")
    torch_device = select_device(device)
    info = distributed.setup(torch_device)
    if torch_device.type == "cuda" and info.enabled:
        torch_device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(torch_device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    outdir.mkdir(parents=True, exist_ok=True)

    card_template = copy.deepcopy(card_template)
    if config.card_id:
        card_template["id"] = config.card_id
        card_template["weights"]["file"] = f"{config.card_id}.safetensors"
    card = card_from_dict(card_template, source="card template")
    foreground_class = 1 if config.stage == "liver" else 2
    target_class = foreground_class
    train_cases = [with_foreground(c, foreground_class, seed=config.seed + n) for n, c in enumerate(train_cases)]
    if config.val_patches:
        val_cases = validation_patches(val_cases, config, foreground_class)

    torch.manual_seed(config.seed)
    network = build_network(card).to(torch_device)
    model: torch.nn.Module = network
    if info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[torch_device.index] if torch_device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    use_amp = config.amp and torch_device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = SmoothSegLoss(
        config.loss.smoothing,
        lambda_tlvr=config.loss.lambda_tlvr,
        lambda_dice=config.loss.lambda_dice,
        lambda_focal=config.loss.lambda_focal,
        gamma=config.loss.gamma,
        epsilon=config.loss.epsilon,
        liver_channel=1,
        tumor_channel=min(2, config.out_channels - 1),
    )
    rng = np.random.default_rng(config.seed + 1000 * info.rank)

    start_iteration, best_dice, best_iteration, bad_validations, elapsed_before = 0, -1.0, -1, 0, 0.0
    if resume:
        saved = torch.load(str(checkpoint_path), map_location="cpu", weights_only=True)
        network.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        start_iteration = int(saved["iteration"])
        best_dice, best_iteration = float(saved["best_dice"]), int(saved["best_iteration"])
        bad_validations, elapsed_before = int(saved["bad_validations"]), float(saved["elapsed_s"])
        _restore_rng(rng, saved["rng"][str(info.rank)] if str(info.rank) in saved["rng"] else saved["rng"]["0"])
        torch.set_rng_state(saved["torch_rng"])
        log.info("resumed %s at iteration %d (best val Dice %.4f)", outdir, start_iteration, best_dice)

    metrics = _Metrics(outdir / METRICS_NAME, info.is_main, config.tensorboard, start_iteration if resume else None)
    t0 = time.monotonic() - elapsed_before
    iteration, stopped_early, running = start_iteration, False, []
    last_val: float | None = None
    network.train()
    try:
        while iteration < config.iterations:
            check_cancel(cancel)
            lr = learning_rate_at(iteration, config, time.monotonic() - t0)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if config.loss.tlvr_scope == "whole":
                images, labels, targets = whole_case_batch(train_cases, rng, config.augment)
            else:
                images, labels, targets = make_batch(
                    train_cases,
                    config.batch_size,
                    config.patch_size_ijk,
                    rng,
                    config.foreground_patch_fraction,
                    config.augment,
                )
            x = torch.from_numpy(images).to(torch_device)
            y = torch.from_numpy(labels).to(torch_device)
            t = torch.from_numpy(targets).to(torch_device)
            with torch.autocast(device_type=torch_device.type, enabled=use_amp):
                from SmoothSegNetLib.models import forward_logits

                logits = forward_logits(model, x)
                loss = (
                    loss_fn(logits.float(), y, t)
                    if loss_fn.smoothing.value == "clinical"
                    else loss_fn(logits.float(), y)
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            iteration += 1
            last_loss = float(loss.detach())
            running.append(last_loss)
            elapsed = time.monotonic() - t0
            out_of_time = config.max_minutes > 0 and elapsed > 60.0 * config.max_minutes
            val_dice: float | None = None
            if iteration % config.val_every == 0 or iteration == config.iterations or out_of_time:
                score = validate(network, val_cases, target_class, torch_device) if info.is_main else 0.0
                val_dice = distributed.broadcast_float(score, info)
                last_val = val_dice
                if val_dice > best_dice:
                    best_dice, best_iteration, bad_validations = val_dice, iteration, 0
                    if info.is_main:
                        save_weights(network, outdir / BEST_NAME)
                else:
                    bad_validations += 1
            if iteration % _LOG_EVERY == 0 or val_dice is not None:
                metrics.write(iteration, float(np.mean(running)), lr, val_dice, elapsed)
                running = []
            if info.is_main and (iteration % config.checkpoint_every == 0 or val_dice is not None):
                _save_checkpoint(
                    checkpoint_path,
                    {
                        "model": network.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scaler": scaler.state_dict(),
                        "iteration": iteration,
                        "best_dice": best_dice,
                        "best_iteration": best_iteration,
                        "bad_validations": bad_validations,
                        "elapsed_s": elapsed,
                        "rng": {"0": _rng_state(rng)},
                        "torch_rng": torch.get_rng_state(),
                    },
                )
            best_text = f", best val Dice {best_dice:.3f} @ {best_iteration}" if best_iteration > 0 else ""
            progress(
                "train",
                iteration / config.iterations,
                f"{config.stage} it {iteration} loss {running[-1] if running else float('nan'):.3f}{best_text}",
            )
            if bad_validations >= config.patience:
                stopped_early = True
                log.info(
                    "early stop at iteration %d: no better validation Dice for %d checks", iteration, config.patience
                )
                break
            if out_of_time:
                stopped_early = True
                log.info("time budget of %.1f min reached at iteration %d", config.max_minutes, iteration)
                break
    finally:
        metrics.close()

    elapsed = time.monotonic() - t0
    checksums = distributed.parameter_checksums(network, info)
    if len(set(checksums)) != 1:
        raise RuntimeError(f"the {info.world_size} training processes ended with different weights: {checksums}")
    weights_path = outdir / f"{card_template['id']}.safetensors"
    card_path = outdir / f"{card_template['id']}.json"
    if info.is_main:
        from safetensors.torch import load_file

        if config.select_weights == "best":
            network.load_state_dict(load_file(str(outdir / BEST_NAME)))
        save_weights(network, weights_path)
        record = {
            **copy.deepcopy(training_record),
            "label_smoothing": {
                "mode": loss_fn.smoothing.value,
                "lambda_tlvr": config.loss.lambda_tlvr,
                "epsilon": config.loss.epsilon,
                "tlvr_scope": config.loss.tlvr_scope,
            },
            "validation": {
                "metric": f"mean {('liver' if target_class == 1 else 'tumor')} Dice on the network grid"
                + (f", {config.val_patches} fixed patches per case" if config.val_patches else ", whole cases"),
                "dice": round(best_dice, 4),
                "best_iteration": best_iteration,
                "last_dice": None if last_val is None else round(last_val, 4),
                "weights_kept": "best validation" if config.select_weights == "best" else "last iteration",
                "cases": sorted({c.case_id.split("#")[0] for c in val_cases}),
            },
            "run": {
                "iterations": iteration,
                "stopped_early": stopped_early,
                "wall_time_min": round(elapsed / 60.0, 1),
                "device": torch_device.type,
                "world_size": info.world_size,
                "torch": torch.__version__,
            },
            "config": config_to_dict(config),
        }
        write_trained_card(card_template, weights_path, card_path, record, version=config.card_version)
    distributed.barrier(info)
    distributed.teardown(info)
    return TrainResult(
        weights_path=weights_path,
        card_path=card_path,
        best_val_dice=best_dice,
        best_iteration=best_iteration,
        iterations_run=iteration,
        stopped_early=stopped_early,
        elapsed_s=elapsed,
        metrics_path=outdir / METRICS_NAME,
        rank_checksums=tuple(checksums),
    )
