"""Issue 12 item 9 (GPU part): after a GPU out-of-memory fallback every later case of the cohort says it ran on
the CPU.

GPU MOCK: there is no GPU here. The segmenter is told its device is ``cuda``; moving a network to ``cuda`` is a
no-op and the sliding-window predictor raises CUDA's out-of-memory error whenever it is asked to run on
``cuda`` (it runs for real on the CPU).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from SmoothSegNetLib.inference import pipeline
from SmoothSegNetLib.inference.cases import Case, run_case
from SmoothSegNetLib.io.writers import write_volume
from Testing.test_inference_pipeline import _box_ct, _models

CPU_NOTE = "ran on the CPU: cuda ran out of memory in an earlier case of this run"


@pytest.fixture
def gpu_that_runs_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """GPU MOCK: ``predict`` on a ``cuda`` device raises CUDA's OOM error; returns the devices asked for."""
    real_predict = pipeline.predict
    asked: list[str] = []

    def predict(network: torch.nn.Module, image: np.ndarray, card: Any, settings: Any, *args: Any) -> np.ndarray:
        asked.append(settings.device.type)
        if settings.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU MOCK)")
        return real_predict(network, image, card, settings, *args)

    monkeypatch.setattr(pipeline, "predict", predict)
    return asked


def _on_mock_gpu(segmenter: pipeline.Segmenter) -> None:
    segmenter.device = torch.device("cuda")
    for net in (segmenter.liver_net, segmenter.tumor_net):
        assert net is not None
        real_to = net.to

        def to(device: Any, real_to: Any = real_to, net: torch.nn.Module = net) -> torch.nn.Module:
            return net if torch.device(device).type == "cuda" else real_to(device)

        net.to = to  # type: ignore[method-assign]


def test_every_case_after_a_gpu_out_of_memory_fallback_says_it_ran_on_the_cpu(
    tmp_path: Path, gpu_that_runs_out_of_memory: list[str]
) -> None:
    ct, expected = _box_ct()
    write_volume(tmp_path / "ct.nrrd", ct)
    segmenter = pipeline.Segmenter(_models(tmp_path, spacing_mm=None))
    _on_mock_gpu(segmenter)
    reports = []
    for n in range(3):
        result = run_case(Case(tmp_path / "ct.nrrd", tmp_path / f"case{n}"), segmenter)
        np.testing.assert_array_equal(result.labelmap, expected)
        assert result.device == "cpu"
        reports.append(json.loads((tmp_path / f"case{n}" / "report.json").read_text()))
    # Case 0 fell back (its own out-of-memory warning); the GPU was asked once, never again.
    assert gpu_that_runs_out_of_memory == ["cuda"] + ["cpu"] * 6  # 3 networks runs in case 0, 2 in each later
    first = reports[0]["warnings"]
    assert any(w.startswith("out of GPU memory on cuda") for w in first)
    assert not any(w.startswith(CPU_NOTE) for w in first)
    for later in reports[1:]:
        assert sum(w.startswith(CPU_NOTE) for w in later["warnings"]) == 1
        assert not any(w.startswith("out of GPU memory") for w in later["warnings"])


def test_a_run_that_never_ran_out_of_memory_has_no_cpu_note(tmp_path: Path) -> None:
    ct, _ = _box_ct()
    segmenter = pipeline.Segmenter(_models(tmp_path, spacing_mm=None))
    for _ in range(2):
        assert not any("ran on the CPU" in w for w in segmenter(ct).warnings)
