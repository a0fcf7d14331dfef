"""``smoothsegnet info``: versions of the engine and its main dependencies, and what will run the networks."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from typing import Any

from SmoothSegNetLib import __version__

NAME = "info"
HELP = "print the versions of the engine and its dependencies, and which runtime, engine and precision will run"

_PACKAGES = ("torch", "monai", "onnxruntime", "openvino", "onnx", "SimpleITK", "pydicom", "highdicom", "numpy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=("auto", "torch", "onnx", "openvino", "onnxruntime"),
        help="say what this --runtime would run (default auto)",
    )
    parser.add_argument("--device", default="auto", help="with this --device (default auto)")


def runtime_info(runtime: str = "auto", device: str = "auto") -> dict[str, Any]:
    """What ``segment --runtime RUNTIME --device DEVICE`` would run the networks with."""
    from SmoothSegNetLib.inference.runtime import gpu_available, resolve_runtime
    from SmoothSegNetLib.models.onnx_engines import PRECISION, engine_version, installed_engines

    choice = resolve_runtime(runtime, device)
    if choice.is_onnx:
        engine, precision, where = f"{choice.engine} {engine_version(choice.engine)}", PRECISION, "cpu"
    else:
        from SmoothSegNetLib.inference.device import select_device

        target = select_device(device)
        engine = f"torch {importlib.metadata.version('torch')}"
        precision = "f16 (autocast)" if target.type == "cuda" else "f32"
        where = str(target)
    return {
        "runtime": "onnx" if choice.is_onnx else "torch",
        "engine": engine,
        "precision": precision,
        "device": where,
        "reason": choice.reason,
        "onnx_engines_installed": installed_engines(),
        "gpu": gpu_available(),
    }


def run(args: argparse.Namespace) -> int:
    versions = {"smoothsegnet": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    runtime = runtime_info(args.runtime, args.device)
    if args.json:
        sys.stdout.write(json.dumps({**versions, "inference": runtime}) + "\n")
        return 0
    for name, version in versions.items():
        sys.stdout.write(f"{name:14s} {version}\n")
    sys.stdout.write(
        f"{'inference':14s} {runtime['runtime']}: {runtime['engine']}, {runtime['precision']}, "
        f"on {runtime['device']} ({runtime['reason']})\n"
    )
    return 0
