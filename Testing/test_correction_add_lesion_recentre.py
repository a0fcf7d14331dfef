"""``add-lesion`` clicked off the lesion's centre, as users click: the search re-centres (``recentre``).

The synthetic CTs of ``test_correction_add_lesion_rim_fit.py`` (liver at 100 HU, 0.8 x 0.8 x 3.0 mm voxels,
lesions drawn as the voxels whose centres lie within their radius, 1 mm blur, 15 HU noise, fixed seeds): a
hypodense ball (40 HU under the liver) and the rim-enhancing lesion whose core has the liver's value, both 8 mm in
radius, centred at voxel (20, 60, 60). Clicks 4 mm off the centre in the axial plane (half the radius: 5 voxels
along i or j). Without re-centring the search measures the lesion from the click: a ball around the click that
hangs over the lesion's edge (Dice 0.56-0.65), or nothing. The search runs on the crop itself with a tumor
probability of zero (the network does not see these lesions); the whole click is checked once with the real network.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
from _add_lesion_helpers import load_report, write_case_folder
from conftest import run_cli
from test_correction_add_lesion_rim_fit import (
    CENTRE_KJI,
    LIVER_HU,
    SHAPE_KJI,
    SPACING_KJI,
    _ct,
    _distance_mm,
    _rim_lesion,
)

from SmoothSegNetLib.correction.add_lesion import PointSegmenter
from SmoothSegNetLib.correction.recentre import blob_centre, equivalent_radius_mm, mean_shift_centre
from SmoothSegNetLib.correction.search import Crop, Found, find_lesion
from SmoothSegNetLib.correction.settings import AddLesionSettings, default_settings
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.evaluation.add_lesion_eval import dice
from SmoothSegNetLib.report.inputs import read_labelmap
from SmoothSegNetLib.volume import CTVolume, Geometry

TRUTH = _distance_mm() <= 8.0
#: Half the radius (4 mm = 5 voxels of 0.8 mm) off the centre, along +i and -j.
OFF_CENTRE = [(20, 60, 65), (20, 55, 60)]
ON = default_settings()
OFF = replace(ON, recentre=False)


def _hypodense(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return _ct(np.where(TRUTH, LIVER_HU - 40.0, LIVER_HU), seed)


def _search(
    hu: np.ndarray, liver: np.ndarray, settings: AddLesionSettings, voxel: tuple[int, int, int]
) -> Found | None:
    return find_lesion(Crop(hu, np.zeros(hu.shape, np.float32), liver, voxel, SPACING_KJI), settings)


def test_the_bundled_settings_recentre() -> None:
    assert ON.recentre and ON.recentre_min_shift == 0.5


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("voxel", OFF_CENTRE)
def test_a_hypodense_lesion_clicked_off_centre_is_found_as_from_its_centre(
    seed: int, voxel: tuple[int, int, int]
) -> None:
    hu, liver = _hypodense(seed)
    from_click = _search(hu, liver, OFF, voxel)
    assert from_click is not None and dice(from_click.mask, TRUTH) < 0.65  # a ball around the click
    centred = _search(hu, liver, ON, CENTRE_KJI)
    found = _search(hu, liver, ON, voxel)
    assert centred is not None and found is not None and found.method == "region_growing"
    assert np.array_equal(found.mask, centred.mask) and dice(found.mask, TRUTH) >= 0.88
    assert found.mask[voxel]


@pytest.mark.parametrize(("seed", "voxel"), [(0, (20, 55, 60)), (3, (20, 60, 65))])
def test_a_rim_lesion_refused_off_centre_is_found_through_the_blob_and_the_mean_shift(
    seed: int, voxel: tuple[int, int, int]
) -> None:
    """Nothing is found at the click. The strongest blob reaching it is a bright piece of the ring: grown from
    there, it holds the click but is a fragment. The mean shift of its bright voxels goes round the ring to the
    centre, where the ring fits the whole lesion."""
    hu, liver = _ct(_rim_lesion(), seed)
    assert _search(hu, liver, OFF, voxel) is None
    centre = blob_centre(hu, liver, voxel, SPACING_KJI)
    assert centre is not None
    piece = _search(hu, liver, OFF, centre)
    assert piece is not None and piece.contrast_hu > 0 and piece.mask[voxel] and dice(piece.mask, TRUTH) < 0.4
    found = _search(hu, liver, ON, voxel)
    assert found is not None and found.method == "rim_fit" and dice(found.mask, TRUTH) >= 0.9


@pytest.mark.parametrize("voxel", OFF_CENTRE)
def test_a_rim_lesion_grown_off_centre_is_fitted_from_the_mean_shift_centre(voxel: tuple[int, int, int]) -> None:
    """Growing from the click finds part of the ring (Dice 0.63); the mean shift of its lesion-like voxels leads to
    the centre, where the ring fits the whole lesion."""
    hu, liver = _ct(_rim_lesion(), 1)
    grown = _search(hu, liver, OFF, voxel)
    assert grown is not None and grown.method == "region_growing" and dice(grown.mask, TRUTH) < 0.7
    radius = equivalent_radius_mm(grown.mask, SPACING_KJI)
    centre = mean_shift_centre(hu, liver, radius, grown.contrast_hu, voxel, SPACING_KJI, ON.smoothing_mm)
    assert np.abs(np.subtract(centre, CENTRE_KJI)).max() <= 1
    found = _search(hu, liver, ON, voxel)
    assert found is not None and found.method == "rim_fit" and dice(found.mask, TRUTH) >= 0.95


@pytest.mark.parametrize("seed", range(3))
def test_a_click_at_the_centre_keeps_its_own_lesion(seed: int) -> None:
    for hu, liver in (_hypodense(seed), _ct(_rim_lesion(), seed)):
        with_recentring, without = _search(hu, liver, ON, CENTRE_KJI), _search(hu, liver, OFF, CENTRE_KJI)
        assert with_recentring is not None and without is not None
        assert np.array_equal(with_recentring.mask, without.mask)


@pytest.mark.parametrize("seed", range(3))
def test_a_click_beside_a_lesion_does_not_take_it(seed: int) -> None:
    """Clicked on liver 3 mm outside the hypodense lesion's edge (11 mm from its centre along j): the lesion is
    the nearest blob, but it does not hold the click, so it is not added."""
    hu, liver = _hypodense(seed)
    voxel = (20, 60 + round(11.0 / 0.8), 60)
    found = _search(hu, liver, ON, voxel)
    assert found is None or (found.mask[voxel] and dice(found.mask, TRUTH) < 0.3)


@pytest.mark.parametrize("seed", range(4))
def test_uniform_noisy_liver_is_still_not_a_lesion(seed: int) -> None:
    hu, liver = _ct(np.full(SHAPE_KJI, LIVER_HU), seed)
    for voxel in (CENTRE_KJI, (12, 40, 80), (28, 85, 40), (20, 55, 60)):
        assert _search(hu, liver, ON, voxel) is None


def test_recentring_is_the_same_on_a_reflected_grid() -> None:
    """Mirrored along k and i with the click: the lesion found is the mirror of the first."""
    hu, liver = _hypodense(2)
    found = _search(hu, liver, ON, (20, 60, 65))
    flip = (slice(None, None, -1), slice(None), slice(None, None, -1))
    mirrored_voxel = (SHAPE_KJI[0] - 1 - 20, 60, SHAPE_KJI[2] - 1 - 65)
    mirrored = _search(hu[flip].copy(), liver[flip].copy(), ON, mirrored_voxel)
    assert found is not None and mirrored is not None
    assert np.array_equal(mirrored.mask, found.mask[flip]) and dice(found.mask, TRUTH) >= 0.88


def test_the_whole_click_off_centre_with_the_real_network() -> None:
    """Through :class:`PointSegmenter` (bundled tumor network, one CPU thread) at a point 4 mm off the hypodense
    lesion's centre, in LPS millimetres: the lesion added is the one a centre click adds."""
    hu, liver = _hypodense(1)
    geometry = Geometry.create(SHAPE_KJI, tuple(SPACING_KJI[::-1]), (-48.0, -48.0, -60.0))
    ct = CTVolume(hu.astype(np.int16), geometry)
    labels, lesions = liver.astype(np.uint8), np.zeros(SHAPE_KJI, np.uint16)
    segmenter = PointSegmenter("smoothsegnet-demo-tumor", threads=1)
    masks = []
    for voxel in (CENTRE_KJI, (20, 60, 65)):
        point = tuple(float(v) for v in geometry.index_to_lps(np.asarray(voxel, dtype=float)[::-1]))
        added = segmenter(ct, labels, lesions, point)  # type: ignore[arg-type]
        mask = np.zeros(SHAPE_KJI, bool)
        mask[added.box] = added.mask
        masks.append(mask)
    assert np.array_equal(masks[0], masks[1]) and dice(masks[1], TRUTH) >= 0.85


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [("recentre", "yes", "true or false"), ("recentre_min_shift", -0.5, "a finite number >= 0")],
)
def test_bad_recentre_settings_are_refused(name: str, value: object, rule: str) -> None:
    with pytest.raises(InputError, match=rf"{name} must be {re.escape(rule)}"):
        AddLesionSettings.from_dict({name: value})


@pytest.mark.parametrize("seed", range(3))
def test_a_click_near_the_centre_within_the_dead_zone_keeps_its_own_lesion(seed: int) -> None:
    """Clicked 1.6 mm (2 voxels) off the hypodense lesion's centre: the mean shift finds the centre, but it lies
    under half the lesion's radius away (``recentre_min_shift``), so the click's own lesion stays; with no dead
    zone the lesion is searched again from the centre."""
    hu, liver = _hypodense(seed)
    voxel = (20, 62, 60)
    own, centred = _search(hu, liver, OFF, voxel), _search(hu, liver, ON, CENTRE_KJI)
    assert own is not None and centred is not None and not np.array_equal(own.mask, centred.mask)
    kept = _search(hu, liver, ON, voxel)
    assert kept is not None and np.array_equal(kept.mask, own.mask)
    moved = _search(hu, liver, replace(ON, recentre_min_shift=0.0), voxel)
    assert moved is not None and np.array_equal(moved.mask, centred.mask)


def test_a_lesion_found_from_another_centre_must_hold_the_click(monkeypatch: pytest.MonkeyPatch) -> None:
    """The blob detector replaced (the only stand-in here) by one that points at the hypodense lesion from a click
    on plain liver 15 mm away: the lesion found there does not hold the click, so nothing is added."""
    from SmoothSegNetLib.correction import search

    hu, liver = _hypodense(0)
    voxel = (20, 60, 60 + 19)
    assert _search(hu, liver, OFF, voxel) is None
    assert _search(hu, liver, OFF, CENTRE_KJI) is not None
    monkeypatch.setattr(search, "blob_centre", lambda *_args: CENTRE_KJI)
    assert _search(hu, liver, ON, voxel) is None


@pytest.mark.parametrize("seed", range(3))
def test_a_large_lesion_is_followed_on_sampled_voxels(seed: int) -> None:
    """A hypodense ball of 20 mm radius clicked 9.6 mm off its centre: the mean shift samples every third voxel
    in-plane (20 / 8 / 0.8 mm) and still lands on the centre voxel; the lesion found is the centre click's."""
    big = _distance_mm() <= 20.0
    hu, liver = _ct(np.where(big, LIVER_HU - 40.0, LIVER_HU), seed)
    voxel = (20, 60, 72)
    grown = _search(hu, liver, OFF, voxel)
    assert grown is not None and dice(grown.mask, big) < 0.65
    radius = equivalent_radius_mm(grown.mask, SPACING_KJI)
    assert mean_shift_centre(hu, liver, radius, grown.contrast_hu, voxel, SPACING_KJI, 1.5) == CENTRE_KJI
    found, centred = _search(hu, liver, ON, voxel), _search(hu, liver, ON, CENTRE_KJI)
    assert found is not None and centred is not None and np.array_equal(found.mask, centred.mask)
    assert dice(found.mask, big) >= 0.95


def test_the_command_line_records_where_the_search_started(tmp_path: Path) -> None:
    """``smoothsegnet add-lesion`` clicked 4 mm off the hypodense lesion's centre: the lesion is added, the line says
    it was re-centred, and report.json's correction records the click and, in ``searched_from_lps_mm``, the centre
    voxel the search started from (schema-valid); a second folder clicked at the centre records null there."""
    hu, liver = _hypodense(1)
    geometry = Geometry.create(SHAPE_KJI, tuple(SPACING_KJI[::-1]), (-48.0, -48.0, -60.0))
    labels, lesions = liver.astype(np.uint8), np.zeros(SHAPE_KJI, np.uint16)
    phantom = SimpleNamespace(ct=CTVolume(hu.astype(np.int16), geometry))
    schema = json.loads(
        (Path(__file__).resolve().parents[1] / "SmoothSegNetLib/schemas/report.schema.json").read_text()
    )
    centre_lps = geometry.index_to_lps(np.asarray(CENTRE_KJI, dtype=float)[::-1])
    for name, voxel, recentred in (("off", (20, 60, 65), True), ("centre", CENTRE_KJI, False)):
        out = write_case_folder(tmp_path / name, phantom, labels, lesions)  # type: ignore[arg-type]
        point = geometry.index_to_lps(np.asarray(voxel, dtype=float)[::-1])
        result = run_cli("add-lesion", str(out), "--at=" + ",".join(f"{v:.3f}" for v in point))
        assert result.returncode == 0, result.stderr
        assert ("re-centred" in result.stdout) == recentred
        report = load_report(out)
        jsonschema.validate(report, schema)
        correction = report["corrections"][-1]
        assert correction["at_lps_mm"] == pytest.approx(list(point), abs=1e-3)
        if recentred:
            assert correction["searched_from_lps_mm"] == pytest.approx(list(centre_lps), abs=1e-3)
        else:
            assert correction["searched_from_lps_mm"] is None
        written, _geometry = read_labelmap(out / "lesions.nrrd", "lesions.nrrd")
        assert dice(written == 1, TRUTH) >= 0.85
