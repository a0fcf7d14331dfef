"""Test-time mirroring (card ``inference.mirror_axes``): the mean of the logits over every flip combination."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from SmoothSegNetLib.errors import ModelError
from SmoothSegNetLib.inference.window import RunSettings, decision_probability, predict_sliding, predict_whole
from SmoothSegNetLib.models import demo_card_template
from SmoothSegNetLib.models.card import card_from_dict


def _card(mirror_axes: list[int], mode: str = "whole", roi: list[int] | None = None) -> object:
    card = demo_card_template("tumor")
    card["architecture"] = {"name": "Conv3d", "args": {"in_channels": 1, "out_channels": 3, "kernel_size": 3}}
    card["inference"] = {"mode": mode, "size_divisible_by": 1, "mirror_axes": mirror_axes}
    if roi:
        card["inference"]["roi_size_ijk"] = roi
    return card_from_dict({**card, "weights": {**card["weights"], "sha256": "0" * 64}})


def test_mirrored_prediction_is_the_mean_of_the_flipped_logits() -> None:
    torch.manual_seed(0)
    network = torch.nn.Conv3d(1, 3, 3, padding=1)  # a 3x3x3 kernel: not symmetric under flips
    image = np.random.default_rng(1).random((10, 9, 8)).astype(np.float32)
    settings = RunSettings(torch.device("cpu"))
    x = torch.from_numpy(image)[None, None]
    with torch.no_grad():
        outputs = []
        for combo in [(), (0,), (2,), (0, 2)]:
            dims = [2 + a for a in combo]
            outputs.append(torch.flip(network(torch.flip(x, dims)), dims) if dims else network(x))
        expected = decision_probability(torch.stack(outputs).mean(0)[0], "softmax", 2)
        plain = decision_probability(network(x)[0], "softmax", 2)
    mirrored = predict_whole(network, image, _card([0, 2]), settings)  # type: ignore[arg-type]
    np.testing.assert_allclose(mirrored, expected, atol=1e-5)
    assert not np.allclose(mirrored, plain, atol=1e-3)
    np.testing.assert_allclose(predict_whole(network, image, _card([]), settings), plain, atol=1e-5)  # type: ignore[arg-type]
    # One window covering the image: the sliding path mirrors the same way.
    one_window = _card([0, 2], mode="sliding", roi=[10, 9, 8])
    np.testing.assert_allclose(predict_sliding(network, image, one_window, settings), expected, atol=1e-5)  # type: ignore[arg-type]


def test_all_three_axes_make_eight_passes() -> None:
    calls = {"n": 0}

    class Counting(torch.nn.Conv3d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            return super().forward(x)

    network = Counting(1, 3, 1)
    predict_whole(network, np.zeros((4, 4, 4), np.float32), _card([0, 1, 2]), RunSettings(torch.device("cpu")))  # type: ignore[arg-type]
    assert calls["n"] == len(list(itertools.product([0, 1], repeat=3)))


@pytest.mark.parametrize("axes", [[3], [0, 0], [-1]])
def test_bad_mirror_axes_are_refused(axes: list[int]) -> None:
    with pytest.raises(ModelError, match="mirror_axes"):
        _card(axes)
