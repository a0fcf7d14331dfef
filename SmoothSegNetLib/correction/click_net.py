"""The click network: a small network that draws the one lesion at a clicked point (``add-lesion``).

The tumor network has to find lesions everywhere in the liver, so it stays silent on faint or small ones; a
click says where a lesion is, and the click network only answers *what is the lesion here, and is there one*.
It sees a cube of ``CROP_VOXELS`` voxels of ``SPACING_MM`` (LPS axes, centred on the click; the CT resampled
linearly) as three channels:

1. the CT in HU minus the median of the liver voxels of the cube, over ``HU_SCALE``, clipped to
   ``[-HU_CLIP, HU_CLIP]`` (so that a lesion's contrast, not the phase's liver HU, is what it sees),
2. the liver (the segmentation's liver and lesions, resampled, > 0.5),
3. a Gaussian of ``PRIOR_SIGMA_MM`` around the centre (where the click is),

and gives one logit per voxel: the lesion at the centre. Its probability is resampled back onto the input grid;
:mod:`SmoothSegNetLib.correction.search` takes the component at the click. It was trained on synthetic phantoms
only (:mod:`SmoothSegNetLib.training.click_net`).

A trained network is three files, ``click-net.json`` (architecture, threshold, how it was trained, and the sha256
of the other two), ``click-net.safetensors`` and its ONNX graph ``click-net.onnx``, read from
``Resources/Correction``; the file used is verified before it is loaded, the graph runs on an installed ONNX
engine (no PyTorch needed), else the weights in PyTorch. **None is bundled**: the one trained for 25 minutes on
a 2-core CPU did not learn to tell a lesion from the liver (docs/add-lesion.md, seventh round), so the add-lesion
setting ``click_network`` is off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import ModelError
from SmoothSegNetLib.inference.window import decision_probability
from SmoothSegNetLib.resample import Interpolation, resample
from SmoothSegNetLib.resources import RESOURCES_DIR
from SmoothSegNetLib.volume import Geometry

#: The bundled click network's description (architecture, files and their sha256, how it was trained).
CLICK_NET_FILE = RESOURCES_DIR / "Correction" / "click-net.json"
SCHEMA = "smoothsegnet.click_net/1"
CROP_VOXELS = 48
SPACING_MM = 1.0
HU_SCALE = 50.0
HU_CLIP = 4.0
PRIOR_SIGMA_MM = 6.0
#: Fewer liver voxels than this in the cube: the cube's median HU stands in for the liver's.
MIN_LIVER_VOXELS = 50
#: Outside the input image the CT reads as air.
OUTSIDE_HU = -1000.0


def architecture_args() -> dict[str, Any]:
    """MONAI ``UNet`` arguments of the click network (the weights file must fit them)."""
    return {
        "spatial_dims": 3,
        "in_channels": 3,
        "out_channels": 1,
        "channels": [16, 32, 64, 128],
        "strides": [2, 2, 2],
        "num_res_units": 1,
        "norm": "INSTANCE",
    }


def cube_geometry(point_lps_mm: np.ndarray | tuple[float, float, float]) -> Geometry:
    """The network's cube: ``CROP_VOXELS`` voxels of ``SPACING_MM`` along L, P, S, centred on the point."""
    half = (CROP_VOXELS - 1) / 2.0 * SPACING_MM
    origin = np.asarray(point_lps_mm, dtype=float) - half
    return Geometry.create((CROP_VOXELS,) * 3, (SPACING_MM,) * 3, origin, np.eye(3))


def centre_prior() -> np.ndarray:
    """float32 ``[k, j, i]`` Gaussian of ``PRIOR_SIGMA_MM`` around the cube's centre (1 at the centre)."""
    g = (np.arange(CROP_VOXELS) - (CROP_VOXELS - 1) / 2.0) * SPACING_MM
    z, y, x = np.meshgrid(g, g, g, indexing="ij")
    return np.exp(-(x * x + y * y + z * z) / (2.0 * PRIOR_SIGMA_MM**2)).astype(np.float32)


def channels(hu_cube: np.ndarray, liver_cube: np.ndarray) -> np.ndarray:
    """float32 ``[3, k, j, i]``: the network's input from the cube's HU and liver (see the module docstring)."""
    liver = np.asarray(liver_cube, dtype=bool)
    values = hu_cube[liver] if np.count_nonzero(liver) >= MIN_LIVER_VOXELS else hu_cube
    reference = float(np.median(values))
    image = np.clip((np.asarray(hu_cube, dtype=np.float32) - reference) / HU_SCALE, -HU_CLIP, HU_CLIP)
    return np.stack([image.astype(np.float32), liver.astype(np.float32), centre_prior()])


def cube_input(
    hu: np.ndarray, liver: np.ndarray, geometry: Geometry, point_lps_mm: tuple[float, float, float]
) -> tuple[np.ndarray, Geometry]:
    """The network input for a click on ``hu`` / ``liver`` (``[k, j, i]`` on ``geometry``) and the cube's grid."""
    cube = cube_geometry(point_lps_mm)
    hu_cube = resample(np.asarray(hu, dtype=np.float32), geometry, cube, Interpolation.LINEAR, OUTSIDE_HU)
    liver_cube = resample(np.asarray(liver, dtype=np.float32), geometry, cube, Interpolation.LINEAR, 0.0) > 0.5
    return channels(hu_cube, liver_cube), cube


@dataclass(frozen=True)
class ClickNetFiles:
    """``click-net.json``: the weights and graph files (beside it) with their sha256, and the threshold."""

    weights: Path
    weights_sha256: str
    graph: Path | None
    graph_sha256: str | None
    threshold: float

    @classmethod
    def read(cls, path: Path = CLICK_NET_FILE) -> ClickNetFiles:
        if not Path(path).is_file():
            raise ModelError(
                f"no click network is installed ({path} is missing): train one with 'python -m "
                "SmoothSegNetLib.training.click_net --seeds A:B --minutes M --out DIR' and copy its three "
                "click-net.* files there, or leave the add-lesion setting click_network off"
            )
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"click network description {path} cannot be read: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ModelError(f"click network description {path}: schema must be {SCHEMA!r}")
        try:
            weights = data["weights"]
            graph = data.get("onnx")
            threshold = float(data["threshold"])
            if data["architecture"] != architecture_args():
                raise ModelError(f"click network description {path}: the architecture is not this version's")
            files = cls(
                Path(path).parent / str(weights["file"]),
                str(weights["sha256"]),
                None if graph is None else Path(path).parent / str(graph["file"]),
                None if graph is None else str(graph["sha256"]),
                threshold,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"click network description {path}: missing or bad field ({exc})") from exc
        if not 0.0 < threshold < 1.0:
            raise ModelError(f"click network description {path}: threshold must be in (0, 1), got {threshold}")
        return files


class ClickNetwork:
    """The verified click network, on an ONNX engine when one is installed, else in PyTorch."""

    def __init__(self, path: Path = CLICK_NET_FILE, threads: int | None = None, engine: str = "auto") -> None:
        from SmoothSegNetLib.models.onnx_engines import installed_engines, open_onnx
        from SmoothSegNetLib.models.weights import verify_sha256

        self.files = ClickNetFiles.read(Path(path))
        self.threshold = self.files.threshold
        engines = installed_engines()
        run: Callable[[np.ndarray], np.ndarray]
        if engine == "auto":
            engine = engines[0] if engines and self.files.graph is not None else "torch"
        if engine != "torch":
            if self.files.graph is None:
                raise ModelError("the click network has no ONNX graph: use the PyTorch engine")
            verify_sha256(self.files.graph, self.files.graph_sha256, "click-net", "ONNX graph")
            run = open_onnx(self.files.graph, engine, threads)
        else:
            verify_sha256(self.files.weights, self.files.weights_sha256, "click-net")
            run = _torch_runner(self.files.weights, threads)
        self.engine = engine
        self._run = run

    def probability(
        self, hu: np.ndarray, liver: np.ndarray, geometry: Geometry, point_lps_mm: tuple[float, float, float]
    ) -> np.ndarray:
        """float32 ``[k, j, i]`` on ``geometry``: the probability that a voxel is the clicked lesion (0 outside
        the cube)."""
        image, cube = cube_input(hu, liver, geometry, point_lps_mm)
        # The network works on [k, j, i] arrays as they are (it was trained so; no axis reordering).
        probability = decision_probability(self._run(image[None])[0], "sigmoid", 0)
        return resample(probability, cube, geometry, Interpolation.LINEAR, 0.0)


def build_network() -> Any:
    """The untrained MONAI network (PyTorch and MONAI needed)."""
    from monai.networks.nets import UNet

    args = architecture_args()
    return UNet(**{**args, "channels": tuple(args["channels"]), "strides": tuple(args["strides"])})


def _torch_runner(weights: Path, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from SmoothSegNetLib.models.weights import read_state_dict

    network = build_network()
    try:
        network.load_state_dict(read_state_dict(weights, "safetensors"), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"click network weights {weights} do not fit its architecture: {exc}") from exc
    network.eval()
    if threads is not None:
        torch.set_num_threads(int(threads))

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).float().numpy()

    return run
