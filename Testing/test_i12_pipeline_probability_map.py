"""Issue 12 item 1: ``--probability-map`` must not change the masks, on a CT whose body box is smaller than the image.

The liver stage runs on the body's bounding box; the probability map asks for the decision probability on the
whole input grid. The old code applied the box offset twice (``q_input[box][sub]`` with ``sub = box``), which
went unnoticed while every test's body box was the whole image. Here the CTs are padded with air so the box is
strictly inside the image.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from SmoothSegNetLib.inference import SegmentOptions, segment
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model
from Testing.test_inference_pipeline import _box_ct, _rotation_z, _sphere_ct

AIR_HU = -1000


def pad_with_air(ct: CTVolume, before_kji: tuple[int, int, int], after_kji: tuple[int, int, int]) -> CTVolume:
    """``ct`` with air voxels added on each side; the original voxels keep their LPS positions."""
    g = ct.geometry
    array = np.pad(ct.array, list(zip(before_kji, after_kji)), constant_values=AIR_HU)
    shift_ijk = -np.array(before_kji[::-1], dtype=float)
    origin = g.index_to_lps(shift_ijk)
    return CTVolume(array, Geometry.create(array.shape, g.spacing_mm, origin, g.direction_array), source=ct.source)


def pad_mask(mask: np.ndarray, before_kji: tuple[int, int, int], after_kji: tuple[int, int, int]) -> np.ndarray:
    return np.pad(mask, list(zip(before_kji, after_kji)), constant_values=0)


def _models(tmp_path: Path, crop_margin_mm: float, **kw: object) -> SegmentOptions:
    body = {"input": {"crop_to_body_hu": -500, "crop_margin_mm": crop_margin_mm}}
    liver = write_threshold_model(tmp_path / "liver", "liver", threshold_hu=50, extra=body, **kw)  # type: ignore[arg-type]
    tumor = write_threshold_model(tmp_path / "tumor", "tumor", threshold_hu=150, **kw)  # type: ignore[arg-type]
    card = json.loads(liver.read_text())
    assert card["input"]["crop_to_body_hu"] == -500 and card["input"]["crop_margin_mm"] == crop_margin_mm
    return SegmentOptions(liver_model=str(liver), tumor_model=str(tumor), device="cpu")


BEFORE, AFTER = (3, 5, 7), (4, 6, 2)


def test_probability_map_does_not_change_the_masks_when_the_body_box_is_inside_the_image(tmp_path: Path) -> None:
    ct, expected = _box_ct()
    # Body (> -500 HU) is the 12x20x30 liver block; with a 2 mm margin the box is 16x24x34 of a 27x41x49 image.
    padded = pad_with_air(ct, BEFORE, AFTER)
    expected = pad_mask(expected, BEFORE, AFTER)
    options = _models(tmp_path, crop_margin_mm=2.0)
    plain = segment(padded, options)
    with_map = segment(padded, dataclasses.replace(options, probability_map=True))
    np.testing.assert_array_equal(plain.labelmap, expected)
    np.testing.assert_array_equal(with_map.labelmap, plain.labelmap)
    np.testing.assert_array_equal(with_map.lesions, plain.lesions)
    assert with_map.confidence == plain.confidence
    # The liver probability lies on the liver's voxels: > 0.99 on every liver/tumor voxel, < 0.01 elsewhere.
    assert with_map.probability is not None
    q_liver = with_map.probability["liver"].astype(np.float32)
    assert q_liver.shape == padded.geometry.shape_kji
    assert float(q_liver[expected > 0].min()) > 0.99
    assert float(q_liver[expected == 0].max()) < 0.01
    q_tumor = with_map.probability["tumor"].astype(np.float32)
    assert float(q_tumor[expected == 2].min()) > 0.99
    assert float(q_tumor[expected == 1].max()) < 0.01


@pytest.mark.parametrize("probability_map", [False, True])
def test_mapping_back_with_a_body_box_smaller_than_the_image(tmp_path: Path, probability_map: bool) -> None:
    """Oblique, reflected, anisotropic, resampled to 2 mm, the body box strictly inside: same labels far from edges,
    and the same masks as the unpadded CT on its voxels."""
    ct, expected, margin = _sphere_ct(np.diag([-1.0, 1.0, -1.0]) @ _rotation_z(-15.0), (0.9, 1.2, 2.5))
    before, after = (6, 9, 12), (5, 8, 10)
    padded = pad_with_air(ct, before, after)
    options = dataclasses.replace(
        _models(tmp_path, crop_margin_mm=3.0, spacing_mm=[2.0, 2.0, 2.0], orientation="PLI"),
        probability_map=probability_map,
    )
    result = segment(padded, options)
    inner = tuple(slice(b, n - a) for b, a, n in zip(before, after, padded.geometry.shape_kji))
    outside = np.ones(padded.geometry.shape_kji, bool)
    outside[inner] = False
    assert not result.labelmap[outside].any()
    far = margin > 2.5
    assert far.sum() > 0.5 * far.size
    np.testing.assert_array_equal(result.labelmap[inner][far], expected[far])
    volume_ml = (result.labelmap == 2).sum() * padded.geometry.voxel_volume_mm3 / 1000
    assert volume_ml == pytest.approx(4 / 3 * np.pi * 8**3 / 1000, rel=0.15)
    if probability_map:
        assert result.probability is not None
        # The liver mask is where the liver probability is >= 0.5 (a shifted map would disagree).
        q = result.probability["liver"].astype(np.float32)
        np.testing.assert_array_equal(q >= 0.5, result.labelmap > 0)
        assert float(q[inner][far & (expected > 0)].min()) > 0.6 and float(q[outside].max()) == 0.0
