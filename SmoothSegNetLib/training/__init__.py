"""Training SmoothSegNet networks: datasets, clinical TLVR regression, the smoothing loss, the trainer.

Public API::

    from SmoothSegNetLib.training import load_config, run_training, SmoothSegLoss, Smoothing, soft_tlvr
    from SmoothSegNetLib.training import prepare_case, train_stage, out_of_fold_tlvr
"""

from __future__ import annotations

from SmoothSegNetLib.training.clinical import out_of_fold_tlvr
from SmoothSegNetLib.training.config import ConfigError, TrainConfig, load_config
from SmoothSegNetLib.training.loss import Smoothing, SmoothSegLoss, soft_tlvr
from SmoothSegNetLib.training.prepare import prepare_case
from SmoothSegNetLib.training.run import run_training
from SmoothSegNetLib.training.trainer import TrainResult, train_stage

__all__ = [
    "ConfigError",
    "SmoothSegLoss",
    "Smoothing",
    "TrainConfig",
    "TrainResult",
    "load_config",
    "out_of_fold_tlvr",
    "prepare_case",
    "run_training",
    "soft_tlvr",
    "train_stage",
]
