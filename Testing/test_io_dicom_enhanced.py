"""Enhanced (multi-frame) CT: pydicom-data's real Enhanced CT, Enhanced CT converted by highdicom from our own
classic series (same voxels, same geometry), and DICOM-SEG/SR referencing its frames (dciodvfy-clean)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from _dicom_helpers import enhanced_from_classic, frame_positions, move_to_per_frame, per_frame
from _io_helpers import corners_lps, make_ct, oblique_direction, write_series
from conftest import require_tool, run_cli
from pydicom.data import get_testdata_file

from SmoothSegNetLib import validation
from SmoothSegNetLib.errors import VolumeValidationError
from SmoothSegNetLib.io import list_ct_series, read_volume
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.2"


def _supplemental(tmp: Path) -> Path:
    """pydicom-data's eCT_Supplemental.dcm (a real Enhanced CT: 2 frames of 512 x 512) alone in a folder."""
    path = get_testdata_file("eCT_Supplemental.dcm")
    assert path is not None, "pydicom-data is not installed: pip install -e '.[test]'"
    (tmp / "ect").mkdir()
    shutil.copy(path, tmp / "ect")
    return tmp / "ect"


def test_real_enhanced_ct_reads_with_the_geometry_of_its_own_tags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _supplemental(tmp_path)
    ds = pydicom.dcmread(folder / "eCT_Supplemental.dcm")
    # its tags, read by hand: shared IOP (-1,0,0, 0,1,0) (rows run to the patient's right), shared pixel
    # spacing 0.388672 mm, shared rescale -1024 / 1; frame 1 at z = -159, frame 2 at z = -149
    assert ds.SOPClassUID == ENHANCED_CT and int(ds.NumberOfFrames) == 2
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == [-1, 0, 0, 0, 1, 0]
    assert frame_positions(ds).tolist() == [[99.5, -301.5, -159.0], [99.5, -301.5, -149.0]]
    monkeypatch.setattr(validation, "MIN_SLICES", 2)  # two frames: below the volume minimum, allowed here only
    ct = read_volume(folder)
    g = ct.geometry
    # normal = row x column = (-1,0,0) x (0,1,0) = (0,0,-1): frame 2 (z -149) is nearer along it, so it is k = 0
    assert g.shape_kji == (2, 512, 512)
    assert g.spacing_mm == pytest.approx((0.388672, 0.388672, 10.0))
    assert g.origin_lps_mm == pytest.approx((99.5, -301.5, -149.0))
    assert np.array_equal(g.direction_array, np.column_stack([(-1.0, 0, 0), (0, 1.0, 0), (0, 0, -1.0)]))
    assert g.index_to_lps([511, 0, 1]) == pytest.approx((99.5 - 511 * 0.388672, -301.5, -159.0))
    stored = ds.pixel_array.astype(np.int32)
    assert np.array_equal(ct.array[0], stored[1] - 1024) and np.array_equal(ct.array[1], stored[0] - 1024)
    assert ct.dicom is not None
    assert [s.frame_number for s in ct.dicom.slices] == [2, 1]
    assert {s.sop_instance_uid for s in ct.dicom.slices} == {str(ds.SOPInstanceUID)}


def test_real_enhanced_ct_of_two_frames_is_refused_as_too_few_slices(tmp_path: Path) -> None:
    with pytest.raises(VolumeValidationError, match=r"too few slices: 2 \(size \(512, 512, 2\)\)"):
        read_volume(_supplemental(tmp_path))


@pytest.mark.parametrize("direction", [np.eye(3), oblique_direction(), np.diag([-1.0, 1.0, -1.0])])
def test_converted_enhanced_ct_reads_like_its_classic_series(tmp_path: Path, direction: np.ndarray) -> None:
    ct = make_ct(direction=direction)
    paths = write_series(ct, tmp_path / "classic", rescale_intercept=-1024.0)
    path, ds = enhanced_from_classic(paths, tmp_path / "enhanced", seed=5)
    assert ds.SOPClassUID == LEGACY_ENHANCED_CT and int(ds.NumberOfFrames) == 9
    classic, enhanced = read_volume(tmp_path / "classic"), read_volume(tmp_path / "enhanced")
    assert np.array_equal(enhanced.array, classic.array) and np.array_equal(enhanced.array, ct.array)
    assert enhanced.geometry.same_grid(classic.geometry, atol=1e-6)
    assert np.allclose(corners_lps(enhanced.geometry), corners_lps(ct.geometry), atol=1e-6)
    assert enhanced.dicom is not None and classic.dicom is not None
    frames = [s.frame_number for s in enhanced.dicom.slices]
    assert sorted(frames) == list(range(1, 10)) and all(s.path == str(path) for s in enhanced.dicom.slices)
    # every frame's own position is the position of the classic slice at the same k
    assert np.allclose(frame_positions(ds)[np.array(frames) - 1], [s.position_lps_mm for s in classic.dicom.slices])


def test_per_frame_rescale_overrides_the_shared_one(tmp_path: Path) -> None:
    ct = make_ct()
    paths = write_series(ct, tmp_path / "classic", rescale_intercept=-1024.0)
    path, ds = enhanced_from_classic(paths, tmp_path / "enhanced")
    stored = ds.pixel_array.astype(np.int16)
    for frame in range(1, 10):
        # frame f stores its values f higher and says intercept -1024 - f in its own functional group
        item = pydicom.Dataset()
        item.RescaleIntercept, item.RescaleSlope, item.RescaleType = str(-1024 - frame), "1", "HU"
        per_frame(ds, frame).PixelValueTransformationSequence = [item]
        stored[frame - 1] += frame
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    assert np.array_equal(read_volume(tmp_path / "enhanced").array, ct.array)


def test_per_frame_orientation_and_spacing_are_read_from_each_frame(tmp_path: Path) -> None:
    ct = make_ct(direction=oblique_direction())
    paths = write_series(ct, tmp_path / "classic")
    path, ds = enhanced_from_classic(paths, tmp_path / "enhanced")
    move_to_per_frame(ds, "PlaneOrientationSequence")
    move_to_per_frame(ds, "PixelMeasuresSequence")
    ds.save_as(path, enforce_file_format=True)
    back = read_volume(tmp_path / "enhanced")
    assert back.geometry.same_grid(read_volume(tmp_path / "classic").geometry, atol=1e-6)
    assert np.array_equal(back.array, ct.array)


def test_enhanced_series_is_listed_and_inspected_by_frames(tmp_path: Path) -> None:
    paths = write_series(make_ct(), tmp_path / "classic")
    _, ds = enhanced_from_classic(paths, tmp_path / "enhanced")
    [info] = list_ct_series(tmp_path / "enhanced")
    assert info.slice_count == 9 and "1 file(s), 9 frames" in info.summary()
    result = run_cli("inspect", str(tmp_path / "enhanced"), "--json")
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["size_ijk"] == [12, 10, 9] and described["dicom"]["slice_count"] == 9
    assert described["dicom"]["series_instance_uid"] == str(ds.SeriesInstanceUID)


def _dciodvfy_errors(path: Path) -> list[str]:
    result = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.dciodvfy
def test_segment_writes_seg_and_sr_that_reference_the_enhanced_frames(tmp_path: Path) -> None:
    a = np.full((20, 30, 40), -500, np.int16)
    a[3:15, 5:25, 5:35] = 100  # liver (HU > 50 for the threshold model), not symmetric in k
    a[9:13, 10:14, 10:16] = 200  # one lesion (HU > 150)
    ct = CTVolume(a, Geometry.create(a.shape, (0.7, 0.8, 2.0), (-12.0, 30.5, 101.0), np.diag([-1.0, 1.0, -1.0])))
    paths = write_series(ct, tmp_path / "classic")
    source, ds = enhanced_from_classic(paths, tmp_path / "enhanced", seed=3)
    liver = write_threshold_model(tmp_path / "models", "liver", threshold_hu=50, spacing_mm=None, orientation="PLI")
    tumor = write_threshold_model(tmp_path / "models", "tumor", threshold_hu=150, spacing_mm=None)
    before = source.read_bytes()
    out = tmp_path / "out"
    result = run_cli(
        "segment", str(tmp_path / "enhanced"), "-o", str(out), "--liver-model", str(liver), "--tumor-model",
        str(tumor), "--dicom-seg", "--dicom-sr", "--progress", "none",
        "--skip-plausibility-check",  # a 28 x 24 mm synthetic series, not a body
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert source.read_bytes() == before
    assert _dciodvfy_errors(out / "seg.dcm") == [] and _dciodvfy_errors(out / "sr.dcm") == []
    seg = hd.seg.segread(str(out / "seg.dcm"))
    [referenced] = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert referenced.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert referenced.ReferencedSOPClassUID == LEGACY_ENHANCED_CT
    # frame f of the source holds the slice at its own position: compare through the positions, not k
    by_frame = seg.get_pixels_by_source_frame(
        str(ds.SOPInstanceUID),
        list(range(1, 21)),
        segment_numbers=[1, 2],  # segment 3, the whole liver, overlaps both
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    frame_k = np.rint(ct.geometry.lps_to_index(frame_positions(ds))[:, 2]).astype(int)
    expected = np.where(a > 150, 2, np.where(a > 50, 1, 0))
    assert np.array_equal(by_frame, expected[frame_k])  # segment 1 liver, segment 2 lesion 1
    sr = pydicom.dcmread(out / "sr.dcm")
    evidence = {
        item.ReferencedSOPInstanceUID
        for series in sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert evidence == {seg.SOPInstanceUID, ds.SOPInstanceUID}


@pytest.mark.parametrize("syntax", [pydicom.uid.RLELossless, pydicom.uid.JPEG2000Lossless])
def test_compressed_enhanced_ct_decodes_frame_by_frame(tmp_path: Path, syntax: pydicom.uid.UID) -> None:
    ct = make_ct(shape_kji=(8, 32, 33), direction=oblique_direction())  # JPEG 2000 needs >= 32 rows and columns
    paths = write_series(ct, tmp_path / "classic", rescale_intercept=-1024.0)
    path, ds = enhanced_from_classic(paths, tmp_path / "enhanced", seed=2)
    ds.compress(syntax)
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    back, classic = read_volume(tmp_path / "enhanced"), read_volume(tmp_path / "classic")
    assert np.array_equal(back.array, ct.array) and back.geometry.same_grid(classic.geometry, atol=1e-6)
