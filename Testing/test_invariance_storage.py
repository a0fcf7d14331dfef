"""The same CT stored differently gives the same segmentation in space and the same report (real pipeline).

The bundled sample CT (a phantom: 192 x 192 x 64 voxels, 2 x 2 x 3.5 mm, three lesions) is stored four ways
and each is run through the whole ``segment`` path (read -> both demo networks -> every output file) with one
:class:`Segmenter`:

* ``axial``: the bundled NRRD itself (LPS, the reference);
* ``reflected_nifti``: i, j and k reversed (RAI: columns to the right, rows anterior, slices feet-first), NIfTI;
* ``sagittal_nrrd``: stored as sagittal slices (PIL), NRRD;
* ``coronal_dicom``: stored as coronal slices with i and j reversed (RSA), a classic CT DICOM series.

Each result is compared with the reference in patient space (resampled onto the reference grid, exact for
these storages): labels, lesion count and numbering (lesion n is the same lesion: the same centroid), every
volume within 1 %, every RECIST axis within one in-plane voxel (2 mm), 3D diameter and centroid likewise.
Four pipeline runs, once per session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from SmoothSegNetLib.inference.cases import Case, run_case
from SmoothSegNetLib.inference.options import SegmentOptions
from SmoothSegNetLib.inference.pipeline import Segmenter
from SmoothSegNetLib.io import read_volume, write_ct_series
from SmoothSegNetLib.io.writers import write_volume
from SmoothSegNetLib.models import Registry
from SmoothSegNetLib.report.inputs import read_labelmap
from SmoothSegNetLib.resample import Interpolation, reorient_to, resample
from SmoothSegNetLib.volume import CTVolume

SAMPLE = Path(__file__).resolve().parents[1] / "Resources" / "Sample" / "sample_ct.nrrd"
IN_PLANE_MM = 2.0  # the sample's pixel size: "one in-plane voxel"
VARIANTS = ("reflected_nifti", "sagittal_nrrd", "coronal_dicom")


def _store(ct: CTVolume, code: str, target: Path, dicom: bool) -> Path:
    array, geometry = reorient_to(ct.array, ct.geometry, code)
    stored = CTVolume(np.ascontiguousarray(array), geometry, source=code)
    if dicom:
        write_ct_series(stored, target)
    else:
        write_volume(target, stored)
    return target


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """name -> {"ct", "labels", "lesions", "report"}: one pipeline run per storage."""
    root = tmp_path_factory.mktemp("invariance")
    ct = read_volume(SAMPLE)
    inputs = {
        "axial": SAMPLE,
        "reflected_nifti": _store(ct, "RAI", root / "reflected.nii.gz", dicom=False),
        "sagittal_nrrd": _store(ct, "PIL", root / "sagittal.nrrd", dicom=False),
        "coronal_dicom": _store(ct, "RSA", root / "coronal_dicom", dicom=True),
    }
    segmenter = Segmenter(SegmentOptions(device="cpu"), Registry(home=tmp_path_factory.mktemp("home")))
    out: dict[str, dict[str, Any]] = {}
    for name, path in inputs.items():
        outdir = root / f"out_{name}"
        run_case(Case(path, outdir), segmenter)
        stored = read_volume(path)
        out[name] = {
            "ct": stored,
            "labels": _labelmap(outdir / "segmentation.nrrd", stored),
            "lesions": _labelmap(outdir / "lesions.nrrd", stored),
            "report": json.loads((outdir / "report.json").read_text(encoding="utf-8")),
            "files": sorted(p.name for p in outdir.iterdir()),
        }
    return out


def _labelmap(path: Path, ct: CTVolume) -> np.ndarray:
    """A label map written by ``segment``, checked to lie exactly on the input CT's grid."""
    array, geometry = read_labelmap(path)
    assert geometry.same_grid(ct.geometry), path
    return array


def _on_reference(run: dict[str, Any], reference: dict[str, Any], key: str) -> np.ndarray:
    return resample(run[key], run["ct"].geometry, reference["ct"].geometry, Interpolation.NEAREST)


def test_reference_run_finds_the_sample_lesions(runs: dict[str, dict[str, Any]]) -> None:
    report = runs["axial"]["report"]
    assert report["tumor_burden"]["count"] >= 2  # the demo networks find the two large lesions
    assert "overview.png" in runs["axial"]["files"]


@pytest.mark.parametrize("name", VARIANTS)
def test_the_stored_variant_really_is_stored_differently(runs: dict[str, dict[str, Any]], name: str) -> None:
    reference, run = runs["axial"]["ct"].geometry, runs[name]["ct"].geometry
    assert not np.allclose(reference.direction_array, run.direction_array)
    assert np.allclose(np.abs(np.linalg.det(run.direction_array)), 1.0)


@pytest.mark.parametrize("name", VARIANTS)
def test_same_segmentation_in_space(runs: dict[str, dict[str, Any]], name: str) -> None:
    reference = runs["axial"]
    labels = _on_reference(runs[name], reference, "labels")
    lesions = _on_reference(runs[name], reference, "lesions")
    foreground = int(np.count_nonzero(reference["labels"]))
    differ = int(np.count_nonzero(labels != reference["labels"]))
    assert differ <= 0.001 * foreground, f"{differ} of {foreground} labelled voxels differ"
    # The same numbering: lesion n here is lesion n of the reference, voxel for voxel (to 1 %).
    for n in range(1, int(reference["lesions"].max()) + 1):
        ref_n = reference["lesions"] == n
        assert np.count_nonzero(ref_n & (lesions == n)) >= 0.99 * np.count_nonzero(ref_n), f"lesion {n}"


@pytest.mark.parametrize("name", VARIANTS)
def test_same_report(runs: dict[str, dict[str, Any]], name: str) -> None:
    reference, report = runs["axial"]["report"], runs[name]["report"]
    assert report["tumor_burden"]["count"] == reference["tumor_burden"]["count"]
    assert report["liver"]["volume_ml"] == pytest.approx(reference["liver"]["volume_ml"], rel=0.01)
    assert report["tumor_burden"]["total_volume_ml"] == pytest.approx(
        reference["tumor_burden"]["total_volume_ml"], rel=0.01
    )
    for ref, got in zip(reference["lesions"], report["lesions"], strict=True):
        assert got["id"] == ref["id"]
        assert got["volume_ml"] == pytest.approx(ref["volume_ml"], rel=0.01), got["id"]
        for key in ("long_axis_mm", "short_axis_mm", "max_diameter_3d_mm"):
            assert got[key] == pytest.approx(ref[key], abs=IN_PLANE_MM), (got["id"], key)
        assert got["centroid_lps_mm"] == pytest.approx(ref["centroid_lps_mm"], abs=IN_PLANE_MM / 2)
        # End points are LPS points: the same chord whatever the storage (either end first).
        ends, ref_ends = np.asarray(got["long_axis_ends_lps_mm"]), np.asarray(ref["long_axis_ends_lps_mm"])
        gap = min(np.abs(ends - ref_ends).max(), np.abs(ends[::-1] - ref_ends).max())
        assert gap <= IN_PLANE_MM, (got["id"], ends.tolist(), ref_ends.tolist())
        assert got["fragmented"] == ref["fragmented"]
