"""The training loop of one stage: patches, loss, validation, checkpoints, early stopping, weights + card.

Files written in the run folder (rank 0 only; each through a temporary name):

* ``checkpoint.pt`` — model, optimiser, AMP scaler, iteration, best score, RNG states (``--resume`` reads it);
* ``best.safetensors`` — the weights with the best validation Dice so far;
* ``metrics.csv`` — ``iteration, loss, learning_rate, val_dice, elapsed_s`` every 10 iterations and at
  every validation (TensorBoard events too when asked);
* at the end ``<card id>.safetensors`` (the best or the last weights, ``select_weights``) and ``<card id>.json``
  (the filled model card).
"""

from __future__ import annotations

import copy
import dataclasses
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
from SmoothSegNetLib.training.run_files import MetricsLog, restore_rng, rng_state, save_checkpoint

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.safetensors"
METRICS_NAME = "metrics.csv"
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


class _Session:
    """The mutable state of one run on one process: network, optimiser, sampler, scores, files."""

    def __init__(
        self,
        config: TrainConfig,
        card_template: dict[str, Any],
        outdir: Path,
        device: torch.device,
        info: distributed.DistInfo,
    ) -> None:
        from SmoothSegNetLib.models import build_network, card_from_dict

        self.config, self.outdir, self.device, self.info = config, outdir, device, info
        self.target_class = 1 if config.stage == "liver" else 2
        torch.manual_seed(config.seed)
        # channels_last_3d: the same arithmetic, about 1.3x faster per step on this CPU (bench/train_step_speed.py).
        self.memory_format = torch.channels_last_3d if config.channels_last else torch.contiguous_format
        network = build_network(card_from_dict(card_template, source="card template")).to(device)
        self.network = network.to(memory_format=self.memory_format)  # type: ignore[call-overload]  # torch's stubs lack it
        self.model: torch.nn.Module = self.network
        if info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.network, device_ids=ids)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.use_amp = config.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.loss_fn = SmoothSegLoss(
            config.loss.smoothing,
            lambda_tlvr=config.loss.lambda_tlvr,
            lambda_dice=config.loss.lambda_dice,
            lambda_focal=config.loss.lambda_focal,
            lambda_lesion=config.loss.lambda_lesion,
            lambda_false=config.loss.lambda_false,
            gamma=config.loss.gamma,
            epsilon=config.loss.epsilon,
            liver_channel=1,
            tumor_channel=min(2, config.out_channels - 1),
        )
        self.rng = np.random.default_rng(config.seed + 1000 * info.rank)
        self.iteration, self.best_dice, self.best_iteration, self.bad_validations = 0, -1.0, -1, 0
        self.elapsed_before = 0.0
        self.last_val: float | None = None
        self.stopped_early = False

    def restore(self, path: Path) -> None:
        saved = torch.load(str(path), map_location="cpu", weights_only=True)
        try:
            self.network.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            lines = str(exc).strip().splitlines()
            first = " ".join(line.strip() for line in lines[:2]) if lines else type(exc).__name__
            raise ConfigError(
                f"--resume: {path} was saved by a different network than this config's card template builds "
                "(stage, architecture and channels must stay the same; patch size, schedule and threads may change): "
                f"{first}"
            ) from exc
        self.scaler.load_state_dict(saved["scaler"])
        self.iteration = int(saved["iteration"])
        self.best_dice, self.best_iteration = float(saved["best_dice"]), int(saved["best_iteration"])
        self.bad_validations, self.elapsed_before = int(saved["bad_validations"]), float(saved["elapsed_s"])
        rank = str(self.info.rank)
        restore_rng(self.rng, saved["rng"][rank] if rank in saved["rng"] else saved["rng"]["0"])
        torch.set_rng_state(saved["torch_rng"])
        log.info("resumed %s at iteration %d (best val Dice %.4f)", self.outdir, self.iteration, self.best_dice)

    def checkpoint(self, elapsed_s: float) -> None:
        state = {
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "best_dice": self.best_dice,
            "best_iteration": self.best_iteration,
            "bad_validations": self.bad_validations,
            "elapsed_s": elapsed_s,
            "rng": {"0": rng_state(self.rng)},
            "torch_rng": torch.get_rng_state(),
        }
        save_checkpoint(self.outdir / CHECKPOINT_NAME, state)

    def step(self, cases: list[PreparedCase], lr: float) -> float:
        """One optimiser step on a fresh batch; returns the loss."""
        from SmoothSegNetLib.models import forward_logits

        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if config.loss.tlvr_scope == "whole":
            images, labels, targets = whole_case_batch(cases, self.rng, config.augment)
        else:
            images, labels, targets = make_batch(
                cases,
                config.batch_size,
                config.patch_size_ijk,
                self.rng,
                config.foreground_patch_fraction,
                config.augment,
            )
        x = torch.from_numpy(images).to(self.device).contiguous(memory_format=self.memory_format)
        y = torch.from_numpy(labels).to(self.device)
        with torch.autocast(device_type=self.device.type, enabled=self.use_amp):
            logits = forward_logits(self.model, x).float()
            if self.loss_fn.smoothing.value == "clinical":
                loss = self.loss_fn(logits, y, torch.from_numpy(targets).to(self.device))
            else:
                loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.iteration += 1
        return float(loss.detach())

    def validate(self, cases: list[PreparedCase]) -> float:
        """Validation Dice (computed on rank 0, shared with all ranks); keeps the best weights."""
        from SmoothSegNetLib.models import save_weights

        score = validate(self.network, cases, self.target_class, self.device) if self.info.is_main else 0.0
        value = distributed.broadcast_float(score, self.info)
        self.last_val = value
        if value > self.best_dice:
            self.best_dice, self.best_iteration, self.bad_validations = value, self.iteration, 0
            if self.info.is_main:
                save_weights(self.network, self.outdir / BEST_NAME)
        else:
            self.bad_validations += 1
        return value


def _check_run_folder(outdir: Path, resume: bool) -> None:
    checkpoint_path = outdir / CHECKPOINT_NAME
    if resume and not checkpoint_path.exists():
        raise ConfigError(f"--resume: {checkpoint_path} does not exist; start without --resume")
    if not resume and checkpoint_path.exists():
        raise ConfigError(f"{outdir} already holds a training run: pass --resume to continue it or choose another -o")


def _loop(
    session: _Session,
    train_cases: list[PreparedCase],
    val_cases: list[PreparedCase],
    metrics: MetricsLog,
    progress: ProgressCallback,
    cancel: CancelCheck | None,
) -> float:
    """Iterate until the iteration count, the time budget or early stopping; returns the elapsed seconds."""
    config = session.config
    t0 = time.monotonic() - session.elapsed_before
    running: list[float] = []
    session.network.train()
    while session.iteration < config.iterations:
        check_cancel(cancel)
        lr = learning_rate_at(session.iteration, config, time.monotonic() - t0)
        loss = session.step(train_cases, lr)
        running.append(loss)
        elapsed = time.monotonic() - t0
        out_of_time = config.max_minutes > 0 and elapsed > 60.0 * config.max_minutes
        it = session.iteration
        val_dice = (
            session.validate(val_cases)
            if it % config.val_every == 0 or it == config.iterations or out_of_time
            else None
        )
        if it % _LOG_EVERY == 0 or val_dice is not None:
            metrics.write(it, float(np.mean(running)), lr, val_dice, elapsed)
            running = []
        if session.info.is_main and (it % config.checkpoint_every == 0 or val_dice is not None):
            session.checkpoint(elapsed)
        best = (
            f", best val Dice {session.best_dice:.3f} @ {session.best_iteration}" if session.best_iteration > 0 else ""
        )
        progress("train", it / config.iterations, f"{config.stage} it {it} loss {loss:.3f}{best}")
        if session.bad_validations >= config.patience or out_of_time:
            session.stopped_early = True
            reason = "time budget reached" if out_of_time else f"no better validation Dice for {config.patience} checks"
            log.info("stopping at iteration %d: %s", it, reason)
            break
    return time.monotonic() - t0


#: Seconds kept, under ``train_stage(finish_by=...)``, between the end of training and the time given: the last
#: validation, the checkpoint, the weights and the card (a few seconds on this CPU for the demo networks).
FINISH_MARGIN_S = 20.0


def _budget_before(config: TrainConfig, finish_by: float, elapsed_before: float) -> TrainConfig:
    """``config`` with its time budget cut so that training, ``elapsed_before`` seconds into its budget already,
    stops :data:`FINISH_MARGIN_S` before the monotonic time ``finish_by``; unchanged when its own budget ends first."""
    left = max(0.0, finish_by - time.monotonic() - FINISH_MARGIN_S)
    budget_s = elapsed_before + left
    if config.max_minutes > 0 and budget_s >= 60.0 * config.max_minutes:
        return config
    # A budget of exactly the time already trained stops after one more iteration, and the card is written.
    cut = max(budget_s, 1e-3) / 60.0
    log.info(
        "time budget cut to %.2f min (%.2f min of it already trained) so that the card is written in time",
        cut,
        elapsed_before / 60.0,
    )
    return dataclasses.replace(config, max_minutes=cut)


def _card_record(
    session: _Session, training_record: dict[str, Any], val_cases: list[PreparedCase], elapsed: float
) -> dict[str, Any]:
    config = session.config
    metric = f"mean {('liver' if session.target_class == 1 else 'tumor')} Dice on the network grid"
    metric += f", {config.val_patches} fixed patches per case" if config.val_patches else ", whole cases"
    return {
        **copy.deepcopy(training_record),
        "label_smoothing": {
            "mode": session.loss_fn.smoothing.value,
            "lambda_tlvr": config.loss.lambda_tlvr,
            "epsilon": config.loss.epsilon,
            "tlvr_scope": config.loss.tlvr_scope,
        },
        "validation": {
            "metric": metric,
            "dice": round(session.best_dice, 4),
            "best_iteration": session.best_iteration,
            "last_dice": None if session.last_val is None else round(session.last_val, 4),
            "weights_kept": "best validation" if config.select_weights == "best" else "last iteration",
            "cases": sorted({c.case_id.split("#")[0] for c in val_cases}),
        },
        "run": {
            "iterations": session.iteration,
            "stopped_early": session.stopped_early,
            "wall_time_min": round(elapsed / 60.0, 1),
            "device": session.device.type,
            "world_size": session.info.world_size,
            "torch": torch.__version__,
        },
        "config": config_to_dict(config),
    }


def train_stage(
    config: TrainConfig,
    train_cases: list[PreparedCase],
    val_cases: list[PreparedCase],
    outdir: str | Path,
    *,
    card_template: dict[str, Any],
    training_record: dict[str, Any],
    resume: bool = False,
    initial_state: dict[str, Any] | None = None,
    device: str = "auto",
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
    finish_by: float | None = None,
) -> TrainResult:
    """Train one stage and write its weights and card into ``outdir``.

    Args:
        config: the run's settings.
        train_cases, val_cases: prepared cases on the stage's network grid (disjoint patients).
        outdir: run folder (created); must not hold a previous run unless ``resume``.
        card_template: the card to fill (architecture, input, inference settings of this stage).
        training_record: data provenance written into the card's ``training`` field.
        resume: continue from ``outdir/checkpoint.pt``.
        initial_state: weights to start from (a fine-tune) instead of a random initialisation; not with ``resume``.
        device: ``auto``, ``cpu``, ``cuda``... (see :func:`SmoothSegNetLib.inference.device.select_device`).
        progress, cancel: progress callback and cancel check.
        finish_by: a ``time.monotonic()`` time by which the card must be written: the time budget is cut, once the
            run is set up, so that training stops :data:`FINISH_MARGIN_S` before it (the learning rate decays over
            the cut budget; at least one iteration is trained). None: the config's budget alone.

    Raises:
        ConfigError: no training or validation cases, a previous run without ``resume``, or nothing to resume.
        Cancelled: the cancel check fired (the last checkpoint stays, so the run can be resumed).
    """
    from safetensors.torch import load_file

    from SmoothSegNetLib.inference.device import select_device
    from SmoothSegNetLib.models import save_weights, write_trained_card

    if not train_cases or not val_cases:
        raise ConfigError(
            f"training needs cases for training and validation, got {len(train_cases)} and {len(val_cases)}"
        )
    outdir = Path(outdir)
    _check_run_folder(outdir, resume)
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
    session = _Session(config, card_template, outdir, torch_device, info)
    if initial_state is not None and not resume:
        session.network.load_state_dict(initial_state)
    foreground = session.target_class
    by_lesion = config.foreground_sampling == "lesion"
    train_cases = [
        with_foreground(c, foreground, seed=config.seed + n, by_lesion=by_lesion) for n, c in enumerate(train_cases)
    ]
    if config.val_patches:
        val_cases = validation_patches(val_cases, config, foreground)
    if resume:
        session.restore(outdir / CHECKPOINT_NAME)
    if finish_by is not None:
        session.config = config = _budget_before(config, finish_by, session.elapsed_before)
    metrics = MetricsLog(outdir / METRICS_NAME, info.is_main, config.tensorboard, session.iteration if resume else None)
    try:
        elapsed = _loop(session, train_cases, val_cases, metrics, progress, cancel)
    finally:
        metrics.close()

    checksums = distributed.parameter_checksums(session.network, info)
    if len(set(checksums)) != 1:
        raise RuntimeError(f"the {info.world_size} training processes ended with different weights: {checksums}")
    weights_path = outdir / f"{card_template['id']}.safetensors"
    card_path = outdir / f"{card_template['id']}.json"
    if info.is_main:
        if config.select_weights == "best":
            session.network.load_state_dict(load_file(str(outdir / BEST_NAME)))
        save_weights(session.network, weights_path)
        record = _card_record(session, training_record, val_cases, elapsed)
        write_trained_card(card_template, weights_path, card_path, record, version=config.card_version)
    distributed.barrier(info)
    distributed.teardown(info)
    return TrainResult(
        weights_path=weights_path,
        card_path=card_path,
        best_val_dice=session.best_dice,
        best_iteration=session.best_iteration,
        iterations_run=session.iteration,
        stopped_early=session.stopped_early,
        elapsed_s=elapsed,
        metrics_path=outdir / METRICS_NAME,
        rank_checksums=tuple(checksums),
    )
