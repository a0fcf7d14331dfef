"""Patch sampling and augmentation on small arrays with known content."""

from __future__ import annotations

import numpy as np
import pytest

from SmoothSegNetLib.training.config import AugmentConfig
from SmoothSegNetLib.training.patches import PreparedCase, augment, make_batch, sample_patch, with_foreground


def _case(shape: tuple[int, int, int] = (40, 40, 40)) -> PreparedCase:
    label = np.zeros(shape, dtype=np.uint8)
    label[30:34, 30:34, 30:34] = 2  # a small tumor in one corner
    image = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)  # voxel value = flat index
    return with_foreground(PreparedCase("c", image, label, tlvr_target=0.25), foreground_class=2)


def test_foreground_points_are_the_tumor_voxels() -> None:
    case = _case()
    assert len(case.foreground) == 64
    assert case.foreground.min(axis=0).tolist() == [30, 30, 30]


def test_foreground_patches_contain_the_tumor_and_crops_are_exact() -> None:
    case = _case()
    rng = np.random.default_rng(0)
    for _ in range(20):
        image, label = sample_patch(case, (16, 16, 16), rng, foreground_fraction=1.0)
        assert (label == 2).any()
        # the patch is a verbatim crop: find its offset from its first value
        start = np.unravel_index(int(image[0, 0, 0]), case.image.shape)
        window = tuple(slice(s, s + 16) for s in start)
        assert np.array_equal(image, case.image[window]) and np.array_equal(label, case.label[window])


def test_foreground_fraction_zero_samples_uniformly() -> None:
    case = _case()
    rng = np.random.default_rng(1)
    hits = sum(bool((sample_patch(case, (8, 8, 8), rng, 0.0)[1] == 2).any()) for _ in range(200))
    assert hits < 40  # a uniform 8^3 patch rarely meets a 4^3 tumor in a 40^3 volume


def test_small_cases_are_zero_padded() -> None:
    case = _case((10, 12, 40))
    image, label = sample_patch(case, (16, 16, 16), np.random.default_rng(2), 0.0)
    assert image.shape == (16, 16, 16)
    assert np.all(image[10:] == 0) and np.all(image[:, 12:] == 0) and np.all(label[10:] == 0)


def test_flips_move_image_and_label_together() -> None:
    image = np.random.default_rng(0).random((16, 16, 16)).astype(np.float32)
    label = image > 0.5
    config = AugmentConfig(
        intensity_scale=0, intensity_shift=0, noise_std=0, gamma_range=(1, 1), flip_axes=(0, 1, 2), probability=1
    )
    out_image, out_label = augment(image, label, np.random.default_rng(3), config)
    assert np.array_equal(out_image > 0.5, out_label)
    assert sorted(out_image.ravel().tolist()) == pytest.approx(sorted(image.ravel().tolist()))


def test_intensity_augmentation_keeps_labels_and_range() -> None:
    image = np.linspace(0, 1, 512, dtype=np.float32).reshape(8, 8, 8)
    label = (image > 0.5).astype(np.uint8)
    config = AugmentConfig(noise_std=0.0, probability=1.0)
    out_image, out_label = augment(image, label, np.random.default_rng(4), config)
    assert np.array_equal(out_label, label)
    assert out_image.min() >= 0.0 and out_image.max() <= 1.0
    assert np.all(np.diff(out_image.ravel()) >= 0)  # scale, shift and gamma keep the order


def test_batch_layout_and_targets() -> None:
    images, labels, targets = make_batch([_case()], 3, (8, 8, 16), np.random.default_rng(5), 0.5, None)
    assert images.shape == (3, 1, 8, 8, 16) and images.dtype == np.float32
    assert labels.shape == (3, 1, 8, 8, 16) and labels.dtype == np.int64
    assert targets.tolist() == [0.25, 0.25, 0.25]


def test_mismatched_case_is_refused() -> None:
    with pytest.raises(ValueError, match="must be equal 3D shapes"):
        PreparedCase("x", np.zeros((4, 4, 4), np.float32), np.zeros((4, 4, 5), np.uint8))


def _two_lesion_case() -> PreparedCase:
    """A 1000-voxel lesion and a 1-voxel lesion far apart in a 40^3 case."""
    image = np.zeros((40, 40, 40), np.float32)
    label = np.zeros((40, 40, 40), np.uint8)
    label[2:12, 2:12, 2:12] = 2
    label[35, 35, 35] = 2
    return PreparedCase("two", image, label)


def _centred_on_small(case: PreparedCase, draws: int) -> int:
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(draws):
        _, label = sample_patch(case, (8, 8, 8), rng, 1.0)
        # An 8^3 patch holding the single voxel was centred (within its quarter-patch jitter) on it.
        hits += int(label.sum() == 2)
    return hits


def test_lesion_sampling_draws_small_lesions_as_often_as_large_ones() -> None:
    by_voxel = with_foreground(_two_lesion_case(), 2)
    by_lesion = with_foreground(_two_lesion_case(), 2, by_lesion=True)
    assert len(by_voxel.foreground_lesion) == 0
    assert sorted(np.unique(by_lesion.foreground_lesion).tolist()) == [1, 2]
    # Voxel sampling: 1 chance in 1001 per patch; lesion sampling: 1 in 2.
    assert _centred_on_small(by_voxel, 400) <= 3
    assert 160 <= _centred_on_small(by_lesion, 400) <= 240


def test_foreground_sampling_is_checked() -> None:
    from SmoothSegNetLib.training.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="field foreground_sampling must be voxel or lesion, got 'pixel'"):
        config_from_dict({"stage": "tumor", "foreground_sampling": "pixel"}, source="t.json")
    assert config_from_dict({"stage": "tumor", "foreground_sampling": "lesion"}).foreground_sampling == "lesion"
