"""The bundled sample CT is exactly what its documented command regenerates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SmoothSegNetLib.phantom import make_phantom

SAMPLE = Path(__file__).resolve().parents[1] / "Resources" / "Sample"
SEED = 20260003


def test_sample_matches_the_generator() -> None:
    expected = make_phantom(SEED, (192, 192, 64), (2.0, 2.0, 3.5), phase="portal_venous")
    ct = sitk.ReadImage(str(SAMPLE / "sample_ct.nrrd"))
    labels = sitk.ReadImage(str(SAMPLE / "sample_labels.nrrd"))
    assert ct.GetPixelID() == sitk.sitkInt16
    # Exact on the machine that wrote it; elsewhere float32 transcendental functions (SIMD paths differ by
    # CPU) may move a boundary voxel or round a value the other way, so allow 0.1 % of voxels to differ.
    ct_diff = np.abs(sitk.GetArrayFromImage(ct).astype(np.int32) - expected.ct.array)
    assert np.mean(ct_diff > 1) < 1e-3 and np.median(ct_diff) == 0
    assert np.mean(sitk.GetArrayFromImage(labels) != expected.labels) < 1e-3
    assert np.allclose(ct.GetOrigin(), expected.ct.geometry.origin_lps_mm, atol=1e-4)
    assert np.allclose(labels.GetSpacing(), (2.0, 2.0, 3.5))
    record = json.loads((SAMPLE / "sample_clinical.json").read_text())
    assert record["variables"] == expected.clinical["variables"]
    assert abs(record["ground_truth"]["tlvr"] - expected.clinical["ground_truth"]["tlvr"]) < 1e-3
    assert (SAMPLE / "sample_ct.nrrd").stat().st_size < 3_000_000


def test_sample_has_two_or_three_lesions_of_different_sizes() -> None:
    record = json.loads((SAMPLE / "sample_clinical.json").read_text())
    lesions = record["ground_truth"]["lesions"]
    assert 2 <= len(lesions) <= 3
    largest = sorted(lesion["diameters_mm"][0] for lesion in lesions)
    assert largest[-1] > 2.5 * largest[0]
    assert str(SEED) in (SAMPLE / "README.md").read_text()
