"""Reading CT volume files (NRRD, NIfTI, MetaImage): exact voxels and geometry, dtypes, the inspect command."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from _io_helpers import ORIGIN_LPS_MM, SPACING_MM, make_ct, oblique_direction, signed_permutations
from conftest import run_cli

from SmoothSegNetLib.errors import VolumeReadError
from SmoothSegNetLib.io import read_volume
from SmoothSegNetLib.volume import CTVolume, Geometry


def _write(ct: CTVolume, path: Path) -> Path:
    sitk.WriteImage(ct.to_sitk(), str(path))
    return path


@pytest.mark.parametrize("name", ["ct.nrrd", "ct.nii", "ct.nii.gz", "ct.mha", "ct.mhd", "ct.nhdr"])
def test_each_format_reads_back_voxels_and_oblique_geometry(tmp_path: Path, name: str) -> None:
    ct = make_ct(direction=oblique_direction())
    back = read_volume(_write(ct, tmp_path / name))
    assert back.array.dtype == np.int16
    assert np.array_equal(back.array, ct.array)
    # NIfTI keeps its affine in float32, so it is exact to about 1e-5 mm; the others to 1e-9 mm
    atol = 1e-4 if ".nii" in name else 1e-9
    assert back.geometry.same_grid(ct.geometry, atol=atol)
    assert back.dicom is None
    assert back.source == str(tmp_path / name)


def test_nrrd_round_trip_is_exact_for_all_48_signed_axis_permutations(tmp_path: Path) -> None:
    count = 0
    for n, direction in enumerate(signed_permutations()):
        ct = make_ct(shape_kji=(8, 9, 10), direction=direction, seed=n)
        back = read_volume(_write(ct, tmp_path / f"ct{n}.nrrd"))
        assert np.array_equal(back.array, ct.array)
        assert np.array_equal(back.geometry.direction_array, direction)
        assert np.allclose(back.geometry.index_to_lps([9, 8, 7]), ct.geometry.index_to_lps([9, 8, 7]), atol=1e-9)
        count += 1
    assert count == 48


def test_voxel_position_is_hand_computable(tmp_path: Path) -> None:
    ct = make_ct()
    back = read_volume(_write(ct, tmp_path / "ct.nrrd"))
    # voxel (i=2, j=3, k=4): origin + (2*0.7, 3*0.8, 4*2.5) with identity direction
    expected = np.add(ORIGIN_LPS_MM, [1.4, 2.4, 10.0])
    assert np.allclose(back.geometry.index_to_lps([2, 3, 4]), expected)
    assert back.geometry.spacing_mm == pytest.approx(SPACING_MM)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.int32, np.int16), (np.uint16, np.int16), (np.float64, np.float32), (np.float32, np.float32)],
)
def test_voxel_type_becomes_int16_or_float32_with_same_values(tmp_path: Path, dtype: type, expected: type) -> None:
    array = make_ct().array.astype(np.float64)
    if dtype == np.uint16:
        array = array + 1000.0  # unsigned files hold HU only when shifted; -1000 becomes 0 ...
        array[0, 0, 0] = 0
    ct = make_ct()
    image = sitk.GetImageFromArray(array.astype(dtype))
    ct.geometry.apply_to(image)
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(path))
    if dtype == np.uint16:
        with pytest.raises(ValueError, match="not Hounsfield units"):  # ... and are then refused as raw values
            read_volume(path)
        return
    back = read_volume(path)
    assert back.array.dtype == expected
    assert np.array_equal(back.array, array.astype(expected))


def test_int32_beyond_int16_is_kept_as_float32(tmp_path: Path) -> None:
    array = make_ct().array.astype(np.int32)
    array[0, 0, 1] = 40000
    path = tmp_path / "ct.mha"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    back = read_volume(path)
    assert back.array.dtype == np.float32
    assert back.array[0, 0, 1] == 40000.0


def test_inspect_prints_geometry_as_json(tmp_path: Path) -> None:
    direction = np.diag([-1.0, 1.0, -1.0])  # i towards R, k towards I: orientation code "RPI"
    ct = make_ct(direction=direction)
    path = _write(ct, tmp_path / "ct.nrrd")
    result = run_cli("inspect", str(path), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["size_ijk"] == [12, 10, 9]
    assert info["spacing_mm"] == pytest.approx(list(SPACING_MM))
    assert info["origin_lps_mm"] == pytest.approx(list(ORIGIN_LPS_MM))
    assert info["direction"] == [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]
    assert info["orientation"] == "RPI"
    assert info["hu_min"] == float(ct.array.min())
    assert info["hu_max"] == float(ct.array.max())
    assert "dicom" not in info


def test_inspect_text_names_orientation_and_range(tmp_path: Path) -> None:
    path = _write(make_ct(), tmp_path / "ct.nii.gz")
    result = run_cli("inspect", str(path))
    assert result.returncode == 0, result.stderr
    assert "orientation   LPS" in result.stdout
    assert "size (i,j,k)  12 x 10 x 9 (int16)" in result.stdout
    assert result.stderr == ""


def test_geometry_from_file_matches_sitk_physical_points(tmp_path: Path) -> None:
    ct = make_ct(direction=oblique_direction())
    path = _write(ct, tmp_path / "ct.mha")
    image = sitk.ReadImage(str(path))
    back = read_volume(path)
    for ijk in [(0, 0, 0), (11, 9, 8), (3, 7, 2)]:
        assert np.allclose(back.geometry.index_to_lps(ijk), image.TransformIndexToPhysicalPoint(ijk), atol=1e-9)
    assert isinstance(back.geometry, Geometry)


def _nii_gz(tmp_path: Path) -> tuple[CTVolume, Path, bytes]:
    ct = make_ct(shape_kji=(9, 40, 40))
    path = _write(ct, tmp_path / "ct.nii.gz")
    return ct, path, path.read_bytes()


def test_nii_gz_cut_short_is_refused_although_its_stream_starts_fine(tmp_path: Path) -> None:
    # a copy interrupted mid-way: no gzip trailer, ITK alone would zero-fill the missing voxels
    _, path, packed = _nii_gz(tmp_path)
    path.write_bytes(packed[: len(packed) - 200])
    with pytest.raises(VolumeReadError, match="truncated or corrupt"):
        read_volume(path)


def test_nii_gz_with_a_corrupt_middle_is_refused(tmp_path: Path) -> None:
    # the trailer is intact (so the quick length check would pass): the damage must still be noticed
    _, path, packed = _nii_gz(tmp_path)
    broken = bytearray(packed)
    for offset in range(len(broken) // 2, len(broken) // 2 + 64):
        broken[offset] ^= 0xA5
    path.write_bytes(bytes(broken))
    with pytest.raises(VolumeReadError, match="corrupt"):
        read_volume(path)


def test_multi_member_nii_gz_reads_back_exactly(tmp_path: Path) -> None:
    # bgzip-style files hold several gzip members: the last trailer counts only the last member's bytes
    ct, path, packed = _nii_gz(tmp_path)
    raw = gzip.decompress(packed)
    half = len(raw) // 2
    path.write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    back = read_volume(path)
    assert np.array_equal(back.array, ct.array)
