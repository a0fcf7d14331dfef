"""Test model cards with tiny networks whose output is a known function of the input.

``threshold_card`` builds a 1x1x1 ``Conv3d`` whose target-channel logit is ``gain * (x - x0)`` where ``x`` is
the windowed intensity in [0, 1] and every other channel's logit is 0. With softmax, the decision
probability is above 0.5 exactly where ``x > x0``, i.e. where HU > ``threshold_hu``; so the expected mask
of a synthetic CT can be computed by hand.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.models import demo_card_template, save_weights, write_trained_card
from SmoothSegNetLib.models.card import card_from_dict
from SmoothSegNetLib.models.network import build_network


def _threshold_template(
    task: str, *, spacing_mm: list[float] | None, orientation: str, hu_window: list[float], mode: str
) -> dict[str, Any]:
    card = demo_card_template(task)
    card["id"] = f"test-{task}"
    card["title"] = f"TEST {task} threshold network (1x1x1 convolution with set weights)"
    channels = 2 if task == "liver" else 3
    card["architecture"] = {
        "name": "Conv3d",
        "args": {"in_channels": 1, "out_channels": channels, "kernel_size": 1},
    }
    card["input"]["spacing_mm"] = spacing_mm
    card["input"]["orientation"] = orientation
    card["input"]["hu_window"] = hu_window
    if task == "tumor":
        card["input"]["liver_mask_dilation_mm"] = 0.0
    card["inference"] = {"mode": mode, "roi_size_ijk": [8, 8, 8], "overlap": 0.25, "size_divisible_by": 1}
    if task == "tumor":
        card["postprocessing"] = {"fill_holes": False, "chan_vese_iterations": 0, "min_lesion_ml": 0.0}
    else:
        card["postprocessing"] = {"largest_component": True, "fill_holes": True}
    return card


def channel_network(card_dict: dict[str, Any], channels: dict[str, tuple[float, float]]) -> torch.nn.Module:
    """A 1x1x1 conv whose logit of class ``id`` is ``gain * (x - x0)`` for each ``id: (threshold_hu, gain)``
    (``x0`` the windowed value of ``threshold_hu``); classes not named have logit 0."""
    card = card_from_dict({**card_dict, "weights": {**card_dict["weights"], "sha256": "0" * 64}})
    network = build_network(card)
    low, high = card.input.hu_window
    with torch.no_grad():
        network.weight.zero_()  # type: ignore[operator]
        network.bias.zero_()  # type: ignore[union-attr, operator]
        for class_id, (threshold_hu, gain) in channels.items():
            channel = card.channel_of(class_id)
            network.weight[channel, 0, 0, 0, 0] = gain  # type: ignore[index]
            network.bias[channel] = -gain * (threshold_hu - low) / (high - low)  # type: ignore[index]
    return network


def threshold_network(card_dict: dict[str, Any], threshold_hu: float, gain: float, above: bool) -> torch.nn.Module:
    """A 1x1x1 conv: target channel logit = ±gain * (x - x0), x0 the windowed value of ``threshold_hu``."""
    return channel_network(card_dict, {card_dict["task"]: (threshold_hu, gain if above else -gain)})


def _save_model(folder: Path, template: dict[str, Any], network: torch.nn.Module) -> Path:
    """Weights + filled card of a set-weights test model in ``folder``; returns the card path."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{template['id']}.safetensors"
    save_weights(network, weights)
    return write_trained_card(template, weights, folder / f"{template['id']}.json", {"data": "none (set weights)"})


def write_threshold_model(
    folder: Path,
    task: str,
    *,
    threshold_hu: float,
    above: bool = True,
    gain: float = 50.0,
    spacing_mm: list[float] | None = None,
    orientation: str = "LPS",
    hu_window: list[float] | None = None,
    mode: str = "whole",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a threshold test model (card + safetensors) into ``folder``; return the card path."""
    window = hu_window if hu_window is not None else ([-150.0, 250.0] if task == "liver" else [-200.0, 250.0])
    template = _threshold_template(task, spacing_mm=spacing_mm, orientation=orientation, hu_window=window, mode=mode)
    for key, value in (extra or {}).items():
        template[key] = {**template.get(key, {}), **value}
    return _save_model(folder, template, threshold_network(template, threshold_hu, gain, above))


def write_random_model(folder: Path, task: str, seed: int = 0, **changes: Any) -> Path:
    """A tiny random-weight SegResNet test model (card + weights); ``changes`` update top-level card fields."""
    template = copy.deepcopy(demo_card_template(task))
    template["id"] = f"test-random-{task}"
    template["architecture"]["args"].update({"init_filters": 4, "blocks_down": [1, 1], "blocks_up": [1]})
    template["inference"]["size_divisible_by"] = 2
    for key, value in changes.items():
        template[key] = {**template.get(key, {}), **value} if isinstance(value, dict) else value
    torch.manual_seed(seed)
    card = card_from_dict({**template, "weights": {**template["weights"], "sha256": "0" * 64}})
    network = build_network(card)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{template['id']}.safetensors"
    save_weights(network, weights)
    return write_trained_card(template, weights, folder / f"{template['id']}.json", {"data": "random"})


def read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def write_channel_model(
    folder: Path,
    task: str,
    channels: dict[str, tuple[float, float]],
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A 1x1x1 conv test model on the native grid whose logit of class ``id`` is ``gain * (x - x0)``.

    ``channels`` maps class ids to ``(threshold_hu, gain)`` (``x0`` the windowed value of ``threshold_hu``, a
    negative gain makes the class win below the threshold); classes not named have logit 0.
    """
    window = [-150.0, 250.0] if task == "liver" else [-200.0, 250.0]
    template = _threshold_template(task, spacing_mm=None, orientation="LPS", hu_window=window, mode="whole")
    for key, value in (extra or {}).items():
        template[key] = {**template.get(key, {}), **value}
    return _save_model(folder, template, channel_network(template, channels))


def threshold_options(
    folder: Path, postprocessing: dict[str, Any], tumor_spacing_mm: list[float] | None = None, **changes: Any
) -> SegmentOptions:
    """SegmentOptions for a pair of threshold test models written into ``folder``: liver HU >= 50, tumor HU >= 150
    (at ``tumor_spacing_mm``, default the template's) with these tumor-card ``postprocessing`` fields."""
    liver = write_threshold_model(folder / "liver", "liver", threshold_hu=50)
    extra = {"postprocessing": postprocessing}
    tumor = write_threshold_model(folder / "tumor", "tumor", threshold_hu=150, spacing_mm=tumor_spacing_mm, extra=extra)
    return SegmentOptions(liver_model=str(liver), tumor_model=str(tumor), device="cpu", **changes)
