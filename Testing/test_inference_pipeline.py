"""The global–local pipeline on synthetic CTs with threshold networks (exact, hand-computable answers)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from SmoothSegNetLib.errors import Cancelled, InputError, ModelError
from SmoothSegNetLib.inference import SegmentOptions, segment
from SmoothSegNetLib.inference.device import run_with_oom_fallback
from SmoothSegNetLib.inference.postprocess import chan_vese_refine, fill_holes, largest_component
from SmoothSegNetLib.inference.window import decision_probability, window_starts
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_random_model, write_threshold_model

BACKGROUND_HU, LIVER_HU, TUMOR_HU = -500, 100, 200


def _box_ct(origin: tuple[float, float, float] = (3.0, 4.0, 5.0)) -> tuple[CTVolume, np.ndarray]:
    """A 20x30x40 CT: a liver block (100 HU) holding a big (4x4x6) and a small (2x2x2) tumor (200 HU)."""
    a = np.full((20, 30, 40), BACKGROUND_HU, np.int16)
    a[4:16, 5:25, 5:35] = LIVER_HU
    a[8:12, 10:14, 10:16] = TUMOR_HU
    a[6:8, 18:20, 26:28] = TUMOR_HU
    expected = np.zeros(a.shape, np.uint8)
    expected[a > 50] = 1
    expected[a > 150] = 2
    return CTVolume(a, Geometry.create(a.shape, (1.0, 1.0, 1.0), origin)), expected


def _models(tmp_path: Path, **kw: object) -> SegmentOptions:
    liver = write_threshold_model(tmp_path / "liver", "liver", threshold_hu=50, **kw)  # type: ignore[arg-type]
    tumor = write_threshold_model(tmp_path / "tumor", "tumor", threshold_hu=150, **kw)  # type: ignore[arg-type]
    return SegmentOptions(liver_model=str(liver), tumor_model=str(tumor), device="cpu")


@pytest.mark.parametrize(("orientation", "mode"), [("LPS", "whole"), ("PLI", "sliding"), ("RAS", "whole")])
def test_native_grid_gives_the_exact_threshold_mask(tmp_path: Path, orientation: str, mode: str) -> None:
    ct, expected = _box_ct()
    result = segment(ct, _models(tmp_path, spacing_mm=None, orientation=orientation, mode=mode))
    assert result.labelmap.dtype == np.uint8 and result.lesions.dtype == np.uint16
    np.testing.assert_array_equal(result.labelmap, expected)
    # Lesion 1 is the larger one (96 voxels), lesion 2 the 8-voxel one.
    assert int((result.lesions == 1).sum()) == 96 and int((result.lesions == 2).sum()) == 8
    assert result.lesions[9, 11, 12] == 1 and result.lesions[6, 18, 26] == 2
    np.testing.assert_array_equal(result.lesions > 0, expected == 2)
    # Windowed 200 HU with the tumor window [-200, 250] and x0 = 350/450: q = sigmoid(50 * (400/450 - 350/450))
    # against the two other channels at logit 0, i.e. q = e^z / (e^z + 1) with z = 50 * 50 / 450.
    z = 50 * 50 / 450
    assert result.confidence[1] == pytest.approx(np.exp(z) / (np.exp(z) + 1), abs=1e-4)
    assert result.warnings == ()
    assert [m["task"] for m in result.models] == ["liver", "tumor"]


def _rotation_z(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])


def _sphere_ct(direction: np.ndarray, spacing: tuple[float, float, float]) -> tuple[CTVolume, np.ndarray, np.ndarray]:
    """Liver ball r=22 mm with a tumor ball r=8 mm, defined in LPS; returns (ct, expected, distance to edges)."""
    shape = (24, 40, 56)
    geometry = Geometry.create(shape, spacing, (-20.0, 15.0, 40.0), direction)
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    lps = geometry.index_to_lps(np.stack([ii, jj, kk], axis=-1).reshape(-1, 3)).reshape(*shape, 3)
    centre = geometry.index_to_lps(np.array([(shape[2] - 1) / 2, (shape[1] - 1) / 2, (shape[0] - 1) / 2]))
    d_liver = np.linalg.norm(lps - centre, axis=-1)
    d_tumor = np.linalg.norm(lps - (centre + np.array([6.0, 0.0, 0.0])), axis=-1)
    array = np.full(shape, BACKGROUND_HU, np.int16)
    array[d_liver <= 22] = LIVER_HU
    array[d_tumor <= 8] = TUMOR_HU
    expected = np.zeros(shape, np.uint8)
    expected[d_liver <= 22] = 1
    expected[d_tumor <= 8] = 2
    margin = np.minimum(np.abs(d_liver - 22), np.abs(d_tumor - 8))
    return CTVolume(array, geometry), expected, margin


@pytest.mark.parametrize(
    ("direction", "spacing"),
    [
        (_rotation_z(30.0), (1.0, 1.0, 2.0)),  # oblique, anisotropic
        (np.diag([-1.0, 1.0, -1.0]) @ _rotation_z(-15.0), (0.9, 1.2, 2.5)),  # reflected + oblique
        (np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0.0]]), (2.0, 1.0, 1.5)),  # axes permuted
    ],
)
def test_oblique_reflected_anisotropic_inputs_map_back_onto_the_input_grid(
    tmp_path: Path, direction: np.ndarray, spacing: tuple[float, float, float]
) -> None:
    ct, expected, margin = _sphere_ct(direction, spacing)
    options = _models(tmp_path, spacing_mm=[2.0, 2.0, 2.0], orientation="PLI", mode="sliding")
    result = segment(ct, options)
    assert result.labelmap.shape == ct.geometry.shape_kji
    # Away from the spheres' surfaces (> 2.5 mm: more than one coarse voxel plus a voxel diagonal) every voxel
    # must carry its exact label: a flip, shift or wrong grid would break this far inside.
    far = margin > 2.5
    assert far.sum() > 0.5 * far.size and (far & (expected == 2)).sum() > 150
    np.testing.assert_array_equal(result.labelmap[far], expected[far])
    assert result.lesions.max() == 1
    volume_ml = (result.labelmap == 2).sum() * ct.geometry.voxel_volume_mm3 / 1000
    assert volume_ml == pytest.approx(4 / 3 * np.pi * 8**3 / 1000, rel=0.15)


def test_no_liver_and_tumor_free_liver_are_warnings(tmp_path: Path) -> None:
    options = _models(tmp_path, spacing_mm=None)
    empty = CTVolume(np.full((8, 9, 10), BACKGROUND_HU, np.int16), Geometry.create((8, 9, 10)))
    result = segment(empty, options)
    assert not result.labelmap.any() and not result.lesions.any()
    assert any("no liver" in w for w in result.warnings)
    plain = np.full((8, 9, 10), BACKGROUND_HU, np.int16)
    plain[2:6, 2:7, 2:8] = LIVER_HU
    result = segment(CTVolume(plain, Geometry.create(plain.shape)), options)
    assert int((result.labelmap == 1).sum()) == 4 * 5 * 6 and result.confidence == {}
    assert any("no tumor" in w for w in result.warnings)


def test_min_lesion_volume_drops_small_lesions_back_to_liver(tmp_path: Path) -> None:
    ct, _ = _box_ct()
    base = _models(tmp_path, spacing_mm=None)
    options = SegmentOptions(liver_model=base.liver_model, tumor_model=base.tumor_model, min_lesion_ml=0.05)
    result = segment(ct, options)
    assert result.lesions.max() == 1 and list(result.confidence) == [1]
    assert result.labelmap[6, 18, 26] == 1  # the 8-voxel (0.008 ml) lesion is liver again
    assert int((result.labelmap == 2).sum()) == 96


def test_min_lesion_confidence_gives_unsure_lesions_back_to_the_liver(tmp_path: Path) -> None:
    ct, _ = _box_ct()
    ct.array[6:8, 18:20, 26:28] = 160  # the small lesion at 160 HU: q = e^z / (e^z + 1), z = 50 * 10 / 450
    z_small, z_big = 50 * 10 / 450, 50 * 50 / 450
    q_small, q_big = np.exp(z_small) / (np.exp(z_small) + 1), np.exp(z_big) / (np.exp(z_big) + 1)
    assert 0.75 < q_small < 0.76 and q_big > 0.99
    base = _models(tmp_path, spacing_mm=None)
    kept = segment(ct, dataclasses.replace(base, min_lesion_confidence=0.75))
    assert kept.confidence[1] == pytest.approx(q_big, abs=1e-4) and kept.confidence[2] == pytest.approx(
        q_small, abs=1e-4
    )
    dropped = segment(ct, dataclasses.replace(base, min_lesion_confidence=0.76))
    assert list(dropped.confidence) == [1] and dropped.lesions.max() == 1
    assert dropped.labelmap[6, 18, 26] == 1 and int((dropped.labelmap == 2).sum()) == 96
    # The same from the card; the option overrides the card.
    card = json.loads(Path(base.tumor_model).read_text())
    card["postprocessing"]["min_lesion_confidence"] = 0.76
    Path(base.tumor_model).write_text(json.dumps(card))
    assert list(segment(ct, base).confidence) == [1]
    assert list(segment(ct, dataclasses.replace(base, min_lesion_confidence=0.0)).confidence) == [1, 2]
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(InputError, match="--min-lesion-confidence must be a number in"):
            dataclasses.replace(base, min_lesion_confidence=bad)


def test_liver_only_and_probability_map(tmp_path: Path) -> None:
    ct, expected = _box_ct()
    base = _models(tmp_path, spacing_mm=None)
    options = SegmentOptions(liver_model=base.liver_model, liver_only=True, probability_map=True)
    result = segment(ct, options)
    np.testing.assert_array_equal(result.labelmap, (expected > 0).astype(np.uint8))
    assert result.probability is not None and set(result.probability) == {"liver"}
    assert result.probability["liver"].shape == ct.geometry.shape_kji
    assert float(result.probability["liver"][0, 0, 0]) < 0.01 and float(result.probability["liver"][10, 15, 20]) > 0.99


def test_cancel_between_windows(tmp_path: Path) -> None:
    ct, _ = _box_ct()
    options = _models(tmp_path, spacing_mm=None, mode="sliding")
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(Cancelled):
        segment(ct, options, cancel=cancel)
    assert calls["n"] == 6


def test_wrong_task_and_bad_input_are_refused(tmp_path: Path) -> None:
    options = _models(tmp_path, spacing_mm=None)
    swapped = SegmentOptions(liver_model=options.tumor_model, tumor_model=options.liver_model)
    ct, _ = _box_ct()
    with pytest.raises(ModelError, match="tumor model but was given as the liver model"):
        segment(ct, swapped)
    with pytest.raises(InputError, match="3D numeric"):
        segment(CTVolume(np.zeros((2, 2, 2), bool), Geometry.create((2, 2, 2))), options)
    with pytest.raises(InputError, match="min-lesion-ml"):
        SegmentOptions(min_lesion_ml=-1.0)


def test_fixed_seed_random_networks_give_the_same_output_twice(tmp_path: Path) -> None:
    liver = write_random_model(tmp_path, "liver", seed=1, input={"spacing_mm": [2.0, 2.0, 2.0]})
    tumor = write_random_model(tmp_path, "tumor", seed=2, input={"spacing_mm": [1.5, 1.5, 1.5]})
    # A random liver net may find no liver; force a liver-ish output by using the threshold liver model.
    threshold_liver = write_threshold_model(tmp_path / "t", "liver", threshold_hu=50, spacing_mm=[2.0, 2.0, 2.0])
    ct, _ = _box_ct()
    hashes = []
    for _ in range(2):
        result = segment(ct, SegmentOptions(liver_model=str(threshold_liver), tumor_model=str(tumor), device="cpu"))
        digest = hashlib.sha256(result.labelmap.tobytes() + result.lesions.tobytes()).hexdigest()
        hashes.append(digest)
    assert hashes[0] == hashes[1]
    result = segment(ct, SegmentOptions(liver_model=str(liver), liver_only=True, device="cpu"))
    assert result.labelmap.shape == ct.geometry.shape_kji


def test_gpu_out_of_memory_falls_back_to_smaller_batch_then_cpu_gpu_mock() -> None:
    """GPU MOCK: no GPU here; the run function raises CUDA's OOM error for the 'cuda' device."""
    calls: list[tuple[str, int]] = []

    def run(device: torch.device, batch: int) -> str:
        calls.append((device.type, batch))
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "ok"

    result, used, warnings = run_with_oom_fallback(run, torch.device("cuda"), 4)
    assert (result, used.type) == ("ok", "cpu")
    assert calls == [("cuda", 4), ("cuda", 1), ("cpu", 1)]
    assert len(warnings) == 2 and "out of GPU memory" in warnings[0]

    def broken(device: torch.device, batch: int) -> str:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_with_oom_fallback(broken, torch.device("cuda"), 2)


def test_window_starts_and_decision_probability() -> None:
    assert window_starts(10, 4, 0.5) == [0, 2, 4, 6]
    assert window_starts(10, 4, 0.25) == [0, 3, 6]
    assert window_starts(3, 4, 0.25) == [0]
    logits = torch.tensor([[0.0], [float(np.log(3.0))]])
    assert float(decision_probability(logits, "softmax", 1)[0]) == pytest.approx(0.75)
    # sigmoid: p = (0.5, 0.5, sigmoid(ln 3) = 0.75): q = 0.75 / (0.75 + 0.5) = 0.6
    logits3 = torch.tensor([[0.0], [0.0], [float(np.log(3.0))]])
    assert float(decision_probability(logits3, "sigmoid", 2)[0]) == pytest.approx(0.6)


def test_postprocessing_steps() -> None:
    mask = np.zeros((6, 6, 6), bool)
    mask[0:2, 0:2, 0:2] = True  # 8 voxels
    mask[3:6, 3:6, 3:6] = True  # 27 voxels
    mask[4, 4, 4] = False  # a hole
    largest = largest_component(mask)
    assert largest.sum() == 26 and not largest[0, 0, 0]
    assert fill_holes(largest).sum() == 27
    image = np.zeros((12, 12, 12), np.float32)
    image[3:9, 3:9, 3:9] = 1.0
    init = np.zeros(image.shape, bool)
    init[2:8, 2:8, 2:8] = True  # shifted by one voxel: overlaps the dark background
    region = np.ones(image.shape, bool)
    refined = chan_vese_refine(image, init, region, 2)
    truth = image > 0.5

    def dice(a: np.ndarray, b: np.ndarray) -> float:
        return 2 * float((a & b).sum()) / float(a.sum() + b.sum())

    assert dice(refined, truth) > dice(init, truth)
    confined = chan_vese_refine(image, init, init, 2)
    assert not (confined & ~init).any()


def test_liver_stage_runs_on_the_body_box_only(tmp_path: Path) -> None:
    from SmoothSegNetLib.inference.pipeline import Segmenter

    ct, expected = _box_ct()  # body (> -500 HU) = the 12x20x30 liver block; margin 10 mm = 10 voxels, clipped
    options = _models(tmp_path, spacing_mm=None)
    segmenter = Segmenter(options)
    shapes: list[tuple[int, ...]] = []
    segmenter.liver_net.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    result = segmenter(ct)
    # k: 4..15 -> 0..20 (clipped), j: 5..24 -> 0..30, i: 5..34 -> 0..40: the whole grid here; shrink the margin.
    assert shapes == [(1, 1, 40, 30, 20)]
    np.testing.assert_array_equal(result.labelmap, expected)
    data = json.loads(Path(options.liver_model).read_text())
    data["input"]["crop_margin_mm"] = 2.0
    Path(options.liver_model).write_text(json.dumps(data))
    shapes.clear()
    segmenter = Segmenter(options)
    segmenter.liver_net.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    result = segmenter(ct)
    assert shapes == [(1, 1, 30 + 4, 20 + 4, 12 + 4)]  # [B, C, i, j, k] of the box + 2 voxels each side
    np.testing.assert_array_equal(result.labelmap, expected)


def test_mapping_back_only_the_support_box_equals_mapping_everything(tmp_path: Path) -> None:
    # Without a probability map only the box where q can reach 0.5 is interpolated; the result must be identical.
    ct, _, _ = _sphere_ct(np.diag([-1.0, 1.0, -1.0]) @ _rotation_z(-15.0), (0.9, 1.2, 2.5))
    options = _models(tmp_path, spacing_mm=[2.0, 2.0, 2.0], orientation="PLI")
    partial = segment(ct, options)
    full = segment(ct, dataclasses.replace(options, probability_map=True))
    np.testing.assert_array_equal(partial.labelmap, full.labelmap)
    np.testing.assert_array_equal(partial.lesions, full.lesions)
    assert partial.confidence == full.confidence
    assert full.probability is not None and full.probability["tumor"].shape == ct.geometry.shape_kji


def test_cpu_bfloat16_autocast_is_used_on_request_only(tmp_path: Path) -> None:
    from SmoothSegNetLib.inference.pipeline import Segmenter

    ct, expected = _box_ct()
    options = _models(tmp_path, spacing_mm=None)
    for bf16, dtype in ((False, torch.float32), (True, torch.bfloat16)):
        segmenter = Segmenter(dataclasses.replace(options, cpu_bf16=bf16))
        dtypes: list[torch.dtype] = []
        segmenter.liver_net.register_forward_hook(lambda m, args, out, seen=dtypes: seen.append(out.dtype))
        result = segmenter(ct)
        assert dtypes == [dtype]
        np.testing.assert_array_equal(result.labelmap, expected)  # wide margins: bfloat16 decides the same
