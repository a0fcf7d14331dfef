"""``--runtime auto|torch|onnx``: which runtime runs, the numpy window path, graphs verified before loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from SmoothSegNetLib.errors import InputError, ModelError
from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.inference.runtime import resolve_runtime
from SmoothSegNetLib.inference.window import RunSettings, predict_sliding, predict_whole
from SmoothSegNetLib.models import load_card, load_model
from SmoothSegNetLib.models.onnx_engines import open_onnx
from SmoothSegNetLib.resources import RESOURCES_DIR
from SmoothSegNetLib.slicer_support.process import SegmentRequest, segment_command
from Testing._model_helpers import write_random_model
from Testing.conftest import run_cli

MODELS = RESOURCES_DIR / "Models"


def test_runtime_resolution_rules() -> None:
    # This machine: no GPU, both engines installed, PyTorch installed.
    assert resolve_runtime("auto", "auto").engine == "openvino"  # CPU: the fastest installed engine
    assert resolve_runtime("auto", "cpu").engine == "openvino"
    assert resolve_runtime("auto", "cuda").engine == "torch"  # a GPU asked for: torch
    assert resolve_runtime("onnx").engine == "openvino"
    assert resolve_runtime("onnxruntime").engine == "onnxruntime"
    assert resolve_runtime("torch", "cpu").engine == "torch"
    with pytest.raises(InputError, match=r"--runtime onnx runs on the CPU only, got --device cuda"):
        resolve_runtime("onnx", "cuda")
    with pytest.raises(InputError, match=r"--runtime must be one of auto, torch, onnx, openvino, onnxruntime"):
        resolve_runtime("tensorrt")
    with pytest.raises(InputError, match="--runtime"):
        SegmentOptions(runtime="tensorrt")


def test_auto_runs_the_graphs_on_the_cpu_and_torch_when_asked() -> None:
    auto = Segmenter(SegmentOptions(device="cpu"))
    assert auto.runtime.describe().startswith("onnx (openvino ") and auto.runtime.describe().endswith("f32 on cpu")
    assert type(auto.liver_net).__name__ == "OnnxModel" and auto.liver_net.engine == "openvino"
    torch_run = Segmenter(SegmentOptions(device="cpu", runtime="torch"))
    assert torch_run.runtime.describe().startswith("torch ") and hasattr(torch_run.liver_net, "state_dict")


def test_auto_runs_a_card_without_a_graph_with_torch(tmp_path: Path) -> None:
    liver = write_random_model(tmp_path, "liver")
    segmenter = Segmenter(SegmentOptions(liver_model=str(liver), liver_only=True, device="cpu"))
    assert segmenter.runtime.name == "torch"
    with pytest.raises(ModelError, match=r"has no ONNX graph, so --runtime onnx cannot run it"):
        Segmenter(SegmentOptions(liver_model=str(liver), liver_only=True, runtime="onnx"))


def test_a_tampered_graph_is_never_loaded(tmp_path: Path) -> None:
    for name in ("smoothsegnet-demo-liver.json", "smoothsegnet-demo-liver.safetensors", "smoothsegnet-demo-liver.onnx"):
        shutil.copyfile(MODELS / name, tmp_path / name)
    graph = tmp_path / "smoothsegnet-demo-liver.onnx"
    data = bytearray(graph.read_bytes())
    data[-100] ^= 0x01
    graph.write_bytes(bytes(data))
    card = str(tmp_path / "smoothsegnet-demo-liver.json")
    for runtime in ("onnx", "auto", "onnxruntime"):
        with pytest.raises(ModelError, match=r"ONNX graph .*onnx has sha256 .* but the card expects"):
            Segmenter(SegmentOptions(liver_model=card, liver_only=True, runtime=runtime))
    Segmenter(SegmentOptions(liver_model=card, liver_only=True, runtime="torch"))  # the weights are intact
    graph.unlink()
    with pytest.raises(ModelError, match=r"ONNX graph .* is missing"):
        Segmenter(SegmentOptions(liver_model=card, liver_only=True, runtime="onnx"))


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_numpy_window_path_matches_the_torch_path(engine: str) -> None:
    card = load_card(MODELS / "smoothsegnet-demo-tumor.json")
    assert card.onnx is not None
    network = load_model(card)
    model = open_onnx(MODELS / card.onnx.file, engine)
    rng = np.random.default_rng(3)
    image = rng.random((70, 66, 52), dtype=np.float32)  # more than one 64x64x48 window along every axis
    torch_maps = predict_sliding(network, image, card, RunSettings("cpu"), foreground=True)
    onnx_maps = predict_sliding(model, image, card, RunSettings("cpu", batch_size=2), foreground=True)
    assert onnx_maps.shape == torch_maps.shape == (2, 70, 66, 52)
    assert np.abs(onnx_maps - torch_maps).max() < 1e-3
    whole = predict_whole(model, image[:48, :40, :32], card, RunSettings("cpu"))
    reference = predict_whole(network, image[:48, :40, :32], card, RunSettings("cpu"))
    assert np.abs(whole - reference).max() < 1e-3


def test_info_says_which_engine_and_precision_will_run() -> None:
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    inference = json.loads(result.stdout)["inference"]
    assert inference["runtime"] == "onnx" and inference["engine"].startswith("openvino ")
    assert (inference["precision"], inference["device"]) == ("f32", "cpu")
    text = run_cli("info", "--runtime", "torch").stdout
    assert "inference      torch: torch 2." in text and "f32, on cpu" in text
    bad = run_cli("info", "--runtime", "onnx", "--device", "cuda")
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --runtime onnx runs on the CPU")


def test_the_slicer_module_passes_the_runtime_through(tmp_path: Path) -> None:
    plain = segment_command(SegmentRequest(tmp_path / "ct.nrrd", tmp_path / "out"))
    assert "--runtime" not in plain  # auto: the engine decides
    onnx = segment_command(SegmentRequest(tmp_path / "ct.nrrd", tmp_path / "out", runtime="onnx"))
    assert onnx[onnx.index("--runtime") + 1] == "onnx"
    with pytest.raises(ValueError, match="runtime must be one of auto, torch, onnx"):
        SegmentRequest(tmp_path / "ct.nrrd", tmp_path / "out", runtime="gpu")
