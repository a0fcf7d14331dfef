"""add-lesion's fine network window: when growing and the network at the card's spacing find nothing at the point,
the network runs once more on a finer grid centred on it (setting ``fine_network_spacing_mm``).

A threshold tumor network (q = e^z / (e^z + 1), z = 50 * (HU - 150) / 450) whose card runs at 2 mm, in windows
of 32 voxels, on a 1 mm CT of liver at 100 HU. The clicks lie half a voxel off a voxel centre on each axis, so the
1 mm window's samples fall on the CT's voxel centres (its half-width is 15.5 voxels) and its probability is exact.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from SmoothSegNetLib.correction.add_lesion import PointSegmenter
from SmoothSegNetLib.correction.folder import _correction
from SmoothSegNetLib.correction.settings import AddLesionSettings, default_settings
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "SmoothSegNetLib/schemas/report.schema.json").read_text())
ORIGIN = (10.0, -20.0, 30.0)
PLATE_Q = 0.9961  # 1 / (1 + exp(-50 * (200 - 150) / 450))


def _case() -> tuple[CTVolume, np.ndarray, np.ndarray, np.ndarray]:
    """CT, labelmap (all liver), lesions (none) and the plate: 10 x 10 voxels at 200 HU, one voxel thick in i."""
    a = np.full((40, 60, 60), 100, np.int16)
    plate = np.zeros(a.shape, bool)
    plate[16:26, 25:35, 30] = True
    a[plate] = 200
    a[10:20, 5:15, 5:15] = 40  # a hypodense block far from the plate, found by growing
    ct = CTVolume(a, Geometry.create(a.shape, (1.0, 1.0, 1.0), ORIGIN))
    return ct, np.ones(a.shape, np.uint8), np.zeros(a.shape, np.uint16), plate


def _segmenter(tmp_path: Path, fine_mm: float) -> PointSegmenter:
    extra = {"inference": {"roi_size_ijk": [32, 32, 32]}}
    tumor = write_threshold_model(
        tmp_path / "tumor", "tumor", threshold_hu=150, spacing_mm=[2.0, 2.0, 2.0], extra=extra
    )
    settings = dataclasses.replace(default_settings(), fine_network_spacing_mm=fine_mm)
    return PointSegmenter(str(tumor), settings=settings)


def _at(i: float, j: float, k: float) -> tuple[float, float, float]:
    return (ORIGIN[0] + i, ORIGIN[1] + j, ORIGIN[2] + k)


def test_the_fine_window_finds_what_the_card_spacing_and_growing_miss(tmp_path: Path) -> None:
    ct, labels, lesions, plate = _case()
    before = ct.array.copy()
    point = _at(30.5, 29.5, 20.5)  # on the plate (voxel i 30, j 30, k 20 after rounding half to even)
    with pytest.raises(InputError, match="nothing lesion-like was found"):
        _segmenter(tmp_path, 0.0)(ct, labels, lesions, point)
    added = _segmenter(tmp_path, 1.0)(ct, labels, lesions, point)
    mask = np.zeros(plate.shape, bool)
    mask[added.box] = added.mask
    assert np.array_equal(mask, plate)
    assert added.method == "network" and added.threshold == 0.5 and added.fine_network_spacing_mm == 1.0
    assert added.confidence == pytest.approx(PLATE_Q, abs=1e-4) and added.lesion_id == 1
    assert "fine_network_s" in added.timings_s
    assert np.array_equal(ct.array, before) and not lesions.any()  # nothing is modified
    record = _correction(added)
    assert record["network_spacing_mm"] == 1.0
    item = SCHEMA["properties"]["corrections"]["items"]
    jsonschema.validate(record, {**item, "$defs": SCHEMA["$defs"]})


def test_growing_comes_first_and_the_fine_window_is_not_run_when_it_finds_the_lesion(tmp_path: Path) -> None:
    ct, labels, lesions, _plate = _case()
    added = _segmenter(tmp_path, 1.0)(ct, labels, lesions, _at(9.5, 9.5, 14.5))  # the hypodense block
    assert added.method == "region_growing" and added.fine_network_spacing_mm is None
    assert "fine_network_s" not in added.timings_s
    assert _correction(added)["network_spacing_mm"] is None


def test_a_click_on_plain_liver_still_adds_nothing(tmp_path: Path) -> None:
    ct, labels, lesions, _plate = _case()
    with pytest.raises(InputError, match="nothing lesion-like was found"):
        _segmenter(tmp_path, 1.0)(ct, labels, lesions, _at(45.5, 45.5, 30.5))


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_fine_network_spacing_is_refused(bad: float) -> None:
    with pytest.raises(InputError, match="fine_network_spacing_mm must be a finite number >= 0"):
        AddLesionSettings(fine_network_spacing_mm=bad)
