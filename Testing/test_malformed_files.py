"""Malformed NRRD/NHDR/MHA/MHD/NIfTI files that ITK reads without a word into a wrong image (issue 17).

Each case builds its input from a valid small CT, expects a specific error from ``read_volume``, and the CLI
contract from ``inspect``: exit status 2, one ``error:`` line, no traceback, nothing written, input unchanged.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from _io_helpers import hu_pattern, tree_digest, write_image
from conftest import run_cli

from SmoothSegNetLib.errors import InputError, VolumeReadError, VolumeValidationError
from SmoothSegNetLib.io import read_volume

SHAPE = (9, 10, 12)  # k, j, i
ARRAY = hu_pattern(SHAPE)


def nrrd_text(sizes: str = "12 10 9", **fields: str) -> str:
    header = {
        "type": "short",
        "dimension": "3",
        "space": "left-posterior-superior",
        "sizes": sizes,
        "space directions": "(1,0,0) (0,1,0) (0,0,1)",
        "kinds": "domain domain domain",
        "endian": "little",
        "encoding": "raw",
        "space origin": "(0,0,0)",
        **{key.replace("_", " "): value for key, value in fields.items()},
    }
    return "NRRD0004\n" + "".join(f"{key}: {value}\n" for key, value in header.items()) + "\n"


def nrrd(path: Path, data: bytes = ARRAY.tobytes(), **fields: str) -> Path:
    """A hand-written NRRD (so that broken headers can be built) with attached raw int16 data."""
    path.write_bytes(nrrd_text(**fields).encode() + data)
    return path


def mha(path: Path, data: bytes = ARRAY.tobytes(), offset: str = "0 0 0", data_file: str = "LOCAL") -> Path:
    header = (
        "ObjectType = Image\nNDims = 3\nDimSize = 12 10 9\nElementSpacing = 1 1 1\n"
        f"Offset = {offset}\nElementType = MET_SHORT\nElementDataFile = {data_file}\n"
    )
    path.write_bytes(header.encode() + (data if data_file == "LOCAL" else b""))
    return path


def nifti(tmp: Path, patch: dict[int, tuple[str, float]], name: str = "ct.nii") -> Path:
    """A NIfTI-1 written by SimpleITK, then header fields at byte offsets patched (``offset: (format, value)``)."""
    path = tmp / name
    image = sitk.GetImageFromArray(ARRAY)
    image.SetSpacing((0.8, 0.9, 2.5))
    sitk.WriteImage(image, str(path))
    data = bytearray(gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes())
    for offset, (fmt, value) in patch.items():
        data[offset : offset + struct.calcsize(fmt)] = struct.pack(f"<{fmt}", value)
    path.write_bytes(gzip.compress(bytes(data)) if name.endswith(".gz") else bytes(data))
    return path


# NIfTI-1 header offsets: pixdim[1] 80, scl_slope 112, scl_inter 116, qform_code 252, quatern_b/c/d 256/260/264.
QUATERNION_090 = {252: ("h", 1), 256: ("f", 0.9), 260: ("f", 0.9), 264: ("f", 0.9)}


def nifti_gz_cut_with_forged_trailer(tmp: Path) -> Path:
    """A .nii.gz cut in the middle of its compressed stream, whose last 4 bytes are set to the full length.

    The cut file's last 4 bytes are then read as the gzip trailer's ISIZE and match what the header announces.
    """
    path = tmp / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(ARRAY), str(path))
    full = len(gzip.decompress(path.read_bytes()))
    cut = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(cut[:-4] + struct.pack("<I", full))
    return path


def detached(tmp: Path, data_file: str, kind: str = "nhdr") -> Path:
    if kind == "nhdr":
        path = tmp / "ct.nhdr"
        path.write_text(nrrd_text(data_file=data_file))
        return path
    return mha(tmp / "ct.mhd", data_file=data_file)


def fifo_data_file(tmp: Path) -> Path:
    os.mkfifo(tmp / "voxels.raw")
    return detached(tmp, "voxels.raw")


def fifo_input(tmp: Path) -> Path:
    os.mkfifo(tmp / "ct.nrrd")
    return tmp / "ct.nrrd"


def scaled(tmp: Path, factor: float) -> Path:
    return write_image(tmp / "ct.nrrd", ARRAY.astype(np.float32) * np.float32(factor))


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], Path]
    error: type[InputError]
    phrase: str


CASES: dict[str, Case] = {
    "nrrd origin nan": Case(
        lambda t: nrrd(t / "ct.nrrd", space_origin="(nan,nan,nan)"), VolumeValidationError, "unknown or invalid origin"
    ),
    "mha origin nan": Case(lambda t: mha(t / "ct.mha", offset="nan nan nan"), VolumeValidationError, "Offset nan"),
    "nrrd origin 1e308": Case(
        lambda t: nrrd(t / "ct.nrrd", space_origin="(1e308,0,0)"), VolumeValidationError, "invalid origin (1e+308"
    ),
    "mha origin -1e308": Case(
        lambda t: mha(t / "ct.mha", offset="0 -1e308 0"), VolumeValidationError, "invalid origin (0.0, -1e+308"
    ),
    "nifti pixdim 0": Case(lambda t: nifti(t, {80: ("f", 0.0)}), VolumeValidationError, "pixdim along i is 0.0"),
    "nifti pixdim nan": Case(
        lambda t: nifti(t, {84: ("f", float("nan"))}, "ct.nii.gz"), VolumeValidationError, "pixdim along j is nan"
    ),
    "nifti qform nan quaternion": Case(
        lambda t: nifti(t, {252: ("h", 1), 260: ("f", float("nan"))}), VolumeValidationError, "invalid qform"
    ),
    "nifti quaternion b=c=d=0.9": Case(
        lambda t: nifti(t, QUATERNION_090), VolumeValidationError, "b²+c²+d² = 2.43 > 1"
    ),
    "nifti.gz cut, gzip trailer forged": Case(
        nifti_gz_cut_with_forged_trailer, VolumeReadError, "truncated or corrupt"
    ),
    "nrrd sizes smaller than the data": Case(
        lambda t: nrrd(t / "ct.nrrd", sizes="12 10 8"), VolumeReadError, "holds 2,160 bytes of raw voxel data"
    ),
    "nhdr sizes smaller than its data file": Case(
        lambda t: (t / "ct.raw").write_bytes(ARRAY.tobytes() * 2) and detached(t, "ct.raw"),
        VolumeReadError,
        "account for 2,160",
    ),
    "mha data longer than its DimSize": Case(
        lambda t: mha(t / "ct.mha", data=ARRAY.tobytes() + b"\0" * 240), VolumeReadError, "2,400 bytes of raw"
    ),
    "nhdr data file /dev/urandom": Case(
        lambda t: detached(t, "/dev/urandom"), VolumeReadError, "data file /dev/urandom named in the header"
    ),
    "mhd data file /dev/zero": Case(
        lambda t: detached(t, "/dev/zero", "mhd"), VolumeReadError, "is a character device, not a regular file"
    ),
    "nhdr data file a fifo": Case(fifo_data_file, VolumeReadError, "is a FIFO (named pipe), not a regular file"),
    "nhdr data file missing": Case(lambda t: detached(t, "gone.raw"), VolumeReadError, "gone.raw named in the header"),
    "input /dev/zero": Case(lambda t: Path("/dev/zero"), VolumeReadError, "is a character device, not a regular"),
    "input a fifo": Case(fifo_input, VolumeReadError, "is a FIFO (named pipe), not a regular file"),
    "4d nrrd with a list axis": Case(
        lambda t: nrrd(
            t / "ct.nrrd",
            data=ARRAY.tobytes() * 2,
            dimension="4",
            sizes="2 12 10 9",
            kinds="list domain domain domain",
            space_directions="none (1,0,0) (0,1,0) (0,0,1)",
        ),
        VolumeValidationError,
        "is a 4D image (sizes 2 12 10 9",
    ),
    "nifti intercept 1e30": Case(
        lambda t: nifti(t, {112: ("f", 1.0), 116: ("f", 1e30)}), VolumeValidationError, "far outside any CT"
    ),
    "nifti slope 1e30": Case(lambda t: nifti(t, {112: ("f", 1e30)}), VolumeValidationError, "far outside any CT"),
    "ct x 1000": Case(lambda t: scaled(t, 1000.0), VolumeValidationError, "far outside any CT"),
}


def _digest(path: Path) -> str | None:
    """The input's content digest (None for a device or FIFO, which cannot be read back)."""
    return tree_digest(path) if path.is_file() else None


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_file_is_refused(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = case.build(tmp_path)
    before = _digest(path)
    with pytest.raises(case.error) as info:
        read_volume(path)
    assert case.phrase in str(info.value), str(info.value)
    assert _digest(path) == before


@pytest.mark.parametrize("name", list(CASES))
def test_cli_inspect_contract(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = case.build(tmp_path)
    before, listing = _digest(path), sorted(os.listdir(tmp_path))
    result = run_cli("inspect", str(path), timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and case.phrase in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == listing and _digest(path) == before


def test_a_valid_nifti_with_qform_and_sform_is_still_read(tmp_path: Path) -> None:
    """The NIfTI checks do not refuse what SimpleITK writes (both forms set, a 180-degree rotation)."""
    image = sitk.GetImageFromArray(ARRAY)
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    image.SetSpacing((0.8, 0.9, 2.5))
    for name in ("ct.nii", "ct.nii.gz"):
        sitk.WriteImage(image, str(tmp_path / name))
        ct = read_volume(tmp_path / name)
        np.testing.assert_array_equal(ct.array, ARRAY)
        np.testing.assert_allclose(ct.geometry.direction_array, np.diag([-1.0, -1.0, 1.0]), atol=1e-6)
        assert ct.geometry.spacing_mm == pytest.approx((0.8, 0.9, 2.5))


def test_detached_headers_with_regular_data_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "ct.raw").write_bytes(ARRAY.tobytes())
    for kind in ("nhdr", "mhd"):
        ct = read_volume(detached(tmp_path, "ct.raw", kind))
        np.testing.assert_array_equal(ct.array, ARRAY)


def test_little_endian_data_labelled_big_endian_reads_as_other_values(tmp_path: Path) -> None:
    """The header cannot tell: the values are byte-swapped but within int16. The plausibility check before
    segmentation refuses them (Testing/test_plausibility.py::test_byte_swapped_ct_is_refused)."""
    ct = read_volume(nrrd(tmp_path / "ct.nrrd", endian="big"))
    np.testing.assert_array_equal(ct.array, ARRAY.byteswap())


@pytest.mark.parametrize("budget", [0, -5])
def test_a_non_positive_voxel_budget_is_refused(tmp_path: Path, budget: int) -> None:
    with pytest.raises(VolumeValidationError, match=f"max_voxels must be a positive number of voxels, got {budget}"):
        read_volume(nrrd(tmp_path / "ct.nrrd"), max_voxels=budget)
