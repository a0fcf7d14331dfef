"""Running a network over a volume: whole (padded) in one pass, or sliding windows with Gaussian blending.

Arrays here are in network layout ``[i, j, k]`` (see :mod:`SmoothSegNetLib.inference.preprocess`). The
result is the *decision probability* of the card's target class, ``q = p_t / (p_t + max_{c != t} p_c)``:
``q > 0.5`` exactly where the target class wins the argmax, for softmax and sigmoid outputs alike, and
``q = p_t`` for a two-class softmax. It is what gets interpolated back onto the input grid and thresholded.

With ``foreground=True`` (a softmax card with a ``background`` class) a second map is returned,
``q_fg = 1 - p_background``: above 0.5 where the other classes together outweigh the background (the tumor
stage's liver-or-tumor decision, used when the card refines the liver).

Everything here is numpy, so the ONNX runtime never imports torch. A network is any callable
``model(batch) -> logits`` on float32 arrays ``[B, C, i, j, k]`` (an :class:`~SmoothSegNetLib.inference.
engines.OnnxModel`); a torch module (anything with a ``state_dict``) is wrapped for the torch runtime
(:mod:`SmoothSegNetLib.inference.runtime_torch`: GPU, mixed precision) as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from SmoothSegNetLib.models.card import ModelCard
from SmoothSegNetLib.progress import CancelCheck, ProgressCallback, check_cancel, no_progress

#: Sigma of the Gaussian blending weight, as a fraction of the window size (MONAI's default).
SIGMA_SCALE = 0.125


#: A network as the window code sees it: float32 ``[B, C, i, j, k]`` -> logits ``[B, C_out, i, j, k]``.
Forward = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RunSettings:
    """How one network pass is run (from the card, possibly overridden by the caller).

    ``device``, ``amp`` and ``cpu_bf16`` matter only to a torch module (a ``torch.device``); an ONNX model
    runs on the CPU in float32.
    """

    device: Any = "cpu"
    batch_size: int = 1
    amp: bool = True
    cpu_bf16: bool = False


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=0, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=0, keepdims=True)
    return shifted


def _probabilities(logits: Any, activation: str) -> np.ndarray:
    values = np.asarray(logits).astype(np.float32, copy=True)  # a copy: the activation works in place
    if activation == "softmax":
        return _softmax(values)
    return np.asarray(1.0 / (1.0 + np.exp(-values)), dtype=np.float32)


def decision_probability(logits: Any, activation: str, target: int) -> np.ndarray:
    """``q`` of the target channel from logits ``[C, ...]`` (numpy, or a CPU tensor; see the module docstring)."""
    return _decision(_probabilities(logits, activation), target)


def _decision(probs: np.ndarray, target: int) -> np.ndarray:
    p_t = probs[target]
    if probs.shape[0] == 1:
        return p_t
    p_o = np.max(np.delete(probs, target, axis=0), axis=0)
    return p_t / np.maximum(p_t + p_o, 1e-12)


def decision_maps(logits: Any, card: ModelCard, foreground: bool) -> np.ndarray:
    """``[q]`` or ``[q, q_fg]`` (stacked on a new first axis) from logits ``[C, ...]``."""
    if foreground and card.activation != "softmax":
        raise ValueError(f"model card {card.id!r}: a foreground map needs a softmax output")
    probs = _probabilities(logits, card.activation)
    q = _decision(probs, card.channel_of(card.task))
    if not foreground:
        return q[None]
    return np.stack([q, 1.0 - probs[card.channel_of("background")]])


def _pad_to(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    pad = [(0, max(0, s - n)) for n, s in zip(image.shape, shape)]
    return np.pad(image, pad) if any(p[1] for p in pad) else image


def as_forward(network: Any, settings: RunSettings) -> Forward:
    """``network`` as a numpy :data:`Forward`: a torch module is wrapped (torch imported only then)."""
    if hasattr(network, "state_dict"):
        from SmoothSegNetLib.inference.runtime_torch import torch_forward

        return torch_forward(network, settings)
    return network  # type: ignore[no-any-return]


def _forward(forward: Forward, batch: np.ndarray, mirror_axes: tuple[int, ...] = ()) -> np.ndarray:
    """Logits ``[B, C, i, j, k]``; with ``mirror_axes`` the mean over every combination of flips along those
    network axes (each flipped output flipped back), as nnU-Net's test-time mirroring."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    total = np.array(forward(batch), dtype=np.float32)
    combos = [c for n in range(1, len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, n)]
    for combo in combos:
        axes = tuple(2 + a for a in combo)
        flipped = np.ascontiguousarray(np.flip(batch, axes))
        total += np.flip(forward(flipped), axes)
    if combos:
        total /= 1 + len(combos)
    return total


def predict_whole(
    network: Any,
    image_ijk: np.ndarray,
    card: ModelCard,
    settings: RunSettings,
    foreground: bool = False,
) -> np.ndarray:
    """One forward pass over the image padded to a multiple of ``size_divisible_by``; float32 ``q`` ``[i, j, k]``
    (``[2, i, j, k]``: ``q`` and ``q_fg`` with ``foreground``)."""
    d = card.inference.size_divisible_by
    shape = tuple(int(np.ceil(n / d) * d) for n in image_ijk.shape)
    padded = _pad_to(image_ijk, shape)
    logits = _forward(as_forward(network, settings), padded[None, None], card.inference.mirror_axes)[0]
    i, j, k = image_ijk.shape
    q = decision_maps(logits[:, :i, :j, :k], card, foreground)
    return _maps_out(q, foreground)


def _maps_out(maps: np.ndarray, foreground: bool) -> np.ndarray:
    out = maps.astype(np.float32, copy=False)
    return out if foreground else out[0]


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices of windows of ``roi`` voxels covering ``size`` voxels with the given overlap."""
    if size <= roi:
        return [0]
    step = max(1, int(roi * (1.0 - overlap)))
    starts = list(range(0, size - roi + 1, step))
    if starts[-1] != size - roi:
        starts.append(size - roi)
    return starts


def _gaussian_weight(roi: tuple[int, int, int]) -> np.ndarray:
    axes = []
    for n in roi:
        centre = (n - 1) / 2.0
        sigma = max(n * SIGMA_SCALE, 1e-3)
        axes.append(np.exp(-0.5 * ((np.arange(n) - centre) / sigma) ** 2))
    weight = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    weight = weight / weight.max()
    return np.maximum(weight, 1e-3).astype(np.float32)


def _batches(items: list[tuple[int, int, int]], size: int) -> Iterator[list[tuple[int, int, int]]]:
    for n in range(0, len(items), size):
        yield items[n : n + size]


def predict_sliding(
    network: Any,
    image_ijk: np.ndarray,
    card: ModelCard,
    settings: RunSettings,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
    stage: str = "",
    foreground: bool = False,
) -> np.ndarray:
    """Windows of ``roi_size_ijk`` with ``overlap``, logits blended with a Gaussian weight; float32 ``q``
    (``[2, ...]`` with ``foreground``, as :func:`predict_whole`)."""
    roi = card.inference.roi_size_ijk
    if roi is None:
        raise ValueError(f"model card {card.id!r} has no inference.roi_size_ijk for sliding windows")
    original = image_ijk.shape
    image = _pad_to(image_ijk, roi)
    starts = [window_starts(n, r, card.inference.overlap) for n, r in zip(image.shape, roi)]
    positions: list[tuple[int, int, int]] = [(a, b, c) for a, b, c in itertools.product(*starts)]
    weight = _gaussian_weight(roi)
    channels = card.out_channels
    acc = np.zeros((channels, *image.shape), dtype=np.float32)
    norm = np.zeros(image.shape, dtype=np.float32)
    done = 0
    forward = as_forward(network, settings)
    for batch in _batches(positions, settings.batch_size):
        check_cancel(cancel)
        windows = np.stack([image[i : i + roi[0], j : j + roi[1], k : k + roi[2]] for i, j, k in batch])
        logits = _forward(forward, windows[:, None], card.inference.mirror_axes)
        for (i, j, k), out in zip(batch, logits):
            acc[:, i : i + roi[0], j : j + roi[1], k : k + roi[2]] += out * weight
            norm[i : i + roi[0], j : j + roi[1], k : k + roi[2]] += weight
        done += len(batch)
        progress(stage, done / len(positions), f"window {done}/{len(positions)}")
    acc /= norm
    del norm
    i, j, k = original
    q = decision_maps(acc[:, :i, :j, :k], card, foreground)
    return _maps_out(q, foreground)


def predict(
    network: Any,
    image_ijk: np.ndarray,
    card: ModelCard,
    settings: RunSettings,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
    stage: str = "",
    foreground: bool = False,
) -> np.ndarray:
    """Whole-volume or sliding-window prediction as the card says (whole switches to windows above
    ``max_voxels``); ``[2, i, j, k]`` maps with ``foreground`` (see the module docstring)."""
    check_cancel(cancel)
    spec = card.inference
    too_big = spec.max_voxels is not None and int(np.prod(image_ijk.shape)) > spec.max_voxels
    if spec.mode == "whole" and not (too_big and spec.roi_size_ijk is not None):
        q = predict_whole(network, image_ijk, card, settings, foreground)
        progress(stage, 1.0, "whole volume")
        return q
    return predict_sliding(network, image_ijk, card, settings, progress, cancel, stage, foreground)
