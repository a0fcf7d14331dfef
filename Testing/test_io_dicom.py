"""DICOM CT series: writing (dciodvfy-clean), reading with exact geometry, ordering, rescale, compression."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _io_helpers import (
    corners_lps,
    edit_series,
    make_ct,
    oblique_direction,
    signed_permutations,
    values_at,
    write_series,
)
from conftest import require_tool, run_cli
from pydicom.data import get_testdata_file

from SmoothSegNetLib.errors import DicomSeriesError, InputError, VolumeValidationError
from SmoothSegNetLib.io import list_ct_series, read_volume, write_ct_series

AXIAL = np.eye(3)
CORONAL = np.column_stack([(1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)])  # i -> L, j -> I (down), k -> P
SAGITTAL = np.column_stack([(0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (-1.0, 0.0, 0.0)])  # i -> P, j -> I, k -> R
FLIPPED = np.diag([-1.0, -1.0, 1.0])  # i -> R, j -> A (the RAS-like storage), right-handed


@pytest.mark.parametrize(
    "direction",
    [AXIAL, CORONAL, SAGITTAL, FLIPPED, oblique_direction()],
    ids=["axial", "coronal", "sagittal", "flipped", "oblique"],
)
def test_geometry_from_positions_equals_written_geometry(tmp_path: Path, direction: np.ndarray) -> None:
    ct = make_ct(direction=direction)
    write_series(ct, tmp_path / "s")
    back = read_volume(tmp_path / "s")
    assert np.allclose(corners_lps(back.geometry), corners_lps(ct.geometry), atol=1e-6)
    assert back.geometry.same_grid(ct.geometry, atol=1e-6)
    assert np.array_equal(back.array, ct.array)


def test_all_48_axis_permutations_put_every_voxel_at_its_place(tmp_path: Path) -> None:
    right_handed = 0
    for n, direction in enumerate(signed_permutations()):
        ct = make_ct(shape_kji=(8, 9, 10), direction=direction, seed=n)
        write_series(ct, tmp_path / f"s{n}")
        back = read_volume(tmp_path / f"s{n}")
        # the same box, and the same value at each LPS voxel centre
        assert np.allclose(corners_lps(back.geometry), corners_lps(ct.geometry), atol=1e-6)
        k, j, i = np.meshgrid(*(np.arange(s) for s in ct.geometry.shape_kji), indexing="ij")
        lps = ct.geometry.index_to_lps(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1))
        assert np.array_equal(values_at(back, lps), ct.array.ravel())
        if np.linalg.det(direction) > 0:
            # a right-handed grid comes back identical; a left-handed one with its k axis reversed
            assert back.geometry.same_grid(ct.geometry, atol=1e-6)
            right_handed += 1
        else:
            assert np.array_equal(back.array, ct.array[::-1])
    assert right_handed == 24


def test_shuffled_files_and_instance_numbers_read_back_identical(tmp_path: Path) -> None:
    ct = make_ct(direction=oblique_direction())
    paths = write_series(ct, tmp_path / "s")
    reference = read_volume(tmp_path / "s")
    rng = random.Random(7)
    numbers = list(range(1, len(paths) + 1))
    rng.shuffle(numbers)
    edit_series(paths, lambda ds, k: setattr(ds, "InstanceNumber", numbers[k]))
    names = [f"IMG{n:03d}" for n in range(len(paths))]
    rng.shuffle(names)
    shuffled = tmp_path / "shuffled"
    (shuffled / "nested").mkdir(parents=True)
    for n, (path, name) in enumerate(zip(paths, names)):
        shutil.copy(path, shuffled / ("nested" if n % 2 else "") / name)
    back = read_volume(shuffled)
    assert np.array_equal(back.array, ct.array)
    assert back.geometry.same_grid(reference.geometry, atol=1e-9)
    assert back.dicom is not None and reference.dicom is not None
    assert [s.sop_instance_uid for s in back.dicom.slices] == [s.sop_instance_uid for s in reference.dicom.slices]


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path) -> None:
    ct = make_ct()
    array = np.full(ct.array.shape, 100, dtype=np.int16)
    array[:, :, 0] = 0
    array[:, :, 1] = 1500
    write_series(ct.with_array(array * 2 - 1024), tmp_path / "s", rescale_slope=2.0, rescale_intercept=-1024.0)
    stored = pydicom.dcmread(tmp_path / "s" / "CT0001.dcm").pixel_array
    assert stored[0, 0] == 0 and stored[0, 1] == 1500 and stored[0, 2] == 100  # raw values in the file
    back = read_volume(tmp_path / "s")
    # HU = stored * 2 - 1024: 0 -> -1024, 1500 -> 1976, 100 -> -824
    assert back.array[0, 0, 0] == -1024 and back.array[3, 4, 1] == 1976 and back.array[5, 5, 5] == -824
    assert back.array.dtype == np.int16


def test_fractional_rescale_gives_float32_hu(tmp_path: Path) -> None:
    ct = make_ct()
    paths = write_series(ct, tmp_path / "s")
    edit_series(paths, lambda ds, k: setattr(ds, "RescaleSlope", "0.5"))
    back = read_volume(tmp_path / "s")
    assert back.array.dtype == np.float32
    assert np.array_equal(back.array, ct.array.astype(np.float32) * 0.5)


@pytest.mark.parametrize(
    "syntax", ["rle_lossless", "jpeg2000_lossless", "jpegls_lossless", "implicit_vr_little_endian"]
)
def test_compressed_series_decode_to_the_uncompressed_array(tmp_path: Path, syntax: str) -> None:
    ct = make_ct(shape_kji=(8, 32, 33))  # JPEG 2000 needs at least 32 rows and columns
    write_series(ct, tmp_path / "plain")
    paths = write_series(ct, tmp_path / syntax, transfer_syntax=syntax)
    expected_uid = {
        "rle_lossless": "1.2.840.10008.1.2.5",
        "jpeg2000_lossless": "1.2.840.10008.1.2.4.90",
        "jpegls_lossless": "1.2.840.10008.1.2.4.80",
        "implicit_vr_little_endian": "1.2.840.10008.1.2",
    }[syntax]
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == expected_uid
    plain, packed = read_volume(tmp_path / "plain"), read_volume(tmp_path / syntax)
    assert np.array_equal(packed.array, plain.array)
    assert np.array_equal(packed.array, ct.array)
    assert packed.geometry.same_grid(plain.geometry, atol=1e-9)


def test_pydicom_jpeg2000_ct_test_file_decodes(tmp_path: Path) -> None:
    # a real CT slice from pydicom's test data (JPEG 2000), read by the same slice decoder as a series
    from SmoothSegNetLib.io.dicom_series import read_pixels

    path = Path(get_testdata_file("693_J2KI.dcm"))  # type: ignore[arg-type]
    ds = pydicom.dcmread(path)
    stack = read_pixels([path], int(ds.Rows), int(ds.Columns), source="test")
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # a real scanner's padding: PixelPaddingValue -2000 (stored) marks 494 pixels, which become air
    assert int(ds.PixelPaddingValue) == -2000 and int(ds.RescaleIntercept) == -1024
    padding = ds.pixel_array == -2000
    assert stack.padded_count == int(padding.sum()) == 494
    assert stack.padded is not None and np.array_equal(stack.padded[0], padding)
    expected[padding] = -1024
    assert np.array_equal(stack.array[0], expected.astype(stack.array.dtype))
    assert stack.padding_hu == (-3024.0, -3024.0)


def test_dicom_source_keeps_what_dicom_seg_needs(tmp_path: Path) -> None:
    ct = make_ct(direction=oblique_direction())
    paths = write_series(
        ct,
        tmp_path / "s",
        patient_id="P-42",
        patient_name="Doe^Jane",
        study_instance_uid="1.2.3.4",
        series_instance_uid="1.2.3.4.5",
        frame_of_reference_uid="1.2.3.4.6",
        attributes={"AccessionNumber": "ACC7", "PatientBirthDate": "19600101", "PatientSex": "F"},
    )
    src = read_volume(tmp_path / "s").dicom
    assert src is not None
    assert (src.study_instance_uid, src.series_instance_uid, src.frame_of_reference_uid) == (
        "1.2.3.4",
        "1.2.3.4.5",
        "1.2.3.4.6",
    )
    assert src.paths == [str(p) for p in paths]  # written in k order
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in paths]
    assert [s.sop_instance_uid for s in src.slices] == uids
    assert all(s.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2" for s in src.slices)
    assert np.allclose(src.slices[3].position_lps_mm, ct.geometry.index_to_lps([0, 0, 3]), atol=1e-6)
    attrs = src.attributes
    assert attrs["PatientID"] == "P-42" and attrs["PatientName"] == "Doe^Jane"
    assert attrs["AccessionNumber"] == "ACC7" and attrs["PatientBirthDate"] == "19600101"
    assert attrs["PatientSex"] == "F" and attrs["Modality"] == "CT"
    for key in ("StudyDate", "StudyTime", "StudyID", "ReferringPhysicianName", "Manufacturer", "SeriesNumber"):
        assert key in attrs
    json.dumps(attrs)  # plain values only


def test_several_series_choose_by_uid_and_list(tmp_path: Path) -> None:
    a, b = make_ct(seed=1), make_ct(shape_kji=(10, 10, 12), seed=2)
    write_series(a, tmp_path / "a", series_instance_uid="1.2.826.1", series_description="arterial")
    write_series(b, tmp_path / "b", series_instance_uid="1.2.826.2", series_description="venous")
    infos = list_ct_series(tmp_path)
    assert [(s.series_instance_uid, s.slice_count, s.description) for s in infos] == [
        ("1.2.826.2", 10, "venous"),
        ("1.2.826.1", 9, "arterial"),
    ]
    with pytest.raises(DicomSeriesError, match=r"2 CT series: 1\.2\.826\.2 \(CT, 10 files, 'venous'\)"):
        read_volume(tmp_path)
    assert np.array_equal(read_volume(tmp_path, series_uid="1.2.826.1").array, a.array)
    assert np.array_equal(read_volume(tmp_path, series_uid="1.2.826.2").array, b.array)


def test_non_dicom_files_and_other_modalities_are_skipped(tmp_path: Path) -> None:
    ct = make_ct()
    write_series(ct, tmp_path / "ct")
    (tmp_path / "README.txt").write_text("not dicom")
    (tmp_path / "ct" / "thumbs.db").write_bytes(b"\x00" * 300)
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "mr.dcm")  # type: ignore[arg-type]
    back = read_volume(tmp_path)
    assert np.array_equal(back.array, ct.array)


def test_missing_slice_is_resampled_only_when_allowed(tmp_path: Path) -> None:
    ct = make_ct()
    paths = write_series(ct, tmp_path / "s")
    paths[4].unlink()  # the slice at k = 4 (z = 7 + 4 * 2.5 = 17 mm) is missing
    with pytest.raises(VolumeValidationError, match=r"missing slices .*after positions 14\.5 mm"):
        read_volume(tmp_path / "s")
    back = read_volume(tmp_path / "s", allow_resample=True)
    assert back.array.shape == ct.array.shape
    assert back.geometry.same_grid(ct.geometry, atol=1e-6)
    expected = np.rint((ct.array[3].astype(float) + ct.array[5]) / 2)  # linear interpolation half way
    assert np.array_equal(back.array[4], expected.astype(np.int16))
    assert np.array_equal(back.array[5:], ct.array[5:])
    assert back.dicom is None
    assert len(back.warnings) == 1 and "resampled onto 9 slices 2.5 mm apart" in back.warnings[0]


def test_written_series_passes_dciodvfy(tmp_path: Path) -> None:
    dciodvfy = require_tool("dciodvfy")
    paths = write_series(make_ct(shape_kji=(8, 32, 32), direction=oblique_direction()), tmp_path / "s")
    paths += write_series(make_ct(shape_kji=(8, 32, 32)), tmp_path / "j", transfer_syntax="jpeg2000_lossless")
    for path in (paths[0], paths[5], paths[-1]):
        result = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
        report = result.stdout + result.stderr
        assert "CTImage" in report
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert errors == [], report


def test_writer_refuses_bad_options_and_leaves_nothing(tmp_path: Path) -> None:
    ct = make_ct()
    with pytest.raises(InputError, match="transfer_syntax must be one of"):
        write_ct_series(ct, tmp_path / "a", transfer_syntax="jpeg_lossy")
    with pytest.raises(InputError, match="beyond int16"):
        write_ct_series(ct.with_array(ct.array.astype(np.int32) * 40), tmp_path / "b")
    with pytest.raises(InputError, match="at least 32 rows and columns"):
        write_ct_series(ct, tmp_path / "c", transfer_syntax="jpeg2000_lossless")
    with pytest.raises(InputError, match="NaN or infinite"):
        write_ct_series(ct.with_array(np.full(ct.array.shape, np.nan, np.float32)), tmp_path / "e")
    with pytest.raises(InputError, match=r"unknown \['StudyDat'\]"):
        write_ct_series(ct, tmp_path / "f", attributes={"StudyDat": "20240101"})
    assert not any(tmp_path.iterdir())
    write_ct_series(ct, tmp_path / "d")
    with pytest.raises(InputError, match="already holds"):
        write_ct_series(ct, tmp_path / "d")


def test_writer_places_ipp_iop_and_pixel_spacing_by_the_standard(tmp_path: Path) -> None:
    ct = make_ct(spacing_mm=(0.7, 0.8, 2.5), direction=CORONAL)
    ds = pydicom.dcmread(write_series(ct, tmp_path / "s")[2])
    assert [float(v) for v in ds.PixelSpacing] == [0.8, 0.7]  # row spacing (j), then column spacing (i)
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]  # i -> L, then j -> I
    assert np.allclose([float(v) for v in ds.ImagePositionPatient], ct.geometry.index_to_lps([0, 0, 2]))
    assert (ds.Rows, ds.Columns) == (10, 12)
    assert float(ds.SliceThickness) == 2.5


def test_inspect_describes_a_dicom_series(tmp_path: Path) -> None:
    write_series(make_ct(), tmp_path / "s", series_instance_uid="1.2.826.99", series_description="venous")
    result = run_cli("inspect", str(tmp_path / "s"), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["dicom"]["series_instance_uid"] == "1.2.826.99"
    assert info["dicom"]["slice_count"] == 9
    assert info["size_ijk"] == [12, 10, 9]


def test_header_rules_are_checked_before_any_pixel_is_decoded(tmp_path: Path) -> None:
    paths = write_series(make_ct(), tmp_path / "s")
    edit_series(paths, lambda ds, k: setattr(ds, "ImagePositionPatient", [0.0, 0.6 * k, 2.5 * k]))  # 13.5 deg tilt
    paths[3].write_bytes(paths[3].read_bytes()[:-300])  # and broken pixel data, never reached
    with pytest.raises(VolumeValidationError, match=r"13\.50 degrees off the slice normal"):
        read_volume(tmp_path / "s")


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"])
def test_pydicom_compressed_test_files_decode_like_the_uncompressed_one(name: str) -> None:
    # pydicom ships one 64 x 64 image in several lossless transfer syntaxes (an MR, so the slice decoder is
    # used directly: a folder of it would be refused as non-CT)
    from SmoothSegNetLib.io.dicom_series import read_pixels

    plain = Path(get_testdata_file("MR_small.dcm"))  # type: ignore[arg-type]
    packed = Path(get_testdata_file(name))  # type: ignore[arg-type]
    assert pydicom.dcmread(packed).file_meta.TransferSyntaxUID.is_compressed
    expected = read_pixels([plain], 64, 64, source="plain").array
    assert np.array_equal(read_pixels([packed], 64, 64, source="packed").array, expected)
    assert expected.dtype == np.int16 and expected.min() < expected.max()


def test_inspect_refuses_a_gap_then_resamples_it_on_request(tmp_path: Path) -> None:
    paths = write_series(make_ct(), tmp_path / "s")
    paths[6].unlink()
    refused = run_cli("inspect", str(tmp_path / "s"))
    assert refused.returncode == 2 and "--allow-resample" in refused.stderr
    result = run_cli("inspect", str(tmp_path / "s"), "--allow-resample", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["size_ijk"] == [12, 10, 9] and "dicom" not in info
    assert len(info["warnings"]) == 1 and "missing slices" in info["warnings"][0]
