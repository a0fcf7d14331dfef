"""Issue 15: ``segment`` writes candidates.nrrd (uint16 on the input grid, candidate k = value k, as report.json
``candidates[]``), staged with the other outputs. Threshold networks, hand-computable blocks of
test_i12_pipeline_candidates: D (125 voxels, under the confidence floor) is candidate 1, B (96 voxels, under the
volume floor) candidate 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_i12_pipeline_candidates import BLOCKS, _ct, _models

from SmoothSegNetLib.inference.cases import Case, run_case
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.io.writers import write_volume
from SmoothSegNetLib.report.inputs import read_labelmap


def test_segment_writes_candidates_nrrd_matching_the_report(tmp_path: Path) -> None:
    ct = _ct()
    write_volume(tmp_path / "ct.nrrd", ct)
    segmenter = Segmenter(_models(tmp_path, card_confidence=0.8))
    run_case(Case(tmp_path / "ct.nrrd", tmp_path / "out"), segmenter, skip_plausibility_check=True)  # a small box
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [c["id"] for c in report["candidates"]] == [1, 2]
    array, geometry = read_labelmap(tmp_path / "out" / "candidates.nrrd")
    assert array.dtype == np.uint16
    assert geometry.shape_kji == ct.geometry.shape_kji
    assert np.allclose(geometry.ijk_to_ras(), ct.geometry.ijk_to_ras())
    expected = np.zeros(ct.array.shape, np.uint16)
    expected[BLOCKS["D"][0]] = 1
    expected[BLOCKS["B"][0]] = 2
    assert np.array_equal(array, expected)
    assert not list((tmp_path / "out").glob("*.tmp*"))  # written through the staged folder
