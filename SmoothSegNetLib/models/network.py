"""Build the network a model card names, from an allow-list (no arbitrary imports from a card)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from SmoothSegNetLib.errors import ModelError

if TYPE_CHECKING:
    import torch

    from SmoothSegNetLib.models.card import ModelCard


def _segresnet(args: dict[str, Any]) -> torch.nn.Module:
    from monai.networks.nets import SegResNet

    return SegResNet(**args)


def _segresnetvae(args: dict[str, Any]) -> torch.nn.Module:
    from monai.networks.nets import SegResNetVAE

    return SegResNetVAE(**args)


def _unet(args: dict[str, Any]) -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(**args)


def _basicunet(args: dict[str, Any]) -> torch.nn.Module:
    from monai.networks.nets import BasicUNet

    return BasicUNet(**args)


def _dynunet(args: dict[str, Any]) -> torch.nn.Module:
    from monai.networks.nets import DynUNet

    return DynUNet(**args)


def _conv3d(args: dict[str, Any]) -> torch.nn.Module:
    # A plain convolution: used by tests (a 1x1x1 conv with set weights is a known function of the input).
    import torch

    return torch.nn.Conv3d(**args)


#: Architecture name -> constructor; the card's ``architecture.name`` must be one of these.
ARCHITECTURES: dict[str, Callable[[dict[str, Any]], torch.nn.Module]] = {
    "SegResNet": _segresnet,
    "SegResNetVAE": _segresnetvae,
    "UNet": _unet,
    "BasicUNet": _basicunet,
    "DynUNet": _dynunet,
    "Conv3d": _conv3d,
}

#: MONAI networks whose spatial_dims default is not 3 or that need it stated.
_NEEDS_SPATIAL_DIMS = {"SegResNet", "SegResNetVAE", "UNet", "BasicUNet", "DynUNet"}


def _json_to_args(args: dict[str, Any]) -> dict[str, Any]:
    # JSON has no tuples; MONAI accepts lists for block counts, but norm/act specs must be str or tuple.
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key in ("norm", "act") and isinstance(value, list):
            out[key] = tuple(value)
        elif key in ("blocks_down", "blocks_up", "channels", "strides", "features") and isinstance(value, list):
            out[key] = tuple(value)
        else:
            out[key] = value
    return out


def network_args(card: ModelCard) -> dict[str, Any]:
    """The constructor arguments of ``card``'s network (with defaults the pipeline needs filled in)."""
    args = _json_to_args(card.architecture_args)
    if card.architecture in _NEEDS_SPATIAL_DIMS:
        args.setdefault("spatial_dims", 3)
    if card.architecture == "SegResNetVAE" and "input_image_size" not in args:
        if card.inference.roi_size_ijk is None:
            raise ModelError(
                f"model card {card.id!r}: SegResNetVAE needs architecture.args.input_image_size or "
                "inference.roi_size_ijk (the window the VAE branch was trained on)"
            )
        args["input_image_size"] = list(card.inference.roi_size_ijk)
    return args


def build_network(card: ModelCard) -> torch.nn.Module:
    """Instantiate the card's network (random weights; see :func:`~SmoothSegNetLib.models.load_weights`).

    Raises:
        ModelError: unknown architecture, or arguments the constructor rejects (naming the card and field).
    """
    try:
        factory = ARCHITECTURES[card.architecture]
    except KeyError as exc:
        raise ModelError(
            f"model card {card.id!r}: field architecture.name {card.architecture!r} is not supported; "
            f"choose one of {sorted(ARCHITECTURES)}"
        ) from exc
    args = network_args(card)
    try:
        network = factory(args)
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"model card {card.id!r}: field architecture.args is not accepted by {card.architecture}: {exc}"
        ) from exc
    return network


def forward_logits(network: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Run ``network`` on ``batch`` ``[B, C, i, j, k]`` and return its segmentation logits.

    SegResNetVAE returns ``(logits, vae_loss)``; deep-supervision networks may return a list whose first
    item is the full-resolution output.
    """
    out = network(batch)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out
