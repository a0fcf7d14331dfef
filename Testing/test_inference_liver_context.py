"""The tumor stage's grown liver mask and its liver refinement (hand-computable answers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from SmoothSegNetLib.errors import ModelError
from SmoothSegNetLib.inference import SegmentOptions, segment
from SmoothSegNetLib.inference.postprocess import liver_context
from SmoothSegNetLib.inference.window import RunSettings, decision_maps, predict_sliding, predict_whole
from SmoothSegNetLib.models import demo_card_template
from SmoothSegNetLib.models.card import card_from_dict
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_channel_model, write_threshold_model

BLOCK = (slice(4, 16), slice(5, 25), slice(5, 35))
TUMOR = (slice(8, 12), slice(10, 14), slice(10, 16))
SLAB = (slice(4, 16), slice(5, 25), slice(35, 37))  # 30 HU liver the liver stage (> 50 HU) misses
FAT = (slice(4, 16), slice(5, 25), slice(37, 39))  # -100 HU beside it


def test_zero_dilation_is_the_mask_itself_even_with_holes() -> None:
    liver = np.zeros((5, 5, 5), bool)
    liver[1:4, 1:4, 1:4] = True
    liver[2, 2, 2] = False
    out = liver_context(liver, (1.0, 1.0, 1.0), 0.0)
    np.testing.assert_array_equal(out, liver)
    assert out is not liver


def test_dilation_is_euclidean_in_millimetres_on_an_anisotropic_grid() -> None:
    # One voxel at the centre of a grid with 3 mm slices (k) and 1 mm rows/columns (j, i), grown by 3 mm:
    # the voxels whose centres lie within 3 mm: along k one slice each way, in plane the disc of radius 3.
    liver = np.zeros((7, 9, 9), bool)
    liver[3, 4, 4] = True
    out = liver_context(liver, (3.0, 1.0, 1.0), 3.0)
    kk, jj, ii = np.meshgrid(np.arange(7), np.arange(9), np.arange(9), indexing="ij")
    distance = np.sqrt((3.0 * (kk - 3)) ** 2 + (jj - 4.0) ** 2 + (ii - 4.0) ** 2)
    np.testing.assert_array_equal(out, distance <= 3.0)
    # In the centre slice: 29 voxels (the lattice points of a disc of radius 3); one slice up or down: the centre.
    assert int(out[3].sum()) == 29 and int(out[2].sum()) == 1 and int(out[4].sum()) == 1 and int(out.sum()) == 31


def test_cavities_are_filled_before_growing() -> None:
    liver = np.zeros((9, 9, 9), bool)
    liver[2:7, 2:7, 2:7] = True
    liver[4, 4, 4] = False  # an enclosed vessel
    out = liver_context(liver, (1.0, 1.0, 1.0), 1.0)
    assert out[4, 4, 4]
    # The 5-cube grown by 1 mm: the cube plus one voxel on each of its 6 faces (edges are sqrt(2) mm away).
    assert int(out.sum()) == 125 + 6 * 25


def _ct(slab: tuple[slice, slice, slice] = SLAB, fat: tuple[slice, slice, slice] = FAT) -> CTVolume:
    a = np.full((20, 30, 45), -500, np.int16)
    a[BLOCK] = 100
    a[TUMOR] = 200
    a[slab] = 30
    a[fat] = -100
    return CTVolume(a, Geometry.create(a.shape, (1.0, 1.0, 1.0), (3.0, 4.0, 5.0)))


def _options(tmp_path: Path, refine: bool, dilation: float) -> SegmentOptions:
    liver = write_threshold_model(tmp_path / "liver", "liver", threshold_hu=50)
    # Tumor network: tumor wins above 150 HU, background below 0 HU, liver in between.
    tumor = write_channel_model(
        tmp_path / "tumor",
        "tumor",
        {"tumor": (150.0, 50.0), "background": (0.0, -50.0)},
        extra={
            "input": {"liver_mask_dilation_mm": dilation},
            "postprocessing": {
                "fill_holes": False,
                "chan_vese_iterations": 0,
                "min_lesion_ml": 0.0,
                "liver_from_tumor_stage": refine,
            },
        },
    )
    return SegmentOptions(liver_model=str(liver), tumor_model=str(tumor), device="cpu", probability_map=True)


def test_tumor_stage_refines_the_liver_inside_the_grown_mask(tmp_path: Path) -> None:
    ct = _ct()
    result = segment(ct, _options(tmp_path, refine=True, dilation=3.0))
    expected = np.zeros(ct.array.shape, np.uint8)
    expected[BLOCK] = 1
    expected[SLAB] = 1  # recovered: within 3 mm of the liver stage's mask and not background to the tumor network
    expected[TUMOR] = 2
    np.testing.assert_array_equal(result.labelmap, expected)
    # The liver probability there is the tumor network's 1 - p_background: logits (bg, liver, tumor) at 30 HU.
    x = (30 + 200) / 450
    logits = np.array([-50 * (x - 200 / 450), 0.0, 50 * (x - 350 / 450)])
    p = np.exp(logits) / np.exp(logits).sum()
    assert result.probability is not None
    assert float(result.probability["liver"][10, 10, 35]) == pytest.approx(1 - p[0], abs=1e-3)
    assert float(result.probability["liver"][10, 10, 37]) < 0.5  # the fat stays outside


def test_without_refinement_the_liver_stage_mask_is_kept(tmp_path: Path) -> None:
    ct = _ct()
    result = segment(ct, _options(tmp_path, refine=False, dilation=3.0))
    expected = np.zeros(ct.array.shape, np.uint8)
    expected[BLOCK] = 1
    expected[TUMOR] = 2
    np.testing.assert_array_equal(result.labelmap, expected)


def test_refinement_needs_the_grown_mask_to_reach_the_missed_liver(tmp_path: Path) -> None:
    # Grown by 1 mm only the first slab column is within reach.
    ct = _ct()
    result = segment(ct, _options(tmp_path, refine=True, dilation=1.0))
    expected = np.zeros(ct.array.shape, np.uint8)
    expected[BLOCK] = 1
    expected[4:16, 5:25, 35] = 1
    expected[TUMOR] = 2
    np.testing.assert_array_equal(result.labelmap, expected)


def test_foreground_map_is_the_same_whole_and_sliding() -> None:
    card_dict = demo_card_template("tumor")
    card_dict["architecture"] = {"name": "Conv3d", "args": {"in_channels": 1, "out_channels": 3, "kernel_size": 1}}
    card_dict["inference"] = {"mode": "sliding", "roi_size_ijk": [8, 8, 8], "overlap": 0.25, "size_divisible_by": 1}
    card = card_from_dict({**card_dict, "weights": {**card_dict["weights"], "sha256": "0" * 64}})
    torch.manual_seed(3)
    network = torch.nn.Conv3d(1, 3, 1)
    image = np.random.default_rng(0).random((13, 11, 9)).astype(np.float32)
    settings = RunSettings(torch.device("cpu"))
    whole = predict_whole(network, image, card, settings, foreground=True)
    sliding = predict_sliding(network, image, card, settings, foreground=True)
    assert whole.shape == (2, 13, 11, 9)
    np.testing.assert_allclose(whole, sliding, atol=1e-5)
    logits = network(torch.from_numpy(image)[None, None])[0].detach()
    np.testing.assert_allclose(whole[1], 1 - torch.softmax(logits, 0)[0].numpy(), atol=1e-5)
    single = predict_whole(network, image, card, settings)
    np.testing.assert_allclose(single, whole[0], atol=1e-6)
    sigmoid = card_from_dict(
        {
            **card.raw,
            "output": {**card.raw["output"], "activation": "sigmoid"},
            "postprocessing": {"liver_from_tumor_stage": False},
        }
    )
    with pytest.raises(ValueError, match="softmax"):
        decision_maps(logits, sigmoid, True)


def _card(**changes: dict) -> dict:
    card = demo_card_template("tumor")
    for key, value in changes.items():
        card[key] = {**card[key], **value}
    return {**card, "weights": {**card["weights"], "sha256": "0" * 64}}


def test_cards_refuse_a_dilation_beyond_the_crop_and_refinement_without_a_liver_class() -> None:
    with pytest.raises(
        ModelError, match=re.escape("liver_mask_dilation_mm 12 must not exceed input.crop_margin_mm 10")
    ):
        card_from_dict(_card(input={"liver_mask_dilation_mm": 12.0}), source="x.json")
    with pytest.raises(ModelError, match="liver_mask_dilation_mm"):
        card_from_dict(_card(input={"liver_mask_dilation_mm": -1.0}), source="x.json")
    liver = demo_card_template("liver")
    liver["postprocessing"]["liver_from_tumor_stage"] = True
    with pytest.raises(ModelError, match="liver_from_tumor_stage needs a tumor model"):
        card_from_dict({**liver, "weights": {**liver["weights"], "sha256": "0" * 64}}, source="x.json")
    ok = card_from_dict(
        _card(input={"liver_mask_dilation_mm": 10.0}, postprocessing={"liver_from_tumor_stage": True}), source="x.json"
    )
    assert ok.input.liver_mask_dilation_mm == 10.0 and ok.post.liver_from_tumor_stage
    parsed = card_from_dict(_card(), source="x.json")  # a card without the two fields (the paper's local stage)
    assert parsed.input.liver_mask_dilation_mm == 0.0 and not parsed.post.liver_from_tumor_stage


@pytest.mark.parametrize(
    ("spacing", "radius"),
    [((3.0, 1.0, 1.0), 3.0), ((2.5, 0.7, 0.9), 6.0), ((2.0, 2.0, 2.0), 6.0), ((1.0, 1.0, 1.0), 1.0)],
)
def test_ball_dilation_equals_the_distance_transform(spacing: tuple[float, float, float], radius: float) -> None:
    from scipy import ndimage

    from SmoothSegNetLib.inference.postprocess import dilate_ball

    mask = np.random.default_rng(0).random((20, 30, 25)) > 0.995
    mask[0, 0, 0] = mask[-1, -1, -1] = True  # corners: the ball is cut at the array's edges
    expected = ndimage.distance_transform_edt(~mask, sampling=spacing) <= radius + 1e-6
    np.testing.assert_array_equal(dilate_ball(mask, spacing, radius), expected)


def test_refinement_on_a_coarser_network_grid_is_exact_away_from_edges(tmp_path: Path) -> None:
    # A 4 mm slab of missed liver, both networks on a 2 mm grid: labels may differ only near a label edge.
    slab = (slice(4, 16), slice(5, 25), slice(35, 39))
    ct = _ct(slab, (slice(4, 16), slice(5, 25), slice(39, 41)))
    options = _options(tmp_path, refine=True, dilation=6.0)
    for card_path in (options.liver_model, options.tumor_model):
        card = json.loads(Path(card_path).read_text())
        card["input"]["spacing_mm"] = [2.0, 2.0, 2.0]
        Path(card_path).write_text(json.dumps(card))
    result = segment(ct, options)
    expected = np.zeros(ct.array.shape, np.uint8)
    expected[BLOCK] = 1
    expected[slab] = 1
    expected[TUMOR] = 2
    uniform = np.ones(expected.shape, bool)
    for value in (0, 1, 2):
        region = expected == value
        uniform &= ~(ndimage_dilate(region, 2) & ndimage_dilate(~region, 2))
    assert uniform.sum() > 0.5 * uniform.size and uniform[4:16, 5:25, 35:37].any()
    np.testing.assert_array_equal(result.labelmap[uniform], expected[uniform])


def ndimage_dilate(mask: np.ndarray, voxels: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), bool), iterations=voxels)
