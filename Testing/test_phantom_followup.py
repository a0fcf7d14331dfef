"""``phantom --followup-of``: the same patient moved and breathing, lesions changed, and the truth it records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.phantom.followup import make_followup_phantom
from SmoothSegNetLib.phantom.motion import VisitTransform
from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE

GRID = ((96, 96, 64), (4.0, 4.0, 4.0))


def _centroid_lps(phantom, tissue: int) -> np.ndarray:
    k, j, i = np.nonzero(phantom.tissues == tissue)
    m = phantom.ct.geometry.ijk_to_lps()
    return np.mean(np.stack([i, j, k], 1) @ m[:3, :3].T + m[:3, 3], axis=0)


@pytest.fixture(scope="module")
def pair4():
    return make_phantom(4, *GRID, phase="arterial"), make_followup_phantom(4, 1, *GRID, phase="arterial")


def test_recorded_transform_maps_followup_anatomy_onto_the_baseline(pair4) -> None:
    base, fu = pair4
    transform = VisitTransform.from_dict(fu.clinical["ground_truth"]["followup"]["transform"])
    assert np.linalg.norm(transform.translation_mm) > 1.0  # the patient did move
    g = fu.ct.geometry
    k, j, i = np.nonzero(fu.labels == 1)
    m = g.ijk_to_lps()
    moved = transform(np.stack([i, j, k], 1) @ m[:3, :3].T + m[:3, 3])
    back = np.linalg.inv(base.ct.geometry.ijk_to_lps())
    ijk = np.rint(moved @ back[:3, :3].T + back[:3, 3]).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(g.size_ijk)), axis=1)
    hit = base.labels[ijk[inside, 2], ijk[inside, 1], ijk[inside, 0]]
    assert np.mean(np.isin(hit, (1, 2))) > 0.93  # nearest-voxel lookup on a 4 mm grid: only the rim may differ
    # Without the transform (identity) the same lookup lands much worse: the motion is real.
    ijk0 = np.rint((np.stack([i, j, k], 1) @ m[:3, :3].T + m[:3, 3]) @ back[:3, :3].T + back[:3, 3]).astype(int)
    assert np.mean(np.isin(base.labels[ijk0[:, 2], ijk0[:, 1], ijk0[:, 0]], (1, 2))) < 0.9


def test_lesion_correspondences_and_scaling_are_true(pair4) -> None:
    base, fu = pair4
    truth = fu.clinical["ground_truth"]["followup"]
    transform = VisitTransform.from_dict(truth["transform"])
    assert truth["scenario"] == "PR"
    assert [(row["baseline_lesion"], row["followup_lesion"], row["change"]) for row in truth["lesions"]] == [
        (1, 1, "shrink"),
        (2, None, "disappear"),
        (3, 2, "shrink"),
    ]
    for row in truth["lesions"]:
        if row["followup_lesion"] is None:
            assert not np.any(fu.tissues == LESION_TISSUE_BASE + 1 + 1)  # only 2 lesions remain
            continue
        b = base.lesions[row["baseline_lesion"] - 1]
        f = fu.lesions[row["followup_lesion"] - 1]
        assert f.volume_ml == pytest.approx(b.volume_ml * row["scale"] ** 3, rel=0.35)
        moved = transform(_centroid_lps(fu, LESION_TISSUE_BASE + row["followup_lesion"] - 1))[0]
        # Shrinking about the nominal centre moves the centroid of a lesion clipped by the liver border a little.
        distance = np.linalg.norm(moved - _centroid_lps(base, LESION_TISSUE_BASE + row["baseline_lesion"] - 1))
        assert distance < 0.12 * b.diameters_mm[0]
    response = truth["response"]
    assert response["recist_1_1"]["response"] == "PR" and response["recist_1_1"]["targets"] == [1, 3]
    assert response["recist_1_1"]["followup_sum_mm"] / response["recist_1_1"]["baseline_sum_mm"] < 0.7


def test_necrosis_after_tace_changes_mrecist_not_recist() -> None:
    fu = make_followup_phantom(6, 1, *GRID, phase="arterial")
    truth = fu.clinical["ground_truth"]["followup"]
    assert truth["response"]["recist_1_1"]["response"] == "SD"
    assert truth["response"]["mrecist"]["response"] == "PR"
    liver_hu = float(np.mean(fu.ct.array[fu.labels == 1]))
    for row in truth["lesions"]:
        inside = fu.ct.array[fu.tissues == LESION_TISSUE_BASE + row["followup_lesion"] - 1]
        if row["state"] == "necrotic":
            assert float(np.median(inside)) < liver_hu - 30.0
        elif row["state"] == "lipiodol":
            assert float(np.median(inside)) > 300.0


def test_phase_other_than_arterial_makes_mrecist_ne() -> None:
    fu = make_followup_phantom(6, 1, (48, 48, 32), (8.0, 8.0, 8.0), phase="portal_venous")
    mrecist = fu.clinical["ground_truth"]["followup"]["response"]["mrecist"]
    assert mrecist["response"] == "NE" and "portal_venous" in mrecist["reason"]


def test_cli_writes_the_followup_visit(tmp_path: Path) -> None:
    out = tmp_path / "fu"
    args = ("--size", "48,48,32", "--spacing", "8,8,8", "--phase", "arterial")
    result = run_cli("phantom", "-o", str(out), "--followup-of", "4", "--seed", "2", *args)
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "clinical.json").read_text())
    expected = make_followup_phantom(4, 2, (48, 48, 32), (8.0, 8.0, 8.0), phase="arterial")
    assert record == json.loads(json.dumps(expected.clinical))
    assert record["ground_truth"]["followup"]["baseline_seed"] == 4
    assert record["TCIA_ID"] == make_phantom(4, (48, 48, 32), (8.0, 8.0, 8.0)).clinical["TCIA_ID"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(("--followup-of", "4", "--oblique"), "--oblique"), ((), "--seed is required")],
)
def test_cli_bad_followup_options(tmp_path: Path, extra: tuple[str, ...], needle: str) -> None:
    out = tmp_path / "bad"
    result = run_cli("phantom", "-o", str(out), "--size", "24,24,16", *extra)
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and needle in result.stderr and len(result.stderr.splitlines()) == 1
    assert not out.exists()
