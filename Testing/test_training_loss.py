"""The SmoothSegNet loss on tiny inputs whose probabilities (and so every term) are known exactly."""

from __future__ import annotations

import math
import re

import pytest
import torch

from SmoothSegNetLib.training.loss import (
    Smoothing,
    SmoothSegLoss,
    false_lesion_ce,
    lesion_balanced_ce,
    soft_tlvr,
)

# Two voxels, three classes (background, liver, tumor); logits = log(p) so softmax gives p exactly.
PROBS = torch.tensor([[0.2, 0.5], [0.3, 0.4], [0.5, 0.1]], dtype=torch.float64).reshape(1, 3, 2, 1, 1)
LABELS = torch.tensor([2, 0]).reshape(1, 1, 2, 1, 1)


def test_soft_tlvr_is_tumor_over_liver_plus_tumor() -> None:
    # tumor mass 0.5 + 0.1 = 0.6; liver mass 0.3 + 0.4 = 0.7 -> 0.6 / 1.3
    assert soft_tlvr(PROBS).item() == pytest.approx(6 / 13, abs=1e-12)


def test_soft_tlvr_of_empty_liver_is_zero() -> None:
    probs = torch.zeros(2, 3, 2, 2, 2)
    probs[:, 0] = 1.0
    assert soft_tlvr(probs).tolist() == [0.0, 0.0]


def test_clinical_term_alone_is_lambda_times_squared_error() -> None:
    loss = SmoothSegLoss(Smoothing.CLINICAL, lambda_tlvr=0.5, lambda_dice=0, lambda_focal=0)
    value = loss(PROBS.log(), LABELS, torch.tensor([0.2]))
    assert value.item() == pytest.approx(0.5 * (6 / 13 - 0.2) ** 2, abs=1e-9)


def test_clinical_term_ignores_items_without_target() -> None:
    logits = torch.cat([PROBS, PROBS]).log()
    labels = torch.cat([LABELS, LABELS])
    loss = SmoothSegLoss("clinical", lambda_tlvr=1.0, lambda_dice=0, lambda_focal=0)
    value = loss(logits, labels, torch.tensor([float("nan"), 6 / 13]))
    assert value.item() == pytest.approx(0.0, abs=1e-9)
    assert loss(logits, labels, torch.tensor([float("nan"), float("nan")])).item() == 0.0


def test_focal_term_matches_hand_computation() -> None:
    loss = SmoothSegLoss("none", lambda_dice=0, gamma=2.0)
    # true-class probabilities 0.5 and 0.5: each -(1-0.5)^2 ln 0.5, averaged over 3 classes x 2 voxels
    expected = 2 * (0.25 * -math.log(0.5)) / 6
    assert loss(PROBS.log(), LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_dice_term_matches_hand_computation() -> None:
    loss = SmoothSegLoss("none", lambda_focal=0)
    s = 1e-5
    background = 1 - (2 * 0.5 + s) / (1 + 0.7 + s)
    liver = 1 - (0 + s) / (0 + 0.7 + s)
    tumor = 1 - (2 * 0.5 + s) / (1 + 0.6 + s)
    assert loss(PROBS.log(), LABELS).item() == pytest.approx((background + liver + tumor) / 3, rel=1e-6)


def test_conventional_smoothing_changes_targets_exactly() -> None:
    loss = SmoothSegLoss("conventional", epsilon=0.3)
    target = loss.one_hot_target(LABELS, 3)
    assert target[0, :, 0, 0, 0].tolist() == pytest.approx([0.1, 0.1, 0.8])
    assert target[0, :, 1, 0, 0].tolist() == pytest.approx([0.8, 0.1, 0.1])
    # a perfect smoothed prediction has a lower loss than the one-hot-perfect one
    perfect_smoothed = loss(target.log(), LABELS).item()
    assert (
        perfect_smoothed
        < loss(torch.nn.functional.one_hot(LABELS[:, 0], 3).movedim(-1, 1).clamp(1e-4).log(), LABELS).item()
    )


def test_total_is_sum_of_terms() -> None:
    tlvr = torch.tensor([0.1])
    parts = [
        SmoothSegLoss("none", lambda_focal=0)(PROBS.log(), LABELS).item(),
        SmoothSegLoss("none", lambda_dice=0)(PROBS.log(), LABELS).item(),
        SmoothSegLoss("clinical", lambda_dice=0, lambda_focal=0)(PROBS.log(), LABELS, tlvr).item(),
    ]
    assert SmoothSegLoss()(PROBS.log(), LABELS, tlvr).item() == pytest.approx(sum(parts), rel=1e-9)


def test_gradient_flows_to_logits() -> None:
    logits = PROBS.log().clone().requires_grad_(True)
    SmoothSegLoss()(logits, LABELS, torch.tensor([0.0])).backward()
    assert logits.grad is not None and torch.all(torch.isfinite(logits.grad)) and logits.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"smoothing": "gaussian"}, "smoothing must be one of clinical, conventional, none"),
        ({"lambda_tlvr": -0.5}, "lambda_tlvr must be a finite number >= 0, got -0.5"),
        ({"lambda_dice": float("nan")}, "lambda_dice"),
        ({"gamma": -1}, "gamma"),
        ({"lambda_lesion": -0.5}, "lambda_lesion must be a finite number >= 0, got -0.5"),
        ({"lambda_false": float("nan")}, "lambda_false must be a finite number >= 0, got nan"),
        ({"epsilon": 1.0}, "epsilon (conventional label smoothing) must be in [0, 1), got 1.0"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        SmoothSegLoss(**kwargs)  # type: ignore[arg-type]


def test_clinical_without_target_is_refused() -> None:
    with pytest.raises(ValueError, match="needs tlvr_target"):
        SmoothSegLoss()(PROBS.log(), LABELS)


def test_bad_shapes_and_labels_are_refused() -> None:
    loss = SmoothSegLoss("none")
    with pytest.raises(ValueError, match="same number of axes"):
        loss(PROBS.log(), LABELS[0])
    with pytest.raises(ValueError, match=r"target labels must be in \[0, 2\]"):
        loss(PROBS.log(), LABELS + 5)
    with pytest.raises(ValueError, match="one value per batch item"):
        SmoothSegLoss()(PROBS.log(), LABELS, torch.tensor([0.1, 0.2]))


# Five voxels in a row: tumor at 0, 1 (one lesion of two voxels) and 3 (a lesion of one voxel).
LINE_LABELS = torch.tensor([2, 2, 0, 2, 1]).reshape(1, 1, 5, 1, 1)
LINE_TUMOR_P = [0.5, 0.25, 0.6, 0.8, 0.1]


def _line_logits() -> torch.Tensor:
    """Logits whose softmax gives tumor probability LINE_TUMOR_P, the rest split evenly."""
    p = torch.tensor(LINE_TUMOR_P, dtype=torch.float64)
    probs = torch.stack([(1 - p) / 2, (1 - p) / 2, p]).reshape(1, 3, 5, 1, 1)
    return probs.log()


def test_lesion_balanced_ce_gives_every_lesion_the_same_weight() -> None:
    value = lesion_balanced_ce(_line_logits(), LINE_LABELS).item()
    # Mean over lesions of each lesion's mean -ln p: ((ln 2 + ln 4) / 2 + -ln 0.8) / 2.
    expected = ((-math.log(0.5) - math.log(0.25)) / 2 - math.log(0.8)) / 2
    assert value == pytest.approx(expected, rel=1e-6)
    # The voxel mean (what a size-blind term gives) is another number: the two-voxel lesion weighs twice.
    voxel_mean = (-math.log(0.5) - math.log(0.25) - math.log(0.8)) / 3
    assert abs(value - voxel_mean) > 0.05


def test_lesion_balanced_ce_separates_lesions_per_batch_item_and_ignores_non_tumor_voxels() -> None:
    logits = torch.cat([_line_logits(), _line_logits()])
    labels = torch.cat([LINE_LABELS, torch.tensor([0, 0, 0, 2, 0]).reshape(1, 1, 5, 1, 1)])
    # Three lesions in all: the two of item 0 and the single voxel 3 of item 1.
    expected = ((-math.log(0.5) - math.log(0.25)) / 2 - math.log(0.8) - math.log(0.8)) / 3
    assert lesion_balanced_ce(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_lesion_balanced_ce_without_tumor_is_zero_with_zero_gradient() -> None:
    logits = _line_logits().clone().requires_grad_(True)
    value = lesion_balanced_ce(logits, torch.zeros_like(LINE_LABELS))
    value.backward()
    assert value.item() == 0.0 and logits.grad is not None and float(logits.grad.abs().sum()) == 0.0


def test_lesion_term_is_added_with_its_weight() -> None:
    loss = SmoothSegLoss("none", lambda_dice=0, lambda_focal=0, lambda_lesion=0.5)
    expected = 0.5 * lesion_balanced_ce(_line_logits(), LINE_LABELS).item()
    assert loss(_line_logits(), LINE_LABELS).item() == pytest.approx(expected, rel=1e-6)
    one_hot = torch.nn.functional.one_hot(LINE_LABELS[:, 0], 3).movedim(-1, 1).double()
    assert loss(_line_logits(), one_hot).item() == pytest.approx(expected, rel=1e-6)


# Seven voxels in a row, called tumor (p >= 0.5) at 0-1, 3 and 5: the component 0-1 and the voxel 5 hold no
# tumor label (false lesions of two voxels and one voxel), the voxel 3 is a true lesion.
FALSE_LABELS = torch.tensor([0, 0, 1, 2, 0, 0, 1]).reshape(1, 1, 7, 1, 1)
FALSE_TUMOR_P = [0.6, 0.7, 0.2, 0.9, 0.3, 0.55, 0.1]


def _false_logits() -> torch.Tensor:
    p = torch.tensor(FALSE_TUMOR_P, dtype=torch.float64)
    probs = torch.stack([(1 - p) / 2, (1 - p) / 2, p]).reshape(1, 3, 7, 1, 1)
    return probs.log()


def test_false_lesion_ce_gives_every_false_lesion_the_same_weight() -> None:
    value = false_lesion_ce(_false_logits(), FALSE_LABELS).item()
    # Mean over the two false lesions of each one's mean -ln(1 - p): ((-ln 0.4 - ln 0.3) / 2 - ln 0.45) / 2.
    expected = ((-math.log(0.4) - math.log(0.3)) / 2 - math.log(0.45)) / 2
    assert value == pytest.approx(expected, rel=1e-6)
    # The true lesion (voxel 3, -ln 0.1 = 2.3) and the voxels under 0.5 are not in it.
    voxel_mean = (-math.log(0.4) - math.log(0.3) - math.log(0.45)) / 3
    assert abs(value - voxel_mean) > 0.01


def test_false_lesion_ce_gradient_lowers_tumor_only_in_false_lesions() -> None:
    logits = _false_logits().clone().requires_grad_(True)
    false_lesion_ce(logits, FALSE_LABELS).backward()
    assert logits.grad is not None
    tumor_grad = logits.grad[0, 2, :, 0, 0]
    # Descending the loss lowers the tumor logit (positive gradient) at 0, 1, 5 and leaves the rest alone.
    assert [bool(g > 0) for g in tumor_grad] == [True, True, False, False, False, True, False]
    assert [float(g) for g in tumor_grad[[2, 3, 4, 6]]] == [0.0, 0.0, 0.0, 0.0]


def test_false_lesion_ce_is_zero_when_every_called_component_holds_a_lesion() -> None:
    labels = torch.tensor([2, 0, 1, 2, 0, 2, 1]).reshape(1, 1, 7, 1, 1)  # one tumor voxel in each component
    logits = _false_logits().clone().requires_grad_(True)
    value = false_lesion_ce(logits, labels)
    value.backward()
    assert value.item() == 0.0 and logits.grad is not None and float(logits.grad.abs().sum()) == 0.0


def test_false_term_is_added_with_its_weight_beside_the_lesion_term() -> None:
    loss = SmoothSegLoss("none", lambda_dice=0, lambda_focal=0, lambda_lesion=0.5, lambda_false=2.0)
    expected = (
        0.5 * lesion_balanced_ce(_false_logits(), FALSE_LABELS).item()
        + 2.0 * false_lesion_ce(_false_logits(), FALSE_LABELS).item()
    )
    assert loss(_false_logits(), FALSE_LABELS).item() == pytest.approx(expected, rel=1e-6)
