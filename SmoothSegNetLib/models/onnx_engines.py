"""ONNX engines for the torch-free CPU runtime: OpenVINO and ONNX Runtime, both in float32.

An engine turns a verified ``.onnx`` file into a callable ``model(batch) -> logits`` on numpy arrays
(``[B, C, i, j, k]`` float32 in, ``[B, C_out, i, j, k]`` float32 out). Neither imports torch.

Precision: OpenVINO runs bfloat16 by default on CPUs that support it (its logits then differ from
PyTorch's by up to 0.2 on the demo networks), so it is forced to f32 with ``INFERENCE_PRECISION_HINT``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError, ModelError

#: The ONNX engines, fastest first on x86 CPUs (bench/speed.py measures them on the same input in one run).
ONNX_ENGINES = ("openvino", "onnxruntime")
#: The precision the engines run in (only f32 is shown to give the same masks as PyTorch).
PRECISION = "f32"

_DISTRIBUTIONS = {"openvino": "openvino", "onnxruntime": "onnxruntime"}


def engine_installed(name: str) -> bool:
    """True when the Python package of engine ``name`` can be imported."""
    return importlib.util.find_spec(name) is not None


def installed_engines() -> list[str]:
    """The installed ONNX engines, fastest first."""
    return [name for name in ONNX_ENGINES if engine_installed(name)]


def engine_version(name: str) -> str:
    """The installed version of engine ``name`` ('not installed' when absent)."""
    try:
        return importlib.metadata.version(_DISTRIBUTIONS[name])
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclass
class OnnxModel:
    """A compiled ONNX graph: call it with a float32 batch ``[B, C, i, j, k]`` to get the logits."""

    engine: str
    path: Path
    run: Callable[[np.ndarray], np.ndarray]
    precision: str = PRECISION

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.run(np.ascontiguousarray(batch, dtype=np.float32))


def _onnxruntime(path: Path, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        out: Any = session.run(None, {name: batch})[0]
        return np.asarray(out, dtype=np.float32)

    return run


def _openvino(path: Path, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()

    def run(batch: np.ndarray) -> np.ndarray:
        result = request.infer({0: batch})
        # The output tensor is reused by the next request: copy it out.
        return np.array(result[compiled.output(0)], dtype=np.float32, copy=True)

    return run


_OPENERS: dict[str, Callable[[Path, int | None], Callable[[np.ndarray], np.ndarray]]] = {
    "openvino": _openvino,
    "onnxruntime": _onnxruntime,
}


def open_onnx(path: Path, engine: str, threads: int | None = None) -> OnnxModel:
    """Compile the (already verified) graph ``path`` on ``engine`` for the CPU, in float32.

    Raises:
        InputError: unknown engine, or the engine is not installed.
        ModelError: the engine cannot read the graph.
    """
    if engine not in _OPENERS:
        raise InputError(f"ONNX engine must be one of {', '.join(ONNX_ENGINES)}, got {engine!r}")
    if not engine_installed(engine):
        raise InputError(
            f"the ONNX engine {engine} is not installed: pip install {_DISTRIBUTIONS[engine]}, "
            f"or choose another runtime (installed ONNX engines: {', '.join(installed_engines()) or 'none'})"
        )
    try:
        run = _OPENERS[engine](path, threads)
    except Exception as exc:  # each engine raises its own types for an unreadable graph
        raise ModelError(f"ONNX graph {path} cannot be loaded by {engine}: {exc}") from exc
    return OnnxModel(engine, path, run)
