"""One training run from a configuration: build the cases, the clinical TLVR targets, then train.

This is what ``smoothsegnet train --config FILE -o DIR`` calls. The clinical regression (tumor stage with
``loss.smoothing = clinical``) is fitted on the training cases only: each training case gets its
out-of-fold prediction (patient-level folds), validation cases the prediction of a model fitted on all
training cases.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib import __version__
from SmoothSegNetLib.progress import CancelCheck, ProgressCallback, no_progress, sub_progress
from SmoothSegNetLib.training.clinical import (
    choose_alpha,
    encode_records,
    fit_ridge,
    kfold_indices,
    load_variable_table,
    out_of_fold_tlvr,
)
from SmoothSegNetLib.training.config import ConfigError, TrainConfig, resolve_path
from SmoothSegNetLib.training.patches import PreparedCase
from SmoothSegNetLib.training.trainer import TrainResult, train_stage

log = logging.getLogger(__name__)


def card_template_for(config: TrainConfig) -> dict[str, Any]:
    """The card to fill: the demo template of the stage, or a card JSON named by ``card_template``, on the
    config's ``input_spacing_mm`` where it names one."""
    template = _card_template(config)  # a fresh dict on every call: changed in place
    if config.input_spacing_mm is not None:
        template.setdefault("input", {})["spacing_mm"] = [float(v) for v in config.input_spacing_mm]
    return template


def _card_template(config: TrainConfig) -> dict[str, Any]:
    """The template card as it is: built anew (demo) or parsed from its file on each call."""
    from SmoothSegNetLib.models import demo_card_template

    if config.card_template == "demo":
        return demo_card_template(config.stage)
    path = resolve_path(config, config.card_template)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"card_template {path} cannot be read as a JSON model card: {exc}") from exc
    if data.get("task") != config.stage:
        raise ConfigError(
            f"card_template {path} is a {data.get('task')!r} card but the config's stage is {config.stage!r}"
        )
    return data


def initial_weights(config: TrainConfig, template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The verified weights of the ``init_from`` card (state dict) and a record of where they came from.

    Raises:
        ConfigError: the card cannot be read, is of another stage, or builds another network than ``template``.
        ModelError: its weights are missing or fail their sha256.
    """
    from SmoothSegNetLib.models import load_card, load_model

    assert config.init_from is not None
    path = resolve_path(config, config.init_from)
    card = load_card(path)
    if card.task != config.stage:
        raise ConfigError(f"init_from {path} is a {card.task!r} card but the config's stage is {config.stage!r}")
    # The raw "architecture" object as the card file has it (name and arguments), compared with the template's.
    if card.raw.get("architecture") != template.get("architecture"):
        raise ConfigError(
            f"init_from {path} builds another network ({card.raw.get('architecture')}) than this config's card "
            f"template ({template.get('architecture')}): the architecture must be the same to start from its weights"
        )
    network = load_model(card)
    record = {"card": card.id, "weights_sha256": card.weights.sha256, "version": card.version}
    return network.state_dict(), record


def clinical_targets(
    train_records: list[dict[str, Any]], val_records: list[dict[str, Any]], folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Out-of-fold TLVR predictions for training records, and predictions for validation records.

    Records hold ``variables`` (the clinical row) and ``tlvr`` (the reference ratio of the labels).
    """
    table = load_variable_table()
    x_train, names = encode_records([r["variables"] for r in train_records], table)
    y_train = np.array([r["tlvr"] for r in train_records], dtype=float)
    oof = out_of_fold_tlvr(x_train, y_train, kfold_indices(len(y_train), min(folds, len(y_train)), seed), seed=seed)
    alpha = choose_alpha(x_train, y_train, sorted(set(oof.alphas)) or [1.0], seed)
    model = fit_ridge(x_train, y_train, alpha)
    x_val, _names = encode_records([r["variables"] for r in val_records], table)
    val_pred = np.clip(model.predict(x_val), 0.0, 1.0) if len(val_records) else np.zeros(0)
    y_val = np.array([r["tlvr"] for r in val_records], dtype=float)
    summary = {
        "model": "ridge regression on standardised clinical variables, strength by inner 5-fold CV",
        "predictors": names,
        "out_of_fold_pearson_r": round(oof.pearson_r, 4),
        "out_of_fold_mae": round(oof.mae, 5),
        "validation_mae": round(float(np.mean(np.abs(val_pred - y_val))), 5) if len(y_val) else None,
        "alphas": [round(a, 4) for a in oof.alphas],
    }
    log.info("clinical TLVR regression: out-of-fold r %.3f, MAE %.4f", oof.pearson_r, oof.mae)
    return oof.predictions, val_pred, summary


def _with_targets(cases: list[PreparedCase], targets: np.ndarray) -> list[PreparedCase]:
    return [dataclasses.replace(c, tlvr_target=float(t)) for c, t in zip(cases, targets)]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def build_cases(
    config: TrainConfig,
    card_template: dict[str, Any],
    progress: ProgressCallback,
    cancel: CancelCheck | None,
    data_workers: int = 1,
) -> tuple[list[PreparedCase], list[PreparedCase], dict[str, Any]]:
    """Training and validation cases of the config's data source, and the data record for the card.

    ``data_workers``: processes that render the phantoms (the cases do not depend on it).
    """
    from SmoothSegNetLib.models import card_from_dict

    card = card_from_dict(card_template, source="card template")
    data = config.data
    if data.kind == "phantom":
        from SmoothSegNetLib.training.phantom_data import TUMOR_STAGE_FOV_MM, phantom_cases

        train_seeds = list(range(*data.train_seeds))
        val_seeds = list(range(*data.val_seeds))
        train, train_records = phantom_cases(
            train_seeds, card, data, progress=sub_progress(progress, 0, 0.8), cancel=cancel, workers=data_workers
        )
        val, val_records = phantom_cases(
            val_seeds, card, data, progress=sub_progress(progress, 0.8, 1.0), cancel=cancel, workers=data_workers
        )
        record: dict[str, Any] = {
            "data": "synthetic phantoms (SmoothSegNetLib.phantom.make_phantom), no patient data",
            "generator": f"SmoothSegNetLib {__version__} phantom generator, git {_git_commit() or 'unknown'}",
            "train_seeds": f"{data.train_seeds[0]}..{data.train_seeds[1] - 1}",
            "validation_seeds": f"{data.val_seeds[0]}..{data.val_seeds[1] - 1}",
            "render": {
                "spacing_jitter": data.spacing_jitter,
                "oblique_fraction": data.oblique_fraction,
                "field_of_view_mm": list(data.phantom_size_mm if config.stage == "liver" else TUMOR_STAGE_FOV_MM),
            },
        }
    else:
        from SmoothSegNetLib.training.datasets import dataset_cases

        train, train_records, val, val_records, record = dataset_cases(config, card, progress=progress, cancel=cancel)
    if config.stage == "tumor" and config.loss.smoothing == "clinical":
        usable = all(r.get("variables") is not None and not math.isnan(float(r["tlvr"])) for r in train_records)
        if not usable or len(train_records) < 6:
            raise ConfigError(
                "loss.smoothing is clinical but the training cases lack clinical variables (or are fewer than 6): "
                "give data.clinical_table, or use loss.smoothing none / conventional"
            )
        train_targets, val_targets, summary = clinical_targets(train_records, val_records, data.folds, config.seed)
        train = _with_targets(train, train_targets)
        val = _with_targets(val, val_targets)
        record["clinical_regression"] = summary
    return train, val, record


def run_training(
    config: TrainConfig,
    outdir: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
    data_workers: int = 1,
    finish_by: float | None = None,
) -> TrainResult:
    """Build the data of ``config`` and train its stage into ``outdir`` (see :func:`train_stage`).

    ``data_workers``: processes that render the training phantoms (the same cases whatever the number).
    ``finish_by``: a ``time.monotonic()`` time by which the card must be written, data building included (the time
    budget is cut once the data is built; :func:`SmoothSegNetLib.training.trainer.train_stage`).
    """
    template = card_template_for(config)
    # A resumed fine-tune continues from its checkpoint, but its card still says which weights it started from.
    initial = initial_weights(config, template) if config.init_from else None
    train, val, record = build_cases(
        config, copy.deepcopy(template), sub_progress(progress, 0.0, 0.1), cancel, data_workers
    )
    log.info("%d training and %d validation cases", len(train), len(val))
    if initial is not None:
        record["initialised_from"] = initial[1]
    return train_stage(
        config,
        train,
        val,
        outdir,
        card_template=template,
        training_record=record,
        resume=resume,
        initial_state=None if resume or initial is None else initial[0],
        device=device,
        progress=sub_progress(progress, 0.1, 1.0),
        cancel=cancel,
        finish_by=finish_by,
    )
