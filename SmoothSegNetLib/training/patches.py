"""Training patches: random crops with foreground over-sampling, and random augmentation.

Arrays here are on the network grid, indexed ``[i, j, k]`` (network axes, as the tensors fed to the
network ``[B, C, i, j, k]``); images are windowed to [0, 1], labels hold class indices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from SmoothSegNetLib.training.config import AugmentConfig


@dataclass(frozen=True)
class PreparedCase:
    """One training case on its network grid.

    Attributes:
        case_id: patient / phantom identifier (splits are by this id).
        image: float32 ``[i, j, k]`` windowed to [0, 1].
        label: uint8 ``[i, j, k]`` class indices of the stage (liver stage: 0, 1; tumor stage: 0, 1, 2).
        tlvr_target: the clinical (predicted) TLVR of the case, NaN when unknown.
        tlvr_true: the TLVR of the reference labels (for reports only).
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    tlvr_target: float = math.nan
    tlvr_true: float = math.nan
    foreground: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int32), repr=False)
    foreground_lesion: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32), repr=False)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape != self.label.shape:
            raise ValueError(
                f"case {self.case_id}: image {self.image.shape} and label {self.label.shape} must be equal 3D shapes"
            )


def with_foreground(
    case: PreparedCase, foreground_class: int, max_points: int = 20000, seed: int = 0, by_lesion: bool = False
) -> PreparedCase:
    """A copy of ``case`` remembering (a random subset of) the ``[i, j, k]`` indices of ``foreground_class``.

    With ``by_lesion`` each point also remembers its 26-connected component (lesion), and
    :func:`sample_patch` then picks a lesion uniformly before a voxel in it, so a 1 ml lesion is centred as
    often as a 500 ml one (by voxel, small lesions are almost never drawn).
    """
    mask = case.label == foreground_class
    points = np.argwhere(mask).astype(np.int32)
    if len(points) > max_points:
        rng = np.random.default_rng(seed)
        points = points[rng.choice(len(points), size=max_points, replace=False)]
    lesion = np.zeros(0, dtype=np.int32)
    if by_lesion and len(points):
        components, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
        lesion = components[points[:, 0], points[:, 1], points[:, 2]].astype(np.int32)
    return PreparedCase(case.case_id, case.image, case.label, case.tlvr_target, case.tlvr_true, points, lesion)


def _crop_start(size: int, patch: int, centre: int | None, rng: np.random.Generator) -> int:
    if size <= patch:
        return 0
    if centre is None:
        return int(rng.integers(0, size - patch + 1))
    jitter = int(rng.integers(-patch // 4, patch // 4 + 1))
    return int(np.clip(centre - patch // 2 + jitter, 0, size - patch))


def sample_patch(
    case: PreparedCase,
    patch_size_ijk: tuple[int, int, int],
    rng: np.random.Generator,
    foreground_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``patch_size_ijk`` crop of ``case`` (zero-padded where the case is smaller).

    With probability ``foreground_fraction`` (and if the case has foreground points) the patch is centred,
    with a jitter of a quarter patch, on a random foreground voxel (of a uniformly drawn lesion when the case
    remembers lesions, see :func:`with_foreground`); otherwise its position is uniform.

    Returns:
        ``(image, label)`` of shape ``patch_size_ijk``.
    """
    centre: np.ndarray | None = None
    if len(case.foreground) and rng.random() < foreground_fraction:
        if len(case.foreground_lesion):
            lesions = np.unique(case.foreground_lesion)
            chosen = lesions[int(rng.integers(0, len(lesions)))]
            candidates = np.flatnonzero(case.foreground_lesion == chosen)
            centre = case.foreground[int(candidates[int(rng.integers(0, len(candidates)))])]
        else:
            centre = case.foreground[int(rng.integers(0, len(case.foreground)))]
    starts = [
        _crop_start(case.image.shape[a], patch_size_ijk[a], None if centre is None else int(centre[a]), rng)
        for a in range(3)
    ]
    window = tuple(slice(s, s + p) for s, p in zip(starts, patch_size_ijk))
    image = np.zeros(patch_size_ijk, dtype=np.float32)
    label = np.zeros(patch_size_ijk, dtype=np.uint8)
    crop_image = case.image[window]
    crop_label = case.label[window]
    inner = tuple(slice(0, n) for n in crop_image.shape)
    image[inner] = crop_image
    label[inner] = crop_label
    return image, label


def augment(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Random flips (``config.flip_axes``), then intensity scale/shift, gamma and Gaussian noise.

    With probability ``1 - config.probability`` the patch is returned unchanged. Intensities stay in [0, 1]
    before the noise is added (the network saw clipped windows at inference).
    """
    if rng.random() >= config.probability:
        return image, label
    for axis in config.flip_axes:
        if rng.random() < 0.5:
            image = np.flip(image, axis)
            label = np.flip(label, axis)
    scale = 1.0 + rng.uniform(-config.intensity_scale, config.intensity_scale)
    shift = rng.uniform(-config.intensity_shift, config.intensity_shift)
    out = np.clip(image * scale + shift, 0.0, 1.0)
    low, high = config.gamma_range
    if high > low:
        out = out ** np.float32(math.exp(rng.uniform(math.log(low), math.log(high))))
    if config.noise_std > 0:
        out = out + rng.normal(0.0, rng.uniform(0.0, config.noise_std), size=out.shape).astype(np.float32)
    return np.ascontiguousarray(out, dtype=np.float32), np.ascontiguousarray(label)


def make_batch(
    cases: list[PreparedCase],
    batch_size: int,
    patch_size_ijk: tuple[int, int, int],
    rng: np.random.Generator,
    foreground_fraction: float,
    augment_config: AugmentConfig | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch: images ``[B, 1, i, j, k]`` float32, labels ``[B, 1, i, j, k]`` int64, TLVR targets ``[B]``."""
    images, labels, targets = [], [], []
    for _ in range(batch_size):
        case = cases[int(rng.integers(0, len(cases)))]
        image, label = sample_patch(case, patch_size_ijk, rng, foreground_fraction)
        if augment_config is not None:
            image, label = augment(image, label, rng, augment_config)
        images.append(image[None])
        labels.append(label[None].astype(np.int64))
        targets.append(case.tlvr_target)
    return np.stack(images), np.stack(labels), np.asarray(targets, dtype=np.float32)


def whole_case_batch(
    cases: list[PreparedCase], rng: np.random.Generator, augment_config: AugmentConfig | None, multiple: int = 16
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One whole random case (zero-padded to a multiple of ``multiple``), so its soft TLVR is the case's.

    Returns the same layout as :func:`make_batch` with a batch of one.
    """
    case = cases[int(rng.integers(0, len(cases)))]
    shape = tuple(int(math.ceil(n / multiple) * multiple) for n in case.image.shape)
    image = np.zeros(shape, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    inner = tuple(slice(0, n) for n in case.image.shape)
    image[inner] = case.image
    label[inner] = case.label
    if augment_config is not None:
        image, label = augment(image, label, rng, augment_config)
    return image[None, None], label[None, None].astype(np.int64), np.asarray([case.tlvr_target], dtype=np.float32)
