"""Training SmoothSegNet networks: datasets, clinical TLVR regression, the smoothing loss, the trainer."""

from __future__ import annotations

from SmoothSegNetLib.training.loss import Smoothing, SmoothSegLoss, soft_tlvr

__all__ = ["SmoothSegLoss", "Smoothing", "soft_tlvr"]
