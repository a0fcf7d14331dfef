"""Registration of a follow-up to the baseline on the liver, checked at landmarks of a known phantom motion."""

from __future__ import annotations

import numpy as np
import pytest

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.followup.registration import RegistrationOptions, inverse_points, register_liver, warp_to
from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.phantom.followup import make_followup_phantom
from SmoothSegNetLib.phantom.motion import VisitTransform

GRID = ((96, 96, 64), (4.0, 4.0, 4.0))


@pytest.fixture(scope="module")
def pair():
    return make_phantom(1, *GRID, phase="arterial"), make_followup_phantom(1, 1, *GRID, phase="arterial")


@pytest.fixture(scope="module")
def registered(pair):
    base, fu = pair
    return register_liver(base.labels, base.ct.geometry, fu.labels, fu.ct.geometry)


def _landmarks(fu, count: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Follow-up liver voxel centres and where the phantom's true motion puts them in the baseline."""
    transform = VisitTransform.from_dict(fu.clinical["ground_truth"]["followup"]["transform"])
    k, j, i = np.nonzero(fu.labels == 1)
    pick = np.random.default_rng(0).choice(len(k), count, replace=False)
    q = fu.ct.geometry.index_to_lps(np.stack([i[pick], j[pick], k[pick]], axis=1))
    return q, transform(q)


def test_registration_recovers_the_known_motion_at_landmarks(pair, registered) -> None:
    _, fu = pair
    q, p = _landmarks(fu)
    error = np.linalg.norm(registered.map_points(p) - q, axis=1)
    untouched = np.linalg.norm(p - q, axis=1)
    assert untouched.mean() > 8.0  # the motion is large enough for the test to mean something
    assert error.mean() < 2.0 and error.max() < 4.0  # within one 4 mm voxel
    assert registered.method == "rigid+affine+bspline"
    assert registered.dice["final"] >= registered.dice["affine"] > 0.95


def test_entry_gives_the_affine_as_a_baseline_to_followup_matrix(pair, registered) -> None:
    _, fu = pair
    entry = registered.as_dict("transforms/visit_1.tfm")
    h = np.asarray(entry["affine_lps"])
    _, p = _landmarks(fu, 50)
    by_matrix = p @ h[:3, :3].T + h[:3, 3]
    by_itk = np.array([registered.affine.TransformPoint(tuple(x)) for x in p])
    assert np.allclose(by_matrix, by_itk, atol=1e-3)
    assert entry["liver_dice"] == round(registered.dice["final"], 4) and entry["bspline_mesh_size"]


def test_warped_followup_liver_lies_on_the_baseline_liver(pair, registered) -> None:
    base, fu = pair
    warped = warp_to(fu.labels, fu.ct.geometry, base.ct.geometry, registered.transform, nearest=True)
    a, b = np.isin(base.labels, (1, 2)), np.isin(warped, (1, 2))
    assert 2 * np.sum(a & b) / (a.sum() + b.sum()) == pytest.approx(registered.dice["final"], abs=1e-9)


def test_unregistrable_liver_is_an_input_error(pair) -> None:
    base, _ = pair
    blob = np.zeros_like(base.labels)
    blob[30:34, 40:44, 40:44] = 1  # a 4-voxel cube cannot be made to overlap a whole liver
    with pytest.raises(InputError, match=r"liver Dice after registration .* under the floor 0.80"):
        register_liver(base.labels, base.ct.geometry, blob, base.ct.geometry, RegistrationOptions(deformable=False))


def test_missing_liver_is_an_input_error(pair) -> None:
    base, _ = pair
    with pytest.raises(InputError, match="follow-up labelmap has no liver"):
        register_liver(base.labels, base.ct.geometry, np.zeros_like(base.labels), base.ct.geometry)


def test_oblique_baseline_and_anisotropic_followup_grids() -> None:
    """Grids differ (oblique 4 mm baseline, 5 x 5.5 x 6.5 mm follow-up): all in LPS, the motion is still found."""
    base = make_phantom(1, *GRID, oblique=True, phase="arterial")
    fu = make_followup_phantom(1, 1, (72, 64, 40), (5.0, 5.5, 6.5), phase="arterial")
    reg = register_liver(base.labels, base.ct.geometry, fu.labels, fu.ct.geometry)
    q, p = _landmarks(fu)
    error = np.linalg.norm(reg.map_points(p) - q, axis=1)
    assert error.mean() < 2.5 and error.max() < 6.5  # within one follow-up voxel
    back = inverse_points(reg, q)
    assert np.abs(reg.map_points(back) - q).max() < 1e-3
    assert np.linalg.norm(back - p, axis=1).mean() < 2.5
