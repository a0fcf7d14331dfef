"""The torch runtime: PyTorch networks on a GPU (or the CPU), mixed precision, out-of-memory fallback.

Imported only when the torch runtime is chosen (or a test hands the window code a torch module): the ONNX
runtime never loads this module, so it needs no PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from SmoothSegNetLib.inference.device import autocast, run_with_oom_fallback, select_device, set_threads
from SmoothSegNetLib.inference.window import Forward, RunSettings, predict
from SmoothSegNetLib.models.network import build_network, forward_logits
from SmoothSegNetLib.models.weights import load_weights
from SmoothSegNetLib.progress import CancelCheck, ProgressCallback

if TYPE_CHECKING:
    from SmoothSegNetLib.inference.options import SegmentOptions
    from SmoothSegNetLib.models.card import ModelCard
    from SmoothSegNetLib.models.registry import ModelEntry


def torch_forward(network: torch.nn.Module, settings: RunSettings) -> Forward:
    """``network`` as a numpy forward on ``settings.device`` (autocast as the settings say)."""
    device = settings.device if isinstance(settings.device, torch.device) else torch.device(str(settings.device))

    def run(batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
        with torch.inference_mode(), autocast(device, settings.amp, settings.cpu_bf16):
            return forward_logits(network, tensor).float().cpu().numpy()

    return run


class TorchRuntime:
    """Loads verified weights into PyTorch networks and runs them on the chosen device."""

    name = "torch"

    def __init__(self, options: SegmentOptions) -> None:
        self.options = options
        set_threads(options.threads)
        self.device = select_device(options.device)
        self.networks: list[torch.nn.Module] = []

    @property
    def precision(self) -> str:
        if self.device.type == "cuda" and self.options.amp:
            return "f16 (autocast)"
        if self.device.type == "cpu" and self.options.cpu_bf16:
            return "bf16 (autocast)"
        return "f32"

    def describe(self) -> str:
        return f"torch {torch.__version__} {self.precision} on {self.device}"

    def load(self, entry: ModelEntry) -> torch.nn.Module:
        card = entry.card
        network = load_weights(build_network(card), card, path=entry.weights_path, sha256=entry.expected_sha256)
        network = network.to(self.device).eval()
        self.networks.append(network)
        return network

    def predict(
        self,
        network: Any,
        image_ijk: np.ndarray,
        card: ModelCard,
        batch: int,
        progress: ProgressCallback,
        cancel: CancelCheck | None,
        stage: str,
        foreground: bool,
    ) -> tuple[np.ndarray, list[str]]:
        """Decision maps of ``image_ijk`` (see :func:`~SmoothSegNetLib.inference.window.predict`), with GPU
        out-of-memory fallback (smaller batch, then the CPU); returns the maps and the fallback warnings."""

        def run(device: torch.device, batch_size: int) -> np.ndarray:
            settings = RunSettings(device, batch_size, self.options.amp, self.options.cpu_bf16)
            return predict(network.to(device), image_ijk, card, settings, progress, cancel, stage, foreground)

        q, used, fallbacks = run_with_oom_fallback(run, self.device, batch)
        if used != self.device:
            self.device = used
            for net in self.networks:
                net.to(used)
        return q, fallbacks
