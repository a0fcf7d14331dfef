"""The module's self-test, run inside Slicer ("Reload and Test", or ``ctest -R py_SmoothSegNet``).

It needs a real Slicer (GUI classes, ``slicer.mrmlScene``) and the engine's dependencies (torch, MONAI),
which it installs without asking when missing: a test machine has no one to ask. It builds a small
synthetic CT and tiny threshold models whose answer is known exactly (liver = HU > 50, tumor = HU > 150),
runs the real engine through the module's logic, and checks segments, geometry and the lesion table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


def writeThresholdModel(folder: Path, task: str, thresholdHu: float) -> Path:
    """A model card whose network is one 1x1x1 convolution: target logit = 50 * (x - x0), x windowed HU."""
    import torch

    from SmoothSegNetLib.models import (
        build_network,
        card_from_dict,
        demo_card_template,
        save_weights,
        write_trained_card,
    )

    card = demo_card_template(task)
    card["id"] = f"selftest-{task}"
    card["title"] = f"SELF-TEST {task} threshold network (1x1x1 convolution with set weights)"
    card["architecture"] = {
        "name": "Conv3d",
        "args": {"in_channels": 1, "out_channels": 2 if task == "liver" else 3, "kernel_size": 1},
    }
    card["input"]["spacing_mm"] = None
    card["inference"] = {"mode": "whole", "roi_size_ijk": [8, 8, 8], "overlap": 0.25, "size_divisible_by": 1}
    if task == "tumor":
        card["postprocessing"] = {"fill_holes": False, "chan_vese_iterations": 0, "min_lesion_ml": 0.0}
    parsed = card_from_dict({**card, "weights": {**card["weights"], "sha256": "0" * 64}})
    network = build_network(parsed)
    low, high = parsed.input.hu_window
    target = parsed.channel_of(task)
    with torch.no_grad():
        network.weight.zero_()
        network.bias.zero_()
        network.weight[target, 0, 0, 0, 0] = 50.0
        network.bias[target] = -50.0 * (thresholdHu - low) / (high - low)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"selftest-{task}.safetensors"
    save_weights(network, weights)
    return write_trained_card(card, weights, folder / f"selftest-{task}.json", {"data": "none (set weights)"})


def syntheticCt() -> tuple[np.ndarray, np.ndarray]:
    """(voxels [k, j, i] int16, IJK-to-RAS 4x4): a 'liver' box at 100 HU holding two 200 HU 'lesions'."""
    voxels = np.full((16, 24, 28), -500, np.int16)
    voxels[2:14, 3:21, 3:25] = 100
    voxels[4:8, 5:10, 5:10] = 200  # 4 x 5 x 5 = 100 voxels: lesion 1
    voxels[10:12, 14:16, 18:20] = 200  # 2 x 2 x 2 = 8 voxels: lesion 2
    ijkToRas = np.array([[-0.8, 0, 0, 40.0], [0, -0.7, 0, 25.0], [0, 0, 2.5, -60.0], [0, 0, 0, 1]])
    return voxels, ijkToRas


class SmoothSegNetTest(ScriptedLoadableModuleTest):
    """Self-test of the SmoothSegNet module (needs Slicer)."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_SegmentSyntheticCt()

    def test_SegmentSyntheticCt(self) -> None:
        import SmoothSegNet
        from SmoothSegNetLib import mrml

        self.delayDisplay("Installing dependencies if needed")
        logic = SmoothSegNet.SmoothSegNetLogic()
        missing, torchMissing = logic.missingDependencies()
        if missing or torchMissing is not None:
            logic.installDependencies(missing, torchMissing)

        voxels, ijkToRas = syntheticCt()
        volume = slicer.util.addVolumeFromArray(voxels, ijkToRAS=ijkToRas, name="SelfTestCT")
        with tempfile.TemporaryDirectory() as folder:
            liver = writeThresholdModel(Path(folder), "liver", 50.0)
            tumor = writeThresholdModel(Path(folder), "tumor", 150.0)
            self.delayDisplay("Running the engine in a child process")
            events: list[Any] = []
            node = logic.process(
                volume,
                device="cpu",
                liverModel=str(liver),
                tumorModel=str(tumor),
                skipPlausibilityCheck=True,  # a small synthetic CT, not a body
                progressCallback=events.append,
                waitForCompletion=True,
                timeoutS=600,
            )
        assert events and events[-1].fraction == 1.0, events[-1:]
        segmentation = node.GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        assert names == ["Liver", "Lesion 1", "Lesion 2"], names
        arrays = mrml.labelmap_from_segmentation(node, volume)
        expected = np.zeros(voxels.shape, np.uint8)
        expected[voxels > 50] = 1
        expected[voxels > 150] = 2
        np.testing.assert_array_equal(arrays.labelmap, expected)
        table = logic.tableFor(node)
        assert table.GetTable().GetNumberOfRows() == 2
        volume_ml = table.GetTable().GetValueByName(0, "Volume").ToDouble()
        assert abs(volume_ml - 100 * 0.8 * 0.7 * 2.5 / 1000) < 1e-4, volume_ml
        self.delayDisplay("Self-test passed")
