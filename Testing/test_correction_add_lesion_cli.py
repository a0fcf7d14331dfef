"""``smoothsegnet add-lesion OUTDIR --at X,Y,Z`` as a user runs it (child process, real files).

The folder is a ``segment`` output made from a phantom's exact labels without one lesion (see
``_add_lesion_helpers``), on an anisotropic grid (2.2 x 2.2 x 3.0 mm), so volumes are checked exactly.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from _add_lesion_helpers import folder_digest, load_report, missed_case, small_phantom, write_case_folder
from conftest import run_cli

from SmoothSegNetLib.io.writers import read_seg_nrrd
from SmoothSegNetLib.report.inputs import read_labelmap

SEED, MISSED = 11, 1


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    phantom = small_phantom(SEED)
    labels, lesions, truth, centre = missed_case(phantom, MISSED)
    return phantom, labels, lesions, truth, centre, tmp_path_factory


def _folder(case, name: str) -> Path:  # type: ignore[no-untyped-def]
    phantom, labels, lesions, _truth, _centre, factory = case
    return write_case_folder(factory.mktemp(name), phantom, labels, lesions)


def _at(point) -> str:  # type: ignore[no-untyped-def]
    return ",".join(f"{float(v):.3f}" for v in point)


def test_add_lesion_updates_and_remeasures_the_folder(case) -> None:  # type: ignore[no-untyped-def]
    phantom, labels, lesions, _truth, centre, _factory = case
    out = _folder(case, "ok")
    before = load_report(out)
    result = run_cli("add-lesion", str(out), f"--at={_at(centre)}")
    assert result.returncode == 0, result.stderr
    n = int(lesions.max()) + 1
    assert f"added lesion {n} " in result.stdout
    new_lesions, geometry = read_labelmap(out / "lesions.nrrd", "lesions.nrrd")
    new_labels, _ = read_labelmap(out / "segmentation.nrrd", "segmentation.nrrd")
    assert geometry.same_grid(phantom.ct.geometry, atol=1e-6)
    mask = new_lesions == n
    assert np.array_equal(new_labels == 2, new_lesions > 0)
    assert np.array_equal(new_lesions[~mask], lesions[~mask])
    assert not np.any(lesions[mask]) and np.all(labels[mask] == 1)
    report = load_report(out)
    entry = report["lesions"][-1]
    assert entry["id"] == n and entry["source"] == "added_at_point"
    assert entry["added_at_lps_mm"] == [round(float(v), 3) for v in centre]
    # Exact re-measure: voxel count x voxel volume on the anisotropic grid (2.2 x 2.2 x 3.0 = 14.52 mm3).
    assert entry["voxel_count"] == int(mask.sum())
    assert entry["volume_ml"] == round(int(mask.sum()) * 2.2 * 2.2 * 3.0 / 1000.0, 4)
    assert report["tumor_burden"]["count"] == before["tumor_burden"]["count"] + 1
    assert report["tumor_burden"]["total_volume_ml"] == round(int((new_lesions > 0).sum()) * 14.52 / 1000.0, 4)
    assert [e["confidence"] for e in report["lesions"][:-1]] == [e["confidence"] for e in before["lesions"]]
    assert all("source" not in e for e in report["lesions"][:-1])
    # A click is a hand correction (SEMIAUTOMATIC in DICOM); the run's lesion floors are still stated.
    assert [e["edited"] for e in report["lesions"]] == [e["edited"] for e in before["lesions"]] + [True]
    assert report["thresholds"] == before["thresholds"]
    assert report["corrections"][0]["lesion_id"] == n and report["corrections"][0]["action"] == "add_lesion"
    with open(out / "report.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["lesion_id"]) for r in rows] == list(range(1, n + 1))
    seg, seg_geometry, _segments = read_seg_nrrd(out / "segmentation.seg.nrrd")
    assert np.array_equal(np.asarray(seg) == 2, new_labels == 2) and seg_geometry.same_grid(geometry, atol=1e-4)
    assert (out / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".smoothsegnet-staging")]


def test_add_lesion_keeps_the_hand_drawn_axes_of_the_other_lesions(case) -> None:  # type: ignore[no-untyped-def]
    phantom, labels, lesions, _truth, centre, factory = case
    geometry = phantom.ct.geometry
    # A line across lesion 1 on its middle slice, between voxel centres 2 voxels in from its ends along i.
    k = int(np.median(np.argwhere(lesions == 1)[:, 0]))
    j = int(np.median(np.argwhere(lesions[k] == 1)[:, 0]))
    row = np.flatnonzero(lesions[k, j] == 1)
    ends = [geometry.index_to_lps((float(i), float(j), float(k))) for i in (row[0] + 2, row[-1] - 2)]
    line = [[round(float(v), 4) for v in end] for end in ends]
    length = round(float(np.linalg.norm(np.subtract(line[1], line[0]))), 4)
    out = write_case_folder(factory.mktemp("manual"), phantom, labels, lesions, manual_axes={1: {"long": line}})
    assert load_report(out)["lesions"][0]["long_axis_source"] == "manual"
    result = run_cli("add-lesion", str(out), f"--at={_at(centre)}")
    assert result.returncode == 0, result.stderr
    first = load_report(out)["lesions"][0]
    assert (first["long_axis_source"], first["long_axis_mm"]) == ("manual", length)
    assert first["long_axis_ends_lps_mm"] == line


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("outside_image", "error: the point"),
        ("background", "error: the point"),
        ("normal_liver", "error: nothing lesion-like was found"),
        ("malformed", "error: --at must be three numbers"),
        ("no_report", "error: "),
    ],
)
def test_bad_points_leave_the_folder_unchanged(case, where: str, message: str) -> None:  # type: ignore[no-untyped-def]
    phantom, labels, _lesions, _truth, _centre, _factory = case
    out = _folder(case, where)
    g = phantom.ct.geometry
    if where == "outside_image":
        at = _at(g.index_to_lps(np.array([g.size_ijk[0] + 4.0, 5.0, 5.0])))
    elif where == "background":
        at = _at(g.index_to_lps(np.argwhere(labels == 0)[0][::-1].astype(float)))
    elif where == "normal_liver":
        from scipy import ndimage

        far = ndimage.distance_transform_edt(phantom.labels != 2, sampling=g.spacing_mm[::-1]) >= 25.0
        liver = np.argwhere(ndimage.binary_erosion(phantom.labels == 1, iterations=3) & far)
        at = _at(g.index_to_lps(liver[len(liver) // 2][::-1].astype(float)))
    elif where == "malformed":
        at = "1,2"
    else:
        (out / "report.json").unlink()
        at = "0,0,0"
    before = folder_digest(out.parent)
    result = run_cli("add-lesion", str(out), f"--at={at}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert folder_digest(out.parent) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(k).name for k in before if k.startswith("out/"))
