"""``smoothsegnet report`` and ``smoothsegnet export`` as a user runs them (child process, real files)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from _report_helpers import OBLIQUE, ct_with, ellipsoid_mask, grid
from conftest import run_cli

from SmoothSegNetLib.io import read_volume, write_ct_series
from SmoothSegNetLib.io.writers import write_labelmap, write_volume
from SmoothSegNetLib.report import label_lesions, measure


def _labels(g) -> np.ndarray:
    labels = np.zeros(g.shape_kji, np.uint8)
    labels[ellipsoid_mask(g, g.index_to_lps([20, 20, 6]), (16.0, 14.0, 10.0), np.eye(3))] = 1
    labels[ellipsoid_mask(g, g.index_to_lps([16, 20, 6]), (5.0, 4.0, 4.0), np.eye(3)) & (labels == 1)] = 2
    labels[ellipsoid_mask(g, g.index_to_lps([27, 22, 5]), (3.0, 3.0, 3.0), np.eye(3)) & (labels == 1)] = 2
    return labels


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    g = grid((12, 40, 40), (1.0, 1.1, 2.0), OBLIQUE)
    labels = _labels(g)
    ct = ct_with(labels, g)
    write_volume(tmp_path / "ct.nrrd", ct)
    write_labelmap(tmp_path / "labels.nrrd", labels, g)
    return tmp_path / "ct.nrrd", tmp_path / "labels.nrrd", labels


def test_report_command_measures_a_labelmap(tmp_path: Path, files: tuple) -> None:
    ct_path, labels_path, labels = files
    result = run_cli("report", str(labels_path), "--image", str(ct_path), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "2 lesion(s)" in result.stdout
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["lesions.nrrd", "overview.png", "report.csv", "report.json"]
    report = json.loads((out / "report.json").read_text())
    ct = read_volume(ct_path)
    expected = measure(ct, labels)
    assert [e["volume_ml"] for e in report["lesions"]] == [e["volume_ml"] for e in expected["lesions"]]
    assert [e["long_axis_mm"] for e in report["lesions"]] == [e["long_axis_mm"] for e in expected["lesions"]]
    assert report["liver"]["volume_ml"] == expected["liver"]["volume_ml"]


def test_report_refuses_a_labelmap_off_the_ct_grid(tmp_path: Path, files: tuple) -> None:
    ct_path, _, labels = files
    other = grid((12, 40, 40), (1.0, 1.1, 2.5), OBLIQUE)  # same size, other slice spacing
    write_labelmap(tmp_path / "moved.nrrd", labels, other)
    result = run_cli("report", str(tmp_path / "moved.nrrd"), "--image", str(ct_path), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: LABELMAP is not on the CT's grid (spacing")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_report_refuses_dicom_seg_for_a_file_input(tmp_path: Path, files: tuple) -> None:
    ct_path, labels_path, _ = files
    result = run_cli("report", str(labels_path), "--image", str(ct_path), "-o", str(tmp_path / "out"), "--dicom-seg")
    assert result.returncode == 2
    assert "DICOM-SEG needs a DICOM source" in result.stderr
    assert not (tmp_path / "out").exists()


def test_report_refuses_unknown_labels(tmp_path: Path, files: tuple) -> None:
    ct_path, _, labels = files
    bad = labels.copy()
    bad[0, 0, 0] = 5
    write_labelmap(tmp_path / "bad.nrrd", bad, read_volume(ct_path).geometry)
    result = run_cli("report", str(tmp_path / "bad.nrrd"), "--image", str(ct_path), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "label values [5]" in result.stderr and "--ignore-labels 5" in result.stderr
    assert not (tmp_path / "out").exists()
    ignored = run_cli(
        "report",
        str(tmp_path / "bad.nrrd"),
        "--image",
        str(ct_path),
        "-o",
        str(tmp_path / "out"),
        "--ignore-labels",
        "5",
    )
    assert ignored.returncode == 0, ignored.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (
        report["liver"]["volume_ml"] == measure(read_volume(ct_path), np.where(bad == 5, 0, bad))["liver"]["volume_ml"]
    )


def test_export_remakes_seg_and_sr_after_a_hand_correction(tmp_path: Path) -> None:
    g = grid((12, 40, 40), (1.0, 1.1, 2.0), OBLIQUE)
    labels = _labels(g)
    series = tmp_path / "series"
    write_ct_series(ct_with(labels, g), series)
    ct = read_volume(series)
    out = tmp_path / "out"
    out.mkdir()
    # A reader removed the small lesion by hand (tumor -> liver) and saved the segmentation.
    corrected = labels.copy()
    lesions = label_lesions(labels == 2, ct.geometry)
    corrected[lesions == 2] = 1
    write_labelmap(out / "segmentation.nrrd", corrected, ct.geometry)
    write_labelmap(out / "lesions.nrrd", lesions, ct.geometry)  # stale: still holds two lesions
    models = [{"id": "smoothsegnet-demo-tumor", "title": "Demo tumor", "version": "1", "sha256": "c" * 64}]
    (out / "report.json").write_text(json.dumps({"models": models}))
    result = run_cli("export", str(out), "--dicom", str(series))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["tumor_burden"]["count"] == 1
    assert report["models"][0]["id"] == "smoothsegnet-demo-tumor"
    seg = hd.seg.segread(str(out / "seg.dcm"))
    names = [seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()]
    assert names == ["Liver", "Lesion 1", "Liver including tumors"]
    uids = [s.sop_instance_uid for s in ct.dicom.slices]
    read = functools.partial(seg.get_pixels_by_source_instance, uids, assert_missing_frames_are_empty=True)
    pixels = read(segment_numbers=[1, 2], combine_segments=True, relabel=False)
    assert np.array_equal(pixels, corrected)
    whole = read(segment_numbers=[3], combine_segments=True)
    assert np.array_equal(whole > 0, corrected > 0)
    sr = hd.sr.srread(str(out / "sr.dcm"))
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert sorted(g.tracking_identifier for g in groups) == ["Lesion 1", "Liver including tumors", "Liver parenchyma"]
    assert (out / "segmentation.nrrd").exists()  # the input is kept


def test_export_needs_a_segmentation(tmp_path: Path) -> None:
    result = run_cli("export", str(tmp_path), "--dicom", str(tmp_path))
    assert result.returncode == 2
    assert "holds no segmentation.nrrd" in result.stderr
