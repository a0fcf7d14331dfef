"""Training configuration: one JSON file per stage, parsed into frozen dataclasses with checked values.

Example (``Resources/Training/demo-tumor.json``)::

    {"schema": "smoothsegnet.train_config/1", "stage": "tumor", "card_template": "demo",
     "data": {"kind": "phantom", "train_seeds": [1000, 1040], "val_seeds": [2000, 2004]},
     "patch_size_ijk": [64, 64, 48], "batch_size": 2, "iterations": 1200, ...}

Relative paths in the file are resolved against the file's folder.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from SmoothSegNetLib.errors import InputError

CONFIG_SCHEMA_ID = "smoothsegnet.train_config/1"
STAGES = ("liver", "tumor")
DATA_KINDS = ("phantom", "datalist", "hcc_tace_seg", "nrrd_layout", "nifti")


class ConfigError(InputError):
    """A training configuration file is missing, not JSON, or has a bad value (the message names the field)."""


@dataclass(frozen=True)
class LossConfig:
    """Loss settings (see :class:`~SmoothSegNetLib.training.loss.SmoothSegLoss`).

    ``tlvr_scope``: ``patch`` compares the soft TLVR of each training patch with the case's clinical TLVR (as
    the reference code, whose patches are random crops of the liver crop; the two ratios differ when the patch
    is not the whole liver); ``whole`` trains on whole cases (one per batch, padded) so the soft TLVR is the
    case's own — exact, but each step costs a whole liver crop (a GPU setting).
    ``lambda_lesion``: weight of the lesion-balanced tumor cross-entropy
    (:func:`~SmoothSegNetLib.training.loss.lesion_balanced_ce`: every lesion of a patch counts the same,
    whatever its size), beside Dice, Focal and the clinical term; 0 leaves it out.
    ``lambda_false``: weight of its counterpart for false lesions
    (:func:`~SmoothSegNetLib.training.loss.false_lesion_ce`: every component the network calls tumor that holds
    no lesion voxel counts the same); 0 leaves it out.
    """

    smoothing: str = "clinical"
    lambda_tlvr: float = 0.5
    lambda_dice: float = 1.0
    lambda_focal: float = 1.0
    lambda_lesion: float = 0.0
    lambda_false: float = 0.0
    gamma: float = 2.0
    epsilon: float = 0.1
    tlvr_scope: str = "patch"


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of training patches (intensities are the windowed [0, 1] values)."""

    intensity_scale: float = 0.1
    intensity_shift: float = 0.05
    noise_std: float = 0.02
    gamma_range: tuple[float, float] = (0.8, 1.25)
    flip_axes: tuple[int, ...] = ()
    probability: float = 0.8


@dataclass(frozen=True)
class DataConfig:
    """Where the cases come from.

    ``kind``: ``phantom`` (seeds of the synthetic generator), ``datalist`` (a JSON list of image/label
    files), ``hcc_tace_seg`` (the TCIA download), ``nrrd_layout`` (the reference code's NRRD folders) or
    ``nifti`` (LiTS / MSD Task03). ``root``: file or folder for the non-phantom kinds. ``folds`` and
    ``fold``: patient-level k-fold split (validation = fold ``fold``); ``split_file``: a reference
    ``train.txt`` whose complement is held out. ``clinical_table``: the clinical spreadsheet (xlsx/csv) that
    feeds the TLVR regression. ``portal_vein_as_liver``: label 3 counts as liver (the reference code's choice)
    instead of background. ``liver_mask_dilation_mm``: tumor stage, ``[low, high]``: each case's reference
    liver is filled and grown by a distance drawn uniformly from this range (fixed per case) before it masks
    the image, so the network sees the liver's border and learns to tell the liver from its surroundings, as
    the pipeline does with a card's ``input.liver_mask_dilation_mm``; ``[0, 0]`` masks with the liver itself.
    ``wall_lesion_fraction`` (phantoms): share of seeds rendered with one more lesion whose edge meets the
    body-wall or paraspinal muscle (a dark lesion running into muscle of its own attenuation; issue 12).
    ``small_lesions`` (phantoms): ``[low, high]``: each seed is rendered with a number of extra 5-20 mm lesions
    drawn uniformly from ``low..high`` (fixed per seed; ``[0, 0]``: none), some at the liver's surface or against
    a vein (issue 16: the sizes the demo network misses).
    """

    kind: str = "phantom"
    root: str | None = None
    train_seeds: tuple[int, int] = (1000, 1040)
    val_seeds: tuple[int, int] = (2000, 2004)
    phantom_size_mm: tuple[float, float, float] = (384.0, 384.0, 300.0)
    spacing_jitter: float = 0.15
    oblique_fraction: float = 0.25
    folds: int = 5
    fold: int = 0
    split_file: str | None = None
    clinical_table: str | None = None
    portal_vein_as_liver: bool = True
    liver_mask_dilation_mm: tuple[float, float] = (0.0, 0.0)
    wall_lesion_fraction: float = 0.0
    small_lesions: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. ``card_template``: ``demo`` or a path to a card JSON to start from.

    ``select_weights``: ``best`` keeps the weights of the best validation, ``last`` those of the last
    iteration (the end of the learning-rate decay; steadier when the validation figure is noisy).
    ``val_patches``: 0 validates on whole cases; N > 0 on N fixed patches per validation case (drawn once
    with the run's seed, half of them centred on the target class) — much cheaper on a CPU.
    ``foreground_sampling``: how foreground-centred training patches pick their centre: ``voxel`` (any
    voxel of the target class, so large lesions dominate) or ``lesion`` (a lesion drawn uniformly first).
    ``init_from``: a model card of the same stage and architecture whose (sha256-verified) weights start the
    run instead of a random initialisation (a fine-tune; the optimiser and schedule start afresh). Relative
    to the config file's folder; ``train --init-from`` overrides it.
    ``input_spacing_mm``: the network's grid for this run and its card, instead of the template card's
    ``input.spacing_mm`` (a fine-tune that teaches a network another scale; docs/small-lesions.md section 11).
    """

    stage: str
    card_template: str = "demo"
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    patch_size_ijk: tuple[int, int, int] = (64, 64, 48)
    batch_size: int = 2
    foreground_patch_fraction: float = 0.6
    foreground_sampling: str = "voxel"
    iterations: int = 1000
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    val_every: int = 100
    val_patches: int = 0
    select_weights: str = "best"
    patience: int = 5
    checkpoint_every: int = 50
    max_minutes: float = 0.0
    seed: int = 0
    amp: bool = True
    channels_last: bool = True
    num_threads: int = 0
    tensorboard: bool = False
    card_id: str | None = None
    card_version: str | None = None
    init_from: str | None = None
    input_spacing_mm: tuple[float, float, float] | None = None
    base_dir: str = "."

    @property
    def out_channels(self) -> int:
        return 2 if self.stage == "liver" else 3


def _fail(source: str, name: str, rule: str, value: Any) -> ConfigError:
    return ConfigError(f"training config {source}: field {name} {rule}, got {value!r}; fix the file")


def _check_range(source: str, name: str, value: Any, kinds: tuple[type, ...], high: float, unit: str) -> None:
    """``value`` must be ``[low, high]`` of ``kinds`` (not bool) with ``0 <= low <= high <= high``."""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, kinds) and not isinstance(v, bool) for v in value)
        or not 0 <= value[0] <= value[1] <= high
    ):
        raise _fail(
            source,
            name,
            f"must be [low, high] {unit} with 0 <= low <= high <= {high:g}",
            list(value) if isinstance(value, (list, tuple)) else value,
        )


def _check_number(source: str, name: str, value: Any, low: float, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise _fail(source, name, f"must be a number in [{low}, {high}]", value)


def _build(cls: Any, data: Any, source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise _fail(source, prefix or "(top level)", "must be a JSON object", data)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known) - {"schema", "_comment"})
    if unknown:
        raise _fail(
            source,
            f"{prefix}{unknown[0]}",
            f"is not a known setting (known: {', '.join(sorted(known))})",
            data[unknown[0]],
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name in ("schema", "_comment"):
            continue
        if isinstance(value, list):
            value = tuple(value)
        values[name] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"training config {source}: {prefix or 'top level'} is incomplete: {exc}") from exc


def config_from_dict(
    data: dict[str, Any], source: str = "<dict>", base_dir: str | os.PathLike[str] = "."
) -> TrainConfig:
    """Validate ``data`` and build a :class:`TrainConfig` (nested objects become their dataclasses)."""
    if not isinstance(data, dict):
        raise _fail(source, "(top level)", "must be a JSON object", type(data).__name__)
    schema = data.get("schema", CONFIG_SCHEMA_ID)
    if schema != CONFIG_SCHEMA_ID:
        raise _fail(source, "schema", f"must be {CONFIG_SCHEMA_ID!r}", schema)
    top = dict(data)
    nested = {
        "data": _build(DataConfig, top.pop("data", {}), source, "data."),
        "loss": _build(LossConfig, top.pop("loss", {}), source, "loss."),
        "augment": _build(AugmentConfig, top.pop("augment", {}), source, "augment."),
    }
    top["base_dir"] = str(base_dir)
    config: TrainConfig = _build(TrainConfig, {**top, **nested}, source, "")
    check_config(config, source)
    return config


def check_config(config: TrainConfig, source: str) -> None:
    """Raise :class:`ConfigError` for the first value that breaks a rule."""
    if config.stage not in STAGES:
        raise _fail(source, "stage", f"must be one of {', '.join(STAGES)}", config.stage)
    d, lo, au = config.data, config.loss, config.augment
    if d.kind not in DATA_KINDS:
        raise _fail(source, "data.kind", f"must be one of {', '.join(DATA_KINDS)}", d.kind)
    if d.kind != "phantom" and not d.root:
        raise _fail(source, "data.root", f"is required for data.kind {d.kind!r} (the dataset file or folder)", d.root)
    for name, seeds in (("data.train_seeds", d.train_seeds), ("data.val_seeds", d.val_seeds)):
        if len(seeds) != 2 or not all(isinstance(s, int) and s >= 0 for s in seeds) or seeds[0] >= seeds[1]:
            raise _fail(
                source, name, "must be [first, end) with 0 <= first < end (a half-open seed range)", list(seeds)
            )
    if max(d.train_seeds[0], d.val_seeds[0]) < min(d.train_seeds[1], d.val_seeds[1]):
        raise _fail(
            source, "data.val_seeds", f"must not overlap data.train_seeds {list(d.train_seeds)}", list(d.val_seeds)
        )
    _check_number(source, "data.spacing_jitter", d.spacing_jitter, 0.0, 0.5)
    _check_number(source, "data.oblique_fraction", d.oblique_fraction, 0.0, 1.0)
    _check_number(source, "data.wall_lesion_fraction", d.wall_lesion_fraction, 0.0, 1.0)
    _check_range(source, "data.liver_mask_dilation_mm", d.liver_mask_dilation_mm, (int, float), 50.0, "millimetres")
    _check_range(source, "data.small_lesions", d.small_lesions, (int,), 20, "lesion counts")
    if not isinstance(d.folds, int) or d.folds < 2 or not isinstance(d.fold, int) or not 0 <= d.fold < d.folds:
        raise _fail(
            source, "data.fold", f"must be an integer in [0, data.folds) with data.folds >= 2 (folds={d.folds})", d.fold
        )
    if lo.smoothing not in ("clinical", "conventional", "none"):
        raise _fail(source, "loss.smoothing", "must be one of clinical, conventional, none", lo.smoothing)
    if lo.smoothing == "clinical" and config.stage == "liver":
        raise _fail(
            source,
            "loss.smoothing",
            "clinical needs the 3-class tumor stage; use none or conventional for the liver stage",
            lo.smoothing,
        )
    if config.select_weights not in ("best", "last"):
        raise _fail(source, "select_weights", "must be best or last", config.select_weights)
    if lo.tlvr_scope not in ("patch", "whole"):
        raise _fail(source, "loss.tlvr_scope", "must be patch or whole", lo.tlvr_scope)
    for name in ("lambda_tlvr", "lambda_dice", "lambda_focal", "lambda_lesion", "lambda_false", "gamma"):
        _check_number(source, f"loss.{name}", getattr(lo, name), 0.0, 100.0)
    _check_number(source, "loss.epsilon", lo.epsilon, 0.0, 0.99)
    for name in ("intensity_scale", "intensity_shift", "noise_std", "probability"):
        _check_number(source, f"augment.{name}", getattr(au, name), 0.0, 1.0)
    if len(au.gamma_range) != 2 or not 0 < au.gamma_range[0] <= au.gamma_range[1]:
        raise _fail(source, "augment.gamma_range", "must be [low, high] with 0 < low <= high", list(au.gamma_range))
    if not all(a in (0, 1, 2) for a in au.flip_axes):
        raise _fail(source, "augment.flip_axes", "must list network axes 0, 1 or 2", list(au.flip_axes))
    if len(config.patch_size_ijk) != 3 or not all(
        isinstance(n, int) and 8 <= n <= 512 and n % 8 == 0 for n in config.patch_size_ijk
    ):
        raise _fail(source, "patch_size_ijk", "must be three multiples of 8 in [8, 512]", list(config.patch_size_ijk))
    for name, low in (
        ("batch_size", 1),
        ("iterations", 1),
        ("val_every", 1),
        ("val_patches", 0),
        ("patience", 1),
        ("checkpoint_every", 1),
    ):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise _fail(source, name, f"must be an integer >= {low}", value)
    _check_number(source, "foreground_patch_fraction", config.foreground_patch_fraction, 0.0, 1.0)
    if config.foreground_sampling not in ("voxel", "lesion"):
        raise _fail(source, "foreground_sampling", "must be voxel or lesion", config.foreground_sampling)
    _check_number(source, "learning_rate", config.learning_rate, 1e-8, 1.0)
    _check_number(source, "weight_decay", config.weight_decay, 0.0, 1.0)
    _check_number(source, "max_minutes", config.max_minutes, 0.0, 1e6)
    for name in ("amp", "channels_last", "tensorboard"):
        if not isinstance(getattr(config, name), bool):
            raise _fail(source, name, "must be true or false", getattr(config, name))
    if isinstance(config.num_threads, bool) or not isinstance(config.num_threads, int) or config.num_threads < 0:
        raise _fail(source, "num_threads", "must be an integer >= 0 (0 = torch's default)", config.num_threads)
    spacing = config.input_spacing_mm
    if spacing is not None and (
        not isinstance(spacing, tuple)
        or len(spacing) != 3
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.3 <= v <= 10.0 for v in spacing)
    ):
        raise _fail(
            source,
            "input_spacing_mm",
            "must be null or three numbers of millimetres in [0.3, 10]",
            list(spacing) if isinstance(spacing, tuple) else spacing,
        )


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read and validate a training configuration file.

    Raises:
        ConfigError: missing file, invalid JSON, or a bad value (the message names the field and the rule).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"training config {path} does not exist: pass --config with an existing JSON file") from exc
    except OSError as exc:
        raise ConfigError(f"training config {path} cannot be read: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"training config {path} is not valid JSON (line {exc.lineno}: {exc.msg}); fix the file"
        ) from exc
    return config_from_dict(data, source=str(path), base_dir=path.resolve().parent)


def resolve_path(config: TrainConfig, value: str) -> Path:
    """A path from the config, relative paths taken from the config file's folder."""
    path = Path(value)
    return path if path.is_absolute() else Path(config.base_dir) / path


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """The configuration as plain JSON-able data (for the card and the run folder)."""
    from dataclasses import asdict

    data = asdict(config)
    data.pop("base_dir", None)
    data["schema"] = CONFIG_SCHEMA_ID
    return data
