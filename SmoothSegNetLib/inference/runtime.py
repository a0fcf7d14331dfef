"""Which runtime runs the networks: ``torch`` (PyTorch, for GPUs) or ``onnx`` (an ONNX graph on the CPU).

``--runtime``:

* ``auto`` (default): torch on a GPU (CUDA or Apple MPS, when PyTorch is installed and sees one), else onnx
  on the CPU. A model whose card has no ONNX graph runs with torch (if PyTorch is installed).
* ``torch``: PyTorch on ``--device``.
* ``onnx``: the cards' ONNX graphs on the fastest installed CPU engine (:data:`~SmoothSegNetLib.inference.
  engines.ONNX_ENGINES`: OpenVINO, then ONNX Runtime), in float32; ``openvino`` / ``onnxruntime`` name one.

This module never imports torch at import time, and the onnx path never imports it at all.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from SmoothSegNetLib.errors import InputError, ModelError
from SmoothSegNetLib.inference.window import RunSettings, predict
from SmoothSegNetLib.models.onnx_engines import ONNX_ENGINES, PRECISION, engine_version, installed_engines, open_onnx
from SmoothSegNetLib.models.weights import verify_sha256
from SmoothSegNetLib.progress import CancelCheck, ProgressCallback

if TYPE_CHECKING:
    from SmoothSegNetLib.inference.options import SegmentOptions
    from SmoothSegNetLib.models.card import ModelCard
    from SmoothSegNetLib.models.registry import ModelEntry

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx", *ONNX_ENGINES)


class Runtime(Protocol):
    """What the pipeline needs from a runtime: load a model once, predict many times."""

    name: str
    device: Any

    def describe(self) -> str: ...

    def load(self, entry: ModelEntry) -> Any: ...

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
    ) -> tuple[np.ndarray, list[str]]: ...


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def gpu_available() -> bool:
    """True when PyTorch is installed and sees a CUDA or Apple MPS device (False without PyTorch)."""
    if not torch_installed():
        return False
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(torch.cuda.is_available() or (mps is not None and mps.is_available()))


@dataclass(frozen=True)
class RuntimeChoice:
    """The resolved runtime: ``torch`` or an ONNX engine name, and why."""

    engine: str
    reason: str

    @property
    def is_onnx(self) -> bool:
        return self.engine in ONNX_ENGINES


def resolve_runtime(runtime: str, device: str = "auto") -> RuntimeChoice:
    """Resolve ``--runtime`` (and ``--device``) to ``torch`` or one installed ONNX engine.

    Raises:
        InputError: unknown runtime, onnx on a GPU device, or nothing installed that can run it.
    """
    if runtime not in RUNTIMES:
        raise InputError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    base = device.split(":", 1)[0]
    engines = installed_engines()
    if runtime == "auto":
        if base in ("cuda", "mps") or (base == "auto" and gpu_available()):
            return RuntimeChoice("torch", "auto: a GPU is available")
        if engines:
            return RuntimeChoice(engines[0], "auto: CPU, the fastest installed ONNX engine")
        if torch_installed():
            return RuntimeChoice("torch", "auto: CPU, no ONNX engine installed")
        raise InputError(_nothing_installed())
    if runtime == "torch":
        if not torch_installed():
            raise InputError(
                "--runtime torch needs PyTorch, which is not installed: pip install 'SmoothSegNetLib[torch]' "
                "(or, in Slicer, the PyTorch extension), or use --runtime onnx"
            )
        return RuntimeChoice("torch", "asked for")
    if base in ("cuda", "mps"):
        raise InputError(f"--runtime {runtime} runs on the CPU only, got --device {device}: use --runtime torch")
    if runtime == "onnx":
        if not engines:
            raise InputError(_nothing_installed())
        return RuntimeChoice(engines[0], "asked for onnx: the fastest installed ONNX engine")
    if runtime not in engines:
        raise InputError(f"--runtime {runtime}: the {runtime} package is not installed (pip install {runtime})")
    return RuntimeChoice(runtime, "asked for")


def _nothing_installed() -> str:
    return (
        "no inference runtime is installed: pip install onnxruntime or openvino (CPU), "
        "or 'SmoothSegNetLib[torch]' (GPU)"
    )


class OnnxRuntime:
    """Runs the cards' verified ONNX graphs on one CPU engine, in float32 (no PyTorch)."""

    name = "onnx"

    def __init__(self, engine: str, threads: int | None = None) -> None:
        self.engine = engine
        self.threads = threads
        self.device = "cpu"
        self.precision = PRECISION

    def describe(self) -> str:
        return f"onnx ({self.engine} {engine_version(self.engine)}) {self.precision} on cpu"

    def load(self, entry: ModelEntry) -> Any:
        """Verify the graph's sha256, then compile it (never a graph whose hash differs from the card's)."""
        card = entry.card
        if entry.onnx_path is None:
            raise ModelError(
                f"model {card.id!r} has no ONNX graph, so --runtime onnx cannot run it: install the card with "
                "PyTorch present ('smoothsegnet models install CARD.json' exports one), or use --runtime torch"
            )
        verify_sha256(entry.onnx_path, entry.onnx_sha256, card.id, "ONNX graph")
        return open_onnx(entry.onnx_path, self.engine, self.threads)

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
        settings = RunSettings("cpu", batch)
        return predict(network, image_ijk, card, settings, progress, cancel, stage, foreground), []


def open_runtime(options: SegmentOptions, cards_have_graphs: bool = True) -> Runtime:
    """The runtime ``options`` ask for; ``auto`` runs torch when a card has no ONNX graph (and torch is there)."""
    choice = resolve_runtime(options.runtime, options.device)
    if choice.is_onnx and options.runtime == "auto" and not cards_have_graphs and torch_installed():
        choice = RuntimeChoice("torch", "auto: a model has no ONNX graph")
    log.info("runtime %s (%s)", choice.engine, choice.reason)
    if choice.is_onnx:
        if options.threads is not None and options.threads < 1:
            raise InputError(f"--threads must be >= 1, got {options.threads}")
        return OnnxRuntime(choice.engine, options.threads)
    from SmoothSegNetLib.inference.runtime_torch import TorchRuntime

    return TorchRuntime(options)
