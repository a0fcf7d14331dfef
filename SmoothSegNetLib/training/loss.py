"""The training loss of SmoothSegNet: Dice + Focal + λ·(soft TLVR − clinical TLVR)².

The third term is the paper's *clinical-knowledge-informed label smoothing*: a regression from clinical
variables predicts each case's tumor-to-liver volume ratio (TLVR), and the network is pulled towards
segmentations whose *soft* TLVR (tumor probability mass over liver + tumor probability mass) matches it.
For ablations the term can be replaced by conventional label smoothing (one-hot targets blended with a
uniform distribution) or switched off.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch
from monai.losses import DiceLoss, FocalLoss
from torch.nn.modules.loss import _Loss


class Smoothing(str, Enum):
    """Which kind of label smoothing the loss applies.

    CLINICAL: the knowledge-informed term ``λ·(soft TLVR − clinical TLVR)²`` (needs a TLVR target).
    CONVENTIONAL: one-hot targets become ``(1 − ε)·y + ε / C`` for Dice and Focal.
    NONE: plain Dice + Focal.
    """

    CLINICAL = "clinical"
    CONVENTIONAL = "conventional"
    NONE = "none"


def soft_tlvr(probabilities: torch.Tensor, liver_channel: int = 1, tumor_channel: int = 2) -> torch.Tensor:
    """Soft tumor-to-liver volume ratio of each batch item.

    Args:
        probabilities: class probabilities, shape ``(B, C, *spatial)`` (e.g. a softmax output).
        liver_channel: channel of liver (without tumor).
        tumor_channel: channel of tumor.

    Returns:
        Shape ``(B,)``: ``Σ p_tumor / (Σ p_liver + Σ p_tumor)`` over the spatial axes; 0 where both sums are 0.
    """
    if probabilities.ndim < 3:
        raise ValueError(f"probabilities must have shape (B, C, *spatial), got {tuple(probabilities.shape)}")
    channels = probabilities.shape[1]
    for name, channel in (("liver_channel", liver_channel), ("tumor_channel", tumor_channel)):
        if not 0 <= channel < channels:
            raise ValueError(f"{name} must be a channel index in [0, {channels - 1}], got {channel}")
    spatial = tuple(range(1, probabilities.ndim - 1))
    tumor = probabilities[:, tumor_channel].sum(dim=spatial)
    liver = probabilities[:, liver_channel].sum(dim=spatial) + tumor
    return torch.where(liver > 0, tumor / liver.clamp_min(torch.finfo(liver.dtype).tiny), torch.zeros_like(tumor))


def _per_component_weights(masks: np.ndarray, skip: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Voxel weights that make every 26-connected component of each batch item's mask weigh 1 in all, and the
    number of such components; components holding a voxel of ``skip`` (same shape) get weight 0 and are not
    counted.

    Args:
        masks: bool ``(B, *spatial)``.
        skip: bool ``(B, *spatial)`` or ``None``.
    """
    from scipy import ndimage

    weights = np.zeros(masks.shape, dtype=np.float32)
    counted = 0
    structure = np.ones((3,) * (masks.ndim - 1), dtype=bool)
    for b in range(masks.shape[0]):
        components, count = ndimage.label(masks[b], structure=structure)
        if not count:
            continue
        sizes = np.bincount(components.ravel(), minlength=count + 1).astype(np.float32)
        kept = np.ones(count + 1, dtype=bool)
        kept[0] = False  # background
        if skip is not None:
            kept[np.unique(components[skip[b]])] = False
        sizes[~kept] = np.inf  # weight 0
        weights[b] = 1.0 / sizes[components]
        counted += int(kept.sum())
    return weights, counted


def lesion_balanced_ce(logits: torch.Tensor, labels: torch.Tensor, tumor_channel: int = 2) -> torch.Tensor:
    """Tumor cross-entropy in which every lesion counts the same, whatever its size.

    ``mean over the lesions L of the batch of ( mean over the voxels v of L of −log p_tumor(v) )``, lesions being
    the 26-connected components of ``labels == tumor_channel`` in each batch item. Dice and Focal sum over
    voxels, so a 2 ml lesion next to a 200 ml one barely moves them; here both weigh alike. 0 (with a gradient
    of 0) when the batch holds no tumor voxel.

    Args:
        logits: raw network output ``(B, C, *spatial)``.
        labels: class indices ``(B, 1, *spatial)``.
        tumor_channel: the tumor class.
    """
    tumor = (labels[:, 0] == tumor_channel).detach().cpu().numpy()
    weights, lesions = _per_component_weights(tumor)
    log_p = torch.log_softmax(logits.float(), dim=1)[:, tumor_channel]
    if lesions == 0:
        return log_p.sum() * 0.0
    return -(torch.from_numpy(weights).to(log_p.device) * log_p).sum() / lesions


def false_lesion_ce(
    logits: torch.Tensor, labels: torch.Tensor, tumor_channel: int = 2, threshold: float = 0.5
) -> torch.Tensor:
    """Non-tumor cross-entropy in which every false lesion counts the same, whatever its size.

    The counterpart of :func:`lesion_balanced_ce`. False lesions are the 26-connected components of
    ``p_tumor >= threshold`` (the pipeline's own rule) in each batch item that hold no voxel of
    ``labels == tumor_channel``; the term is ``mean over them of ( mean over their voxels of −log(1 − p_tumor) )``.
    A small bright vessel or a cyst the network calls tumor then pushes back as hard as a small missed lesion
    pulls, which voxel sums (Dice, Focal) do not do for a few voxels among thousands. The components are chosen
    without gradient; 0 (with a gradient of 0) when there is none.

    Args:
        logits: raw network output ``(B, C, *spatial)``.
        labels: class indices ``(B, 1, *spatial)``.
        tumor_channel: the tumor class.
        threshold: tumor probability at which a voxel counts as called tumor.
    """
    log_p = torch.log_softmax(logits.float(), dim=1)
    others = [c for c in range(logits.shape[1]) if c != tumor_channel]
    log_not_tumor = torch.logsumexp(log_p[:, others], dim=1)
    called = (log_p[:, tumor_channel].detach().exp() >= threshold).cpu().numpy()
    tumor = (labels[:, 0] == tumor_channel).detach().cpu().numpy()
    weights, false = _per_component_weights(called, skip=tumor)
    if false == 0:
        return log_not_tumor.sum() * 0.0
    return -(torch.from_numpy(weights).to(log_p.device) * log_not_tumor).sum() / false


class SmoothSegLoss(_Loss):
    """Dice + Focal (+ knowledge-informed TLVR term or conventional label smoothing), on softmax logits.

    ``loss = λ_dice·Dice + λ_focal·Focal + λ_tlvr·mean_b (soft TLVR_b − target_b)²`` for ``Smoothing.CLINICAL``;
    batch items whose TLVR target is NaN (no clinical prediction) are left out of the third term.

    Args:
        smoothing: a :class:`Smoothing` value (or its string).
        lambda_tlvr: weight λ of the TLVR term, ≥ 0 (the paper: 0.5).
        lambda_dice: weight of the Dice loss, ≥ 0.
        lambda_focal: weight of the Focal loss, ≥ 0.
        lambda_lesion: weight of the lesion-balanced tumor cross-entropy (:func:`lesion_balanced_ce`), ≥ 0.
        lambda_false: weight of the false-lesion-balanced non-tumor cross-entropy (:func:`false_lesion_ce`), ≥ 0.
        gamma: focal exponent, ≥ 0.
        epsilon: conventional smoothing strength in [0, 1) (used only with ``Smoothing.CONVENTIONAL``).
        liver_channel: channel of liver in the network output.
        tumor_channel: channel of tumor in the network output.
        include_background: include channel 0 in Dice and Focal.
    """

    def __init__(
        self,
        smoothing: Smoothing | str = Smoothing.CLINICAL,
        *,
        lambda_tlvr: float = 0.5,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        lambda_lesion: float = 0.0,
        lambda_false: float = 0.0,
        gamma: float = 2.0,
        epsilon: float = 0.1,
        liver_channel: int = 1,
        tumor_channel: int = 2,
        include_background: bool = True,
    ) -> None:
        super().__init__()
        try:
            self.smoothing = Smoothing(smoothing)
        except ValueError as exc:
            allowed = ", ".join(s.value for s in Smoothing)
            raise ValueError(f"smoothing must be one of {allowed}; got {smoothing!r}") from exc
        for name, value in (
            ("lambda_tlvr", lambda_tlvr),
            ("lambda_dice", lambda_dice),
            ("lambda_focal", lambda_focal),
            ("lambda_lesion", lambda_lesion),
            ("lambda_false", lambda_false),
            ("gamma", gamma),
        ):
            if not (value >= 0.0 and value != float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"epsilon (conventional label smoothing) must be in [0, 1), got {epsilon!r}")
        self.lambda_tlvr = float(lambda_tlvr)
        self.lambda_dice = float(lambda_dice)
        self.lambda_focal = float(lambda_focal)
        self.lambda_lesion = float(lambda_lesion)
        self.lambda_false = float(lambda_false)
        self.epsilon = float(epsilon)
        self.liver_channel = int(liver_channel)
        self.tumor_channel = int(tumor_channel)
        self.dice = DiceLoss(include_background=include_background, softmax=True, soft_label=True)
        self.focal = FocalLoss(include_background=include_background, gamma=gamma, use_softmax=True)

    def one_hot_target(self, target: torch.Tensor, channels: int) -> torch.Tensor:
        """Labels ``(B, 1, *spatial)`` (or one-hot ``(B, C, *spatial)``) as float one-hot, smoothed if asked."""
        if target.shape[1] == 1 and channels > 1:
            labels = target[:, 0].long()
            if labels.min() < 0 or labels.max() >= channels:
                raise ValueError(
                    f"target labels must be in [0, {channels - 1}] for a {channels}-channel output, "
                    f"got values in [{int(labels.min())}, {int(labels.max())}]"
                )
            one_hot = torch.nn.functional.one_hot(labels, channels).movedim(-1, 1).float()
        else:
            one_hot = target.float()
        if self.smoothing is Smoothing.CONVENTIONAL and self.epsilon > 0:
            one_hot = one_hot * (1.0 - self.epsilon) + self.epsilon / channels
        return one_hot

    def tlvr_term(self, logits: torch.Tensor, tlvr_target: torch.Tensor) -> torch.Tensor:
        """``mean_b (soft TLVR_b − target_b)²`` over batch items with a finite target (0 if none)."""
        # Half-precision logits (AMP) are promoted so the ratio of two large sums stays accurate.
        logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
        predicted = soft_tlvr(torch.softmax(logits, dim=1), self.liver_channel, self.tumor_channel)
        target = tlvr_target.to(predicted.device, predicted.dtype).reshape(-1)
        if target.shape[0] != predicted.shape[0]:
            raise ValueError(
                f"tlvr_target must have one value per batch item ({predicted.shape[0]}), got {target.shape[0]}"
            )
        valid = torch.isfinite(target)
        if not bool(valid.any()):
            return predicted.sum() * 0.0
        return ((predicted[valid] - target[valid]) ** 2).mean()

    def forward(  # type: ignore[override]
        self, logits: torch.Tensor, target: torch.Tensor, tlvr_target: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss of one batch.

        Args:
            logits: raw network output, ``(B, C, *spatial)``.
            target: labels ``(B, 1, *spatial)`` with values in ``[0, C)``, or one-hot ``(B, C, *spatial)``.
            tlvr_target: ``(B,)`` clinical TLVR per item (NaN = unknown); required for ``Smoothing.CLINICAL``.

        Returns:
            A scalar tensor.
        """
        if logits.ndim != target.ndim:
            raise ValueError(
                f"logits {tuple(logits.shape)} and target {tuple(target.shape)} need the same number of axes"
            )
        if logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[2:]:
            raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in batch or space")
        if target.shape[1] not in (1, logits.shape[1]):
            raise ValueError(f"target must have 1 or {logits.shape[1]} channels, got {target.shape[1]}")
        one_hot = self.one_hot_target(target, logits.shape[1])
        loss = self.lambda_dice * self.dice(logits, one_hot) + self.lambda_focal * self.focal(logits, one_hot)
        if self.lambda_lesion > 0 or self.lambda_false > 0:
            labels = target if target.shape[1] == 1 else target.argmax(dim=1, keepdim=True)
            if self.lambda_lesion > 0:
                loss = loss + self.lambda_lesion * lesion_balanced_ce(logits, labels, self.tumor_channel)
            if self.lambda_false > 0:
                loss = loss + self.lambda_false * false_lesion_ce(logits, labels, self.tumor_channel)
        if self.smoothing is Smoothing.CLINICAL and self.lambda_tlvr > 0:
            if tlvr_target is None:
                raise ValueError("smoothing='clinical' needs tlvr_target (the clinical TLVR of each batch item)")
            loss = loss + self.lambda_tlvr * self.tlvr_term(logits, tlvr_target)
        return loss
