"""``--runtime onnx`` gives the masks of ``--runtime torch``: the bundled sample and two phantoms.

(The 20 held-out phantoms and the 512x512x120 phantom are measured by ``bench/onnx_agreement.py``.)
"""

from __future__ import annotations

import numpy as np
import pytest

from SmoothSegNetLib.inference import SegmentOptions
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.io import read_volume
from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.resources import RESOURCES_DIR
from SmoothSegNetLib.volume import CTVolume


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


@pytest.fixture(scope="module")
def segmenters() -> dict[str, Segmenter]:
    return {rt: Segmenter(SegmentOptions(device="cpu", runtime=rt)) for rt in ("torch", "onnx")}


def _sample() -> CTVolume:
    return read_volume(RESOURCES_DIR / "Sample" / "sample_ct.nrrd")


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_sample, id="bundled-sample"),
        pytest.param(lambda: make_phantom(3).ct, id="phantom-3"),
        pytest.param(lambda: make_phantom(21, (160, 150, 70), (2.2, 2.2, 4.0), True).ct, id="phantom-21-oblique"),
    ],
)
def test_onnx_and_torch_give_the_same_masks(make, segmenters: dict[str, Segmenter]) -> None:  # type: ignore[no-untyped-def]
    ct = make()
    torch_result = segmenters["torch"](ct)
    onnx_result = segmenters["onnx"](ct)
    assert onnx_result.runtime.startswith("onnx (openvino") and torch_result.runtime.startswith("torch ")
    liver_t, liver_o = torch_result.labelmap >= 1, onnx_result.labelmap >= 1
    assert liver_t.sum() > 1000  # there is a liver to agree on
    assert _dice(liver_t, liver_o) >= 0.995
    assert _dice(torch_result.labelmap == 2, onnx_result.labelmap == 2) >= 0.98
    assert len(onnx_result.confidence) == len(torch_result.confidence)
