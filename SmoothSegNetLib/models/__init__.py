"""Model cards, networks, verified weights and the model registry.

Public API::

    from SmoothSegNetLib.models import load_card, ModelCard, build_network, load_weights, Registry
    from SmoothSegNetLib.models import demo_card_template, write_trained_card, save_weights, load_model
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from SmoothSegNetLib.models.card import ModelCard, card_from_dict, card_schema, load_card, validate_card_dict
from SmoothSegNetLib.models.network import ARCHITECTURES, build_network, forward_logits
from SmoothSegNetLib.models.registry import ModelEntry, Registry, default_home
from SmoothSegNetLib.models.templates import demo_card_template, write_trained_card
from SmoothSegNetLib.models.weights import load_weights, save_weights, sha256_file

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARCHITECTURES",
    "ModelCard",
    "ModelEntry",
    "Registry",
    "build_network",
    "card_from_dict",
    "card_schema",
    "default_home",
    "demo_card_template",
    "forward_logits",
    "load_card",
    "load_model",
    "load_weights",
    "save_weights",
    "sha256_file",
    "validate_card_dict",
    "write_trained_card",
]


def load_model(card: ModelCard, registry: Registry | None = None) -> torch.nn.Module:
    """Build ``card``'s network and load its verified weights (cache first, then beside the card).

    Raises:
        ModelError: weights missing, unpinned, or with the wrong sha256.
    """
    registry = registry if registry is not None else Registry()
    path, sha256 = registry.weights_for(card)
    network = build_network(card)
    return load_weights(network, card, path=path, sha256=sha256)
