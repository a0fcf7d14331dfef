"""Weights files: sha256 verified BEFORE anything is deserialised; safetensors preferred, ``.pt`` read with
``torch.load(weights_only=True)`` (no pickled code runs)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from SmoothSegNetLib.errors import ModelError

if TYPE_CHECKING:
    import torch

    from SmoothSegNetLib.models.card import ModelCard

_CHUNK_BYTES = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None, card_id: str, kind: str = "weights file") -> None:
    """Raise :class:`ModelError` unless ``path`` exists and its sha256 is ``expected``.

    ``expected`` ``None`` (a card whose hash is unknown and was never pinned) is refused: such weights are
    never loaded. ``kind`` names the file in the messages (``weights file`` or ``ONNX graph``).
    """
    if expected is None:
        raise ModelError(
            f"model {card_id!r}: the card has no sha256 and none was pinned, so its weights are not loaded; "
            f"install them once with 'smoothsegnet models install FILE --card {card_id} --pin-sha256'"
        )
    if not path.is_file():
        raise ModelError(
            f"model {card_id!r}: {kind} {path} is missing; install it with "
            f"'smoothsegnet models install FILE --card {card_id}' or 'smoothsegnet models download {card_id}'"
        )
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"model {card_id!r}: {kind} {path} has sha256 {actual} but the card expects {expected}; "
            "the file is damaged or not the right one — download or install it again"
        )


def read_state_dict(path: Path, fmt: str, state_dict_key: str | None = None) -> dict[str, torch.Tensor]:
    """Deserialise a (verified) weights file into a state dict."""
    import torch

    try:
        if fmt == "safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        loaded: Any = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors / torch raise many types for a corrupt file
        raise ModelError(f"weights file {path} cannot be read as {fmt}: {exc}") from exc
    if state_dict_key:
        if not isinstance(loaded, dict) or state_dict_key not in loaded:
            raise ModelError(f"weights file {path} has no entry {state_dict_key!r} (card field weights.state_dict_key)")
        loaded = loaded[state_dict_key]
    if not isinstance(loaded, dict):
        raise ModelError(f"weights file {path} does not hold a state dict (got {type(loaded).__name__})")
    return {str(k).removeprefix("module."): v for k, v in loaded.items()}


def load_weights(
    network: torch.nn.Module, card: ModelCard, path: Path | None = None, sha256: str | None = None
) -> torch.nn.Module:
    """Verify the weights' sha256, then load them into ``network`` (strict key match).

    Args:
        network: from :func:`~SmoothSegNetLib.models.build_network`.
        card: the card (gives format, expected sha256, file name).
        path: weights file; default: ``card.weights.file`` beside the card.
        sha256: expected hash overriding the card's (a hash pinned at install for a card without one).

    Raises:
        ModelError: missing file, hash mismatch, unknown hash, unreadable file or keys that do not fit.
    """
    path = Path(path) if path is not None else card.weights_path()
    expected = sha256 if sha256 is not None else card.weights.sha256
    verify_sha256(path, expected, card.id)
    state = read_state_dict(path, card.weights.format, card.weights.state_dict_key)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "keys or shapes differ"
        raise ModelError(
            f"model {card.id!r}: weights {path.name} do not fit the card's architecture {card.architecture} "
            f"({first}); check architecture.args"
        ) from exc
    network.eval()
    return network


def save_weights(network: torch.nn.Module, path: str | os.PathLike[str]) -> str:
    """Write ``network``'s weights as safetensors (atomically) and return their sha256."""
    from safetensors.torch import save_file

    from SmoothSegNetLib.outputs import atomic_path

    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    return sha256_file(path)
