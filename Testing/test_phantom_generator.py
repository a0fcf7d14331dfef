"""Synthetic phantoms: determinism, geometry in physical millimetres, label semantics, HU, lesions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.phantom import Phantom, make_phantom, phantom_geometry
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE, T, load_table
from SmoothSegNetLib.volume import Geometry

SMALL = ((48, 48, 32), (8.0, 8.0, 8.0))


def _centroid_lps(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    k, j, i = np.nonzero(mask)
    return np.asarray(geometry.index_to_lps(np.stack([i, j, k], axis=1)).mean(axis=0))


def _volume_ml(mask: np.ndarray, geometry: Geometry) -> float:
    return float(mask.sum()) * geometry.voxel_volume_mm3 / 1000.0


def _liver(p: Phantom) -> np.ndarray:
    return (p.labels == 1) | (p.labels == 2)


def _assert_liver_inside_fov(p: Phantom) -> None:
    liver = _liver(p)
    for axis in range(3):
        assert not np.take(liver, 0, axis=axis).any() and not np.take(liver, -1, axis=axis).any(), "liver cut by FOV"


def test_same_seed_same_arrays_and_record() -> None:
    a = make_phantom(7, *SMALL)
    b = make_phantom(7, *SMALL)
    assert np.array_equal(a.ct.array, b.ct.array)
    assert np.array_equal(a.labels, b.labels)
    assert a.clinical == b.clinical
    assert a.lesions == b.lesions
    assert a.ct.geometry == b.ct.geometry


def test_different_seed_different_phantom() -> None:
    a = make_phantom(7, *SMALL)
    b = make_phantom(8, *SMALL)
    assert not np.array_equal(a.ct.array, b.ct.array)
    assert not np.array_equal(a.labels, b.labels)
    assert a.clinical["TCIA_ID"] != b.clinical["TCIA_ID"]


def test_output_types_and_grid() -> None:
    p = make_phantom(3, (40, 36, 20), (9.0, 10.0, 10.0))
    assert p.ct.array.dtype == np.int16 and p.labels.dtype == np.uint8
    assert p.ct.array.shape == p.labels.shape == (20, 36, 40)
    assert p.ct.geometry.spacing_mm == (9.0, 10.0, 10.0)
    assert set(np.unique(p.labels)) <= {0, 1, 2, 3, 4}
    assert {1, 4} <= set(np.unique(p.labels))


@pytest.mark.parametrize("seed", [2, 5])
def test_same_patient_on_different_grids(seed: int) -> None:
    """2 mm-ish, 3 mm and an oblique 4 mm grid show the same liver (volume, LPS centroid)."""
    grids = [
        phantom_geometry(seed, (160, 136, 100), (2.5, 2.5, 2.5)),
        phantom_geometry(seed, (136, 116, 84), (3.0, 3.0, 3.0)),
        phantom_geometry(seed, (112, 112, 80), (4.0, 4.0, 4.0), oblique=True),
    ]
    assert not np.allclose(np.abs(grids[2].direction_array), np.eye(3), atol=0.05)
    phantoms = [make_phantom(seed, geometry=g) for g in grids]
    volumes = []
    centroids = []
    for p in phantoms:
        _assert_liver_inside_fov(p)
        volumes.append(_volume_ml(_liver(p), p.ct.geometry))
        centroids.append(_centroid_lps(_liver(p), p.ct.geometry))
    assert 800 < volumes[0] < 2500
    for v, c in zip(volumes[1:], centroids[1:]):
        assert abs(v - volumes[0]) / volumes[0] < 0.03
        assert np.linalg.norm(c - centroids[0]) < 2.0
    assert [les.center_lps_mm for les in phantoms[0].lesions] == [les.center_lps_mm for les in phantoms[2].lesions]


def test_liver_is_on_the_patient_right_anterior_of_the_spine_aorta_left() -> None:
    """LPS: patient right is -x, anterior is -y. Checked relative to the body, spine and aorta."""
    p = make_phantom(4, (96, 96, 64), (4.0, 4.0, 4.0))
    g = p.ct.geometry
    body = _centroid_lps(p.ct.array > -500, g)
    liver = _centroid_lps(_liver(p), g)
    spine = _centroid_lps(p.tissues == T.BONE_CANCELLOUS, g)
    aorta = _centroid_lps(p.labels == 4, g)
    assert liver[0] < body[0] - 30.0
    assert liver[0] < 0.0  # the scanner offset of the phantom never moves the liver across x = 0
    assert liver[1] < spine[1]
    assert aorta[0] > spine[0] and aorta[1] < spine[1]
    # Superior is +z: the lungs lie above the liver.
    lungs = _centroid_lps(p.tissues == T.LUNG, g)
    assert lungs[2] > liver[2] + 30.0


def test_label_semantics() -> None:
    p = make_phantom(5, (96, 96, 64), (4.0, 4.0, 4.0))
    liver_all = np.isin(p.labels, (1, 2, 3))
    k, j, i = np.nonzero(_liver(p))
    box = (slice(k.min(), k.max() + 1), slice(j.min(), j.max() + 1), slice(i.min(), i.max() + 1))
    inside_box = np.zeros_like(liver_all)
    inside_box[box] = True
    tumor = p.labels == 2
    assert tumor.any()
    assert not (tumor & ~inside_box).any()
    # Every tumor component borders liver (it was carved out of the liver, never painted over fat).
    components, n = ndimage.label(tumor)
    for c in range(1, n + 1):
        ring = ndimage.binary_dilation(components == c) & ~tumor
        assert (p.labels[ring] == 1).any()
    portal = p.labels == 3
    assert portal.any() and not (portal & ~inside_box).any()
    # The liver is one piece.
    parts, _ = ndimage.label(_liver(p))
    sizes = np.bincount(parts.ravel())[1:]
    assert sizes.max() / sizes.sum() > 0.97
    # Lesion tissue ids map to label 2, and only they do.
    assert np.array_equal(p.tissues >= LESION_TISSUE_BASE, tumor)


def test_lesion_centres_are_tumor_voxels() -> None:
    """Ground-truth centres (LPS) land on tumor voxels: the geometry of the truth matches the labels."""
    checked = 0
    for seed in (5, 11, 14):
        p = make_phantom(seed, (128, 128, 96), (3.0, 3.0, 3.0))
        for lesion in p.lesions:
            if min(lesion.diameters_mm) < 2.5 * 3.0 or lesion.volume_ml == 0:
                continue
            i, j, k = np.rint(p.ct.geometry.lps_to_index(lesion.center_lps_mm)).astype(int)
            assert p.labels[k, j, i] == 2
            checked += 1
    assert checked >= 3


def _eroded(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_erosion(mask, iterations=2)


@pytest.mark.parametrize("phase", ["non_contrast", "arterial", "portal_venous"])
def test_hu_per_tissue_in_table_ranges(phase: str) -> None:
    p = make_phantom(9, (96, 96, 64), (4.0, 4.0, 4.0), phase=phase)
    assert p.info["phase"] == phase
    table = {t["id"]: t for t in load_table()["tissues"]}
    tested = set()
    for tissue_id, spec in table.items():
        core = _eroded(p.tissues == tissue_id)
        if core.sum() < 100 or tissue_id == T.LIVER:
            continue
        lo, hi = spec["hu"][phase]
        mean = float(p.ct.array[core].mean())
        assert lo - 15 <= mean <= hi + 15, (spec["name"], mean, (lo, hi))
        tested.add(spec["name"])
    assert {"fat_subcutaneous", "muscle", "air"} <= tested
    liver = _eroded(p.tissues == T.LIVER)
    assert abs(float(p.ct.array[liver].mean()) - p.info["liver_hu"]) < 6.0
    lo, hi = table[T.LIVER]["hu"][phase]
    assert lo - 45 <= p.info["liver_hu"] <= hi


def test_noise_matches_the_drawn_sigma() -> None:
    p = make_phantom(12, (96, 96, 64), (4.0, 4.0, 4.0))
    air = _eroded(p.tissues == T.AIR)
    assert air.sum() > 10_000
    std = float(p.ct.array[air].std())
    assert abs(std - p.info["noise_sigma_hu"]) / p.info["noise_sigma_hu"] < 0.15


def test_lesion_contrast_follows_kind() -> None:
    seen = set()
    for seed in range(20, 34):
        p = make_phantom(seed, (64, 64, 48), (6.0, 6.0, 6.0))
        liver = _eroded(p.tissues == T.LIVER)
        if not liver.any():
            continue
        liver_mean = float(p.ct.array[liver].mean())
        for n, lesion in enumerate(p.lesions):
            core = ndimage.binary_erosion(p.tissues == LESION_TISSUE_BASE + n)
            if core.sum() < 20 or lesion.kind == "rim_enhancing":
                continue
            diff = float(p.ct.array[core].mean()) - liver_mean
            assert np.sign(diff) == np.sign(lesion.delta_hu) and abs(diff) > 12.0, (seed, lesion, diff)
            seen.add(lesion.kind)
    assert seen == {"hypodense", "hyperdense"}


def test_lesion_count_and_size_ranges() -> None:
    counts = []
    longest = []
    for seed in range(40):
        p = make_phantom(seed, (16, 16, 16), (10.0, 10.0, 10.0))
        counts.append(len(p.lesions))
        longest += [lesion.diameters_mm[0] for lesion in p.lesions]
        for lesion in p.lesions:
            assert list(lesion.diameters_mm) == sorted(lesion.diameters_mm, reverse=True)
    assert 0 in counts and max(counts) >= 3
    assert 5.0 <= min(longest) and max(longest) <= 120.0
    assert max(longest) > 60.0 and min(longest) < 15.0


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 1, "size_ijk": (64, 64)}, "size"),
        ({"seed": 1, "size_ijk": (64, 4, 64)}, "size"),
        ({"seed": 1, "spacing_mm": (1.0, 0.0, 1.0)}, "spacing"),
        ({"seed": 1, "spacing_mm": (1.0, float("nan"), 1.0)}, "spacing"),
        ({"seed": 1, "spacing_mm": (50.0, 1.0, 1.0)}, "spacing"),
        ({"seed": 1, "phase": "delayed"}, "phase"),
    ],
)
def test_bad_options_raise_input_error(kwargs: dict, word: str) -> None:
    with pytest.raises(InputError, match=word):
        make_phantom(**kwargs)


def test_cysts_are_dark_but_keep_the_liver_label() -> None:
    p = make_phantom(1, (160, 140, 100), (2.5, 2.5, 2.5), phase="portal_venous")
    cyst = p.tissues == T.HEPATIC_CYST
    assert p.info["cysts"] == 2 and cyst.sum() > 20
    assert np.all(p.labels[cyst] == 1)
    assert float(p.ct.array[cyst].mean()) < p.info["liver_hu"] - 30.0


@pytest.mark.parametrize("seed", [1000, 1004, 1009])
def test_wall_lesion_meets_muscle_and_leaves_the_rest_of_the_patient_alone(seed: int) -> None:
    """``wall_lesion=True`` adds one lesion, last, whose voxels touch body-wall or paraspinal muscle; every other
    voxel keeps its tissue (the option draws from a stream of its own)."""
    grid = ((160, 160, 100), (2.4, 2.4, 3.0))
    plain = make_phantom(seed, *grid)
    wall = make_phantom(seed, *grid, wall_lesion=True)
    assert wall.lesions[:-1] == plain.lesions
    assert len(wall.lesions) == len(plain.lesions) + 1
    added = wall.tissues == LESION_TISSUE_BASE + len(plain.lesions)
    assert added.sum() > 0
    # Face-adjacent muscle: the lesion runs into muscle with no liver or fat between them.
    assert np.count_nonzero(ndimage.binary_dilation(added) & (wall.tissues == T.MUSCLE)) > 0
    # The lesion was painted over liver only, and nothing else changed.
    assert set(np.unique(plain.tissues[added])) <= {T.LIVER, T.HEPATIC_VEIN, T.PORTAL_VEIN}
    assert np.array_equal(wall.tissues[~added], plain.tissues[~added])


def test_training_renders_wall_lesions_for_the_configured_share_of_seeds_only() -> None:
    from SmoothSegNetLib.models.card import load_card
    from SmoothSegNetLib.training.config import DataConfig
    from SmoothSegNetLib.training.phantom_data import render_spec

    card = load_card(Path(__file__).parents[1] / "Resources/Models/smoothsegnet-demo-liver.json")
    seeds = range(1000, 1200)
    none = [render_spec(s, card, DataConfig()) for s in seeds]
    half = [render_spec(s, card, DataConfig(wall_lesion_fraction=0.5)) for s in seeds]
    assert not any(spec.wall_lesion for spec in none)
    assert 0.4 < np.mean([spec.wall_lesion for spec in half]) < 0.6

    # The rest of each seed's render (grid, obliquity) does not move with the option.
    def grid(specs: list) -> list:
        return [(s.size_ijk, s.spacing_mm, s.oblique) for s in specs]

    assert grid(none) == grid(half)
    # Which seeds get a wall lesion is independent of the tumor stage's liver-mask dilation (both drawn per seed:
    # from one stream, every wall-lesion case would see a mask grown by under half the range).
    from SmoothSegNetLib.training.prepare import mask_dilation_for

    wall = np.array([spec.wall_lesion for spec in half])
    grown = np.array([mask_dilation_for(s, (0.0, 8.0)) for s in seeds])
    assert abs(grown[wall].mean() - grown[~wall].mean()) < 1.0, (grown[wall].mean(), grown[~wall].mean())


@pytest.mark.parametrize("seed", [1000, 1003])
def test_small_lesions_are_added_last_and_leave_the_rest_of_the_patient_alone(seed: int) -> None:
    """``small_lesions=n`` adds up to n lesions of 5-20 mm after the seed's own; every other voxel keeps its
    tissue (a stream of its own), and the added ones are painted over liver and veins only."""
    grid = ((128, 128, 80), (3.0, 3.0, 3.75))
    plain = make_phantom(seed, *grid)
    more = make_phantom(seed, *grid, small_lesions=3)
    n = len(plain.lesions)
    assert more.lesions[:n] == plain.lesions
    assert len(more.lesions) == n + 3
    assert all(5.0 <= lesion.diameters_mm[0] <= 20.0 for lesion in more.lesions[n:])
    added = more.tissues >= LESION_TISSUE_BASE + n
    assert added.sum() > 0
    assert set(np.unique(plain.tissues[added])) <= {T.LIVER, T.HEPATIC_VEIN, T.PORTAL_VEIN}
    assert np.array_equal(more.tissues[~added], plain.tissues[~added])


def test_small_lesions_reach_the_liver_surface() -> None:
    """Small lesions are not kept deep inside the liver: across ten seeds (30 added lesions), at least five touch
    (face-adjacent) tissue that is neither liver, vein, cyst nor lesion (7 do)."""
    grid = ((128, 128, 80), (3.0, 3.0, 3.75))
    inner = {T.LIVER, T.HEPATIC_VEIN, T.PORTAL_VEIN, T.HEPATIC_CYST}
    at_surface = 0
    for seed in range(1000, 1010):
        plain_count = len(make_phantom(seed, *grid).lesions)
        p = make_phantom(seed, *grid, small_lesions=3)
        for n in range(plain_count, len(p.lesions)):
            lesion = p.tissues == LESION_TISSUE_BASE + n
            around = ndimage.binary_dilation(lesion) & ~lesion
            values = set(np.unique(p.tissues[around]).tolist())
            at_surface += any(v not in inner and v < LESION_TISSUE_BASE for v in values)
    assert at_surface >= 5


@pytest.mark.parametrize("bad", [-1, 21, 1.5, True])
def test_bad_small_lesion_counts_are_refused(bad: object) -> None:
    with pytest.raises(InputError, match=r"small_lesions must be an integer in \[0, 20\]"):
        make_phantom(1000, (64, 64, 40), (6.0, 6.0, 7.5), small_lesions=bad)  # type: ignore[arg-type]


def test_training_renders_the_configured_number_of_small_lesions() -> None:
    from SmoothSegNetLib.models.card import load_card
    from SmoothSegNetLib.training.config import DataConfig
    from SmoothSegNetLib.training.phantom_data import render_spec

    card = load_card(Path(__file__).parents[1] / "Resources/Models/smoothsegnet-demo-tumor.json")
    seeds = range(1000, 1200)
    none = [render_spec(s, card, DataConfig()) for s in seeds]
    some = [render_spec(s, card, DataConfig(small_lesions=(1, 3), wall_lesion_fraction=0.5)) for s in seeds]
    assert all(spec.small_lesions == 0 for spec in none)
    counts = np.array([spec.small_lesions for spec in some])
    assert set(counts.tolist()) == {1, 2, 3}
    # Drawn from a stream of its own: independent of the wall-lesion draw, and the grid does not move.
    wall = np.array([spec.wall_lesion for spec in some])
    assert abs(counts[wall].mean() - counts[~wall].mean()) < 0.3

    def grid(specs: list) -> list:
        return [(s.size_ijk, s.spacing_mm, s.oblique) for s in specs]

    assert grid(none) == grid(some)
