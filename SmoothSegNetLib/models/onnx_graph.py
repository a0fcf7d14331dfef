"""The network as an ONNX graph: export (needs PyTorch), and the check that graph and weights agree.

A card's ``onnx`` section names the graph file, its sha256, the opset and the exporting versions. The graph
takes ``image`` ``[batch, C, i, j, k]`` float32 with the batch and the three spatial axes dynamic (so the
card's sliding windows and a whole-box pass run on the same graph) and gives the segmentation ``logits``
``[batch, C_out, i, j, k]`` (the VAE branch of SegResNetVAE is not part of it: it only trains).

Agreement: graph and weights are run on one fixed *probe* input (seeded noise, batch 2, unequal axes so a
swapped axis shows); the largest logit difference must stay within :data:`AGREEMENT_TOLERANCE` times the
logits' scale. Float32 engines differ from PyTorch by ~1e-4 (ONNX Runtime) to ~2e-3 (OpenVINO); a graph
from other weights differs by the logits' own size.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from SmoothSegNetLib.errors import ModelError
from SmoothSegNetLib.models.weights import sha256_file

if TYPE_CHECKING:
    import torch

    from SmoothSegNetLib.models.card import ModelCard

log = logging.getLogger(__name__)

#: ONNX operator set the graphs are exported with (ONNX Runtime >= 1.12 and OpenVINO >= 2022.1 read it).
OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
#: Graph and weights agree when max |logit difference| <= this x max(1, max |logit|) on the probe.
AGREEMENT_TOLERANCE = 1e-2
_PROBE_SEED = 20241014


def probe_input(card: ModelCard) -> np.ndarray:
    """The fixed probe batch ``[2, C, i, j, k]`` float32 in [0, 1] (seeded; axes in ratio 4:5:3, each a
    multiple of the card's ``size_divisible_by`` and at least 24 voxels)."""
    d = max(1, card.inference.size_divisible_by)
    shape = tuple(int(np.ceil(n / d) * d) for n in (32, 40, 24))
    channels = int(card.architecture_args.get("in_channels", 1))
    rng = np.random.default_rng(_PROBE_SEED)
    return rng.random((2, channels, *shape), dtype=np.float32)


def _versions() -> dict[str, str]:
    import torch

    try:
        onnx_version = importlib.metadata.version("onnx")
    except importlib.metadata.PackageNotFoundError:
        onnx_version = "not installed"
    return {"torch": str(torch.__version__), "onnx": onnx_version, "exporter": "torch.onnx (TorchScript)"}


def export_onnx(network: torch.nn.Module, card: ModelCard, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Export ``network`` (weights loaded) to ``path`` (atomically) and return the card's ``onnx`` section.

    Raises:
        ModelError: PyTorch cannot export the network.
    """
    import torch

    from SmoothSegNetLib.models.network import forward_logits
    from SmoothSegNetLib.outputs import atomic_path

    class _Logits(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return forward_logits(self.inner, x)

    path = Path(path)
    wrapped = _Logits(network.eval()).eval()
    example = torch.from_numpy(probe_input(card)[:1])
    axes = {0: "batch", 2: "i", 3: "j", 4: "k"}
    try:
        with torch.inference_mode(False), torch.no_grad(), atomic_path(path) as tmp:
            # The TorchScript exporter: one self-contained file, fast, and exact for these MONAI networks.
            torch.onnx.export(
                wrapped,
                (example,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                opset_version=OPSET,
                dynamo=False,
            )
    except ModelError:
        raise
    except Exception as exc:  # the exporter raises many types
        raise ModelError(f"model {card.id!r}: the network cannot be exported to ONNX: {exc}") from exc
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "opset": OPSET,
        "exported_with": _versions(),
        "size_bytes": path.stat().st_size,
    }


def torch_logits(network: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    """PyTorch's logits for ``batch`` (float32, CPU, no autocast)."""
    import torch

    from SmoothSegNetLib.models.network import forward_logits

    with torch.inference_mode():
        return forward_logits(network.eval().cpu(), torch.from_numpy(batch)).float().numpy()


def graph_logits(path: Path, batch: np.ndarray, engine: str | None = None) -> np.ndarray:
    """The graph's logits for ``batch`` on ``engine`` (default: ONNX Runtime when installed, the reference
    implementation of ONNX, else the first installed engine)."""
    from SmoothSegNetLib.models.onnx_engines import installed_engines, open_onnx

    engines = installed_engines()
    if not engines:
        raise ModelError("no ONNX engine is installed (pip install onnxruntime or openvino) to check the graph")
    chosen = engine or ("onnxruntime" if "onnxruntime" in engines else engines[0])
    return open_onnx(path, chosen)(batch)


def logit_difference(network: torch.nn.Module, card: ModelCard, path: Path, engine: str | None = None) -> float:
    """max |graph logits - PyTorch logits| on the probe, over max(1, max |PyTorch logit|)."""
    probe = probe_input(card)
    reference = torch_logits(network, probe)
    graph = graph_logits(path, probe, engine)
    if graph.shape != reference.shape:
        return float("inf")
    scale = max(1.0, float(np.abs(reference).max()))
    return float(np.abs(graph - reference).max()) / scale


def check_agreement(network: torch.nn.Module, card: ModelCard, path: Path) -> float:
    """Raise :class:`ModelError` unless the graph at ``path`` computes what ``network`` computes.

    Returns:
        The relative difference (see :func:`logit_difference`).
    """
    difference = logit_difference(network, card, path)
    if not difference <= AGREEMENT_TOLERANCE:
        raise ModelError(
            f"model {card.id!r}: ONNX graph {path.name} and weights {card.weights.file} disagree on the probe "
            f"input (max |logit difference| {difference:.3g} x the logits' scale, tolerance "
            f"{AGREEMENT_TOLERANCE:g}): the graph was not exported from these weights; export it again "
            "(remove the card's onnx section and run 'smoothsegnet models install' with PyTorch installed)"
        )
    log.info("model %s: ONNX graph agrees with the weights (relative difference %.2g)", card.id, difference)
    return difference


def torch_installed() -> bool:
    """True when PyTorch and MONAI (needed to build the networks and export them) can be imported."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("monai") is not None


def install_graph(card: ModelCard, weights: Path, weights_sha256: str, target_dir: Path) -> dict[str, Any] | None:
    """Put ``card``'s ONNX graph into ``target_dir`` at install; returns the card's new ``onnx`` section.

    A graph beside the card is checked against its sha256 and, with PyTorch, against the weights on the probe
    input, then copied. Without one, the graph is exported from the (verified) weights when PyTorch is
    installed; without PyTorch, ``None`` (the model then runs with the torch runtime only).

    Raises:
        ModelError: the graph's sha256 is wrong, or graph and weights disagree.
    """
    import shutil

    from SmoothSegNetLib.models.network import build_network
    from SmoothSegNetLib.models.weights import load_weights, verify_sha256

    source = card.onnx_path()
    has_torch = torch_installed()
    if card.onnx is not None and source is not None and source.is_file():
        verify_sha256(source, card.onnx.sha256, card.id, "ONNX graph")
        if has_torch:
            network = load_weights(build_network(card), card, path=weights, sha256=weights_sha256)
            check_agreement(network, card, source)
        else:
            log.warning(
                "model %s: PyTorch is not installed, so the ONNX graph is not compared with the weights", card.id
            )
        target = target_dir / card.onnx.file
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        return dict(card.raw["onnx"])
    if not has_torch:
        log.warning(
            "model %s: no ONNX graph beside the card and PyTorch is not installed to export one: "
            "the model runs only with --runtime torch",
            card.id,
        )
        return None
    network = load_weights(build_network(card), card, path=weights, sha256=weights_sha256)
    section = export_onnx(network, card, target_dir / f"{card.id}.onnx")
    check_agreement(network, card, target_dir / section["file"])
    return section


def export_beside_card(card: ModelCard, weights: Path, weights_sha256: str | None) -> dict[str, Any]:
    """Export ``card``'s network (its verified weights) to ``<card id>.onnx`` beside the card file, check that
    the graph agrees with the weights, and rewrite the card with the new ``onnx`` section (the card authors'
    step, ``smoothsegnet models export CARD.json``). Returns the section.

    Raises:
        ModelError: the card was not read from a file, PyTorch is missing, or the weights do not verify.
    """
    from SmoothSegNetLib.models.card import write_card_file
    from SmoothSegNetLib.models.network import build_network
    from SmoothSegNetLib.models.weights import load_weights

    if card.path is None:
        raise ModelError(f"model {card.id!r}: export needs a card file (its graph is written beside it)")
    if not torch_installed():
        raise ModelError("exporting to ONNX needs PyTorch and MONAI: pip install 'SmoothSegNetLib[torch]'")
    network = load_weights(build_network(card), card, path=weights, sha256=weights_sha256)
    section = export_onnx(network, card, card.path.parent / f"{card.id}.onnx")
    check_agreement(network, card, card.path.parent / section["file"])
    data = dict(card.raw)
    data["onnx"] = section
    write_card_file(card.path, data)
    return section
