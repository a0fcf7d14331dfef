"""Malformed CT inputs: each case builds its own bad file or folder and expects a specific, actionable error."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from _io_helpers import edit_series, hu_pattern, make_ct, tree_digest, write_image, write_series
from conftest import require_tool, run_cli
from pydicom.data import get_testdata_file

from SmoothSegNetLib.errors import DicomSeriesError, InputError, VolumeReadError, VolumeValidationError
from SmoothSegNetLib.io import read_volume

SHAPE = (9, 10, 12)  # k, j, i
RAW = hu_pattern(SHAPE).tobytes()


def _nrrd(path: Path, directions: str = "(1,0,0) (0,1,0) (0,0,1)", data: bytes = RAW, **fields: str) -> Path:
    """A hand-written NRRD header (so that broken headers can be built) followed by raw int16 data."""
    header = {
        "type": "short",
        "dimension": "3",
        "space": "left-posterior-superior",
        "sizes": f"{SHAPE[2]} {SHAPE[1]} {SHAPE[0]}",
        "space directions": directions,
        "kinds": "domain domain domain",
        "endian": "little",
        "encoding": "raw",
        "space origin": "(0,0,0)",
        **fields,
    }
    text = "NRRD0004\n" + "".join(f"{key}: {value}\n" for key, value in header.items()) + "\n"
    path.write_bytes(text.encode() + data)
    return path


def _series(tmp: Path, edit: Callable[[pydicom.Dataset, int], None] | None = None, **kwargs: Any) -> Path:
    paths = write_series(make_ct(), tmp / "series", **kwargs)
    if edit is not None:
        edit_series(paths, edit)
    return tmp / "series"


def _shift_position(delta_by_k: Callable[[int], tuple[float, float, float]]) -> Callable[[pydicom.Dataset, int], None]:
    def edit(ds: pydicom.Dataset, k: int) -> None:
        ds.ImagePositionPatient = [float(v) + d for v, d in zip(ds.ImagePositionPatient, delta_by_k(k))]

    return edit


def _only_slice(k_edit: int, keyword: str, value: Any) -> Callable[[pydicom.Dataset, int], None]:
    def edit(ds: pydicom.Dataset, k: int) -> None:
        if k == k_edit:
            setattr(ds, keyword, value)

    return edit


def _array_file(tmp: Path, array: np.ndarray, name: str = "ct.nrrd", **kw: Any) -> Path:
    return write_image(tmp / name, array, **kw)


def _bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _broken_link(tmp: Path) -> Path:
    (tmp / "link.nrrd").symlink_to(tmp / "gone.nrrd")
    return tmp / "link.nrrd"


def _empty_folder(tmp: Path) -> Path:
    (tmp / "d").mkdir()
    return tmp / "d"


def _missing_slice(tmp: Path) -> Path:
    folder = _series(tmp)
    (folder / "CT0004.dcm").unlink()
    return folder


def _intercept_dropped(tmp: Path) -> Path:
    """Stored values written with intercept -1024, then the intercept set to 0 (a classic anonymiser bug)."""
    folder = _series(tmp, rescale_intercept=-1024.0)
    edit_series(sorted(folder.glob("*.dcm")), lambda ds, k: setattr(ds, "RescaleIntercept", "0"))
    return folder


def _truncate(path: Path, keep: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep])
    return path


def _gz_nrrd_truncated(tmp: Path) -> Path:
    path = tmp / "ct.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(hu_pattern(SHAPE)), str(path), True)
    return _truncate(path, path.stat().st_size - 200)


def _nifti_truncated(tmp: Path) -> Path:
    path = tmp / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(hu_pattern(SHAPE)), str(path))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return path


def _nii_truncated(tmp: Path) -> Path:
    path = tmp / "ct.nii"
    sitk.WriteImage(sitk.GetImageFromArray(hu_pattern(SHAPE)), str(path))
    return _truncate(path, 352 + 9 * 10 * 12)  # header + vox_offset padding + half of the int16 voxels


def _mha_truncated(tmp: Path) -> Path:
    path = tmp / "ct.mha"
    sitk.WriteImage(sitk.GetImageFromArray(hu_pattern(SHAPE)), str(path))
    return _truncate(path, path.stat().st_size - 500)


def _mhd_without_data(tmp: Path) -> Path:
    path = tmp / "ct.mhd"
    path.write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 12 10 9\nElementSpacing = 1 1 1\n"
        "ElementType = MET_SHORT\nElementDataFile = ct.raw\n"
    )
    return path


def _single_dicom_file(tmp: Path) -> Path:
    return write_series(make_ct(), tmp / "s")[0]


def _copy_test_file(tmp: Path, name: str, copies: int = 1) -> Path:
    folder = tmp / "dicom"
    folder.mkdir()
    for n in range(copies):
        shutil.copy(get_testdata_file(name), folder / f"{n}.dcm")  # type: ignore[arg-type]
    return folder


def _two_series(tmp: Path) -> Path:
    write_series(make_ct(), tmp / "a", series_description="arterial")
    write_series(make_ct(), tmp / "b", series_description="venous")
    return tmp


def _truncated_dicom_pixels(tmp: Path) -> Path:
    folder = _series(tmp)
    _truncate(folder / "CT0005.dcm", (folder / "CT0005.dcm").stat().st_size - 100)
    return folder


def _corrupt_dicom_header(tmp: Path) -> Path:
    folder = _series(tmp)
    data = (folder / "CT0003.dcm").read_bytes()
    (folder / "CT0003.dcm").write_bytes(data[:132] + b"\x02\x00\x10\x00UI\xff\xff" + b"\x00" * 20)
    return folder


def _dicom_header_cut_short(tmp: Path) -> Path:
    folder = _series(tmp)
    _truncate(folder / "CT0007.dcm", 400)
    return folder


def _multiframe(tmp: Path) -> Path:
    return _series(tmp, lambda ds, k: setattr(ds, "NumberOfFrames", 2))


def _rgb_dicom(tmp: Path) -> Path:
    return _series(
        tmp, lambda ds, k: (setattr(ds, "SamplesPerPixel", 3), setattr(ds, "PhotometricInterpretation", "RGB"))
    )


def _four_d(tmp: Path) -> Path:
    path = tmp / "ct.nii.gz"
    image = sitk.JoinSeries([sitk.GetImageFromArray(hu_pattern(SHAPE))] * 2)
    sitk.WriteImage(image, str(path))
    return path


def _raw_unsigned(tmp: Path) -> Path:
    return _array_file(tmp, (hu_pattern(SHAPE).astype(np.int32) + 1024).astype(np.uint16))


def _nan(tmp: Path) -> Path:
    array = hu_pattern(SHAPE).astype(np.float32)
    array[4, 5, 6] = np.nan
    return _array_file(tmp, array)


def _inf(tmp: Path) -> Path:
    array = hu_pattern(SHAPE).astype(np.float32)
    array[0, 0, 0] = -np.inf
    return _array_file(tmp, array)


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], Path]
    error: type[InputError]
    phrase: str
    kwargs: dict[str, Any] | None = None


CASES: dict[str, Case] = {
    "missing path": Case(lambda t: t / "nope.nrrd", VolumeReadError, "does not exist"),
    "broken symlink": Case(_broken_link, VolumeReadError, "broken symbolic"),
    "empty file": Case(lambda t: _bytes(t / "ct.nrrd", b""), VolumeReadError, "is empty (0 bytes)"),
    "truncated raw nrrd": Case(
        lambda t: _nrrd(t / "ct.nrrd", data=RAW[:1000]), VolumeReadError, "truncated or corrupt"
    ),
    "truncated gzip nrrd": Case(_gz_nrrd_truncated, VolumeReadError, "truncated or corrupt"),
    "truncated nifti.gz (ITK would zero-fill)": Case(
        _nifti_truncated, VolumeReadError, "1,256 bytes of data where the header announces 2,512"
    ),
    "truncated nifti": Case(_nii_truncated, VolumeReadError, "1,432 bytes of data where the header announces 2,512"),
    "truncated mha": Case(_mha_truncated, VolumeReadError, "truncated or corrupt"),
    "corrupt nrrd header": Case(
        lambda t: _bytes(t / "ct.nrrd", b"hello, not a header\n" * 20), VolumeReadError, "cannot read the header"
    ),
    "corrupt nifti header": Case(
        lambda t: _bytes(t / "ct.nii", bytes(range(256)) * 2), VolumeReadError, "not recognized as a NIFTI"
    ),
    "mhd data file missing": Case(_mhd_without_data, VolumeReadError, "ct.raw named in the header of"),
    "unknown extension": Case(lambda t: _bytes(t / "ct.png", b"\x89PNG...."), VolumeReadError, "unknown volume format"),
    "single dicom file": Case(_single_dicom_file, VolumeReadError, "give the folder that holds the whole DICOM series"),
    "folder without dicom": Case(
        lambda t: _bytes(t / "d" / "notes.txt", b"x" * 200).parent, DicomSeriesError, "no DICOM image files"
    ),
    "empty folder": Case(_empty_folder, DicomSeriesError, "0 files looked at"),
    "series uid for a file": Case(
        lambda t: _array_file(t, hu_pattern(SHAPE)),
        VolumeReadError,
        "is a file, not a DICOM folder",
        {"series_uid": "1.2.3"},
    ),
    "mr modality": Case(lambda t: _copy_test_file(t, "MR_small.dcm"), DicomSeriesError, "modality MR"),
    "pet modality": Case(
        lambda t: _series(t, lambda ds, k: setattr(ds, "Modality", "PT")), DicomSeriesError, "modality PT"
    ),
    "one ct slice (pydicom CT_small)": Case(
        lambda t: _copy_test_file(t, "CT_small.dcm"), VolumeValidationError, "too few slices: 1"
    ),
    "2d image": Case(lambda t: _array_file(t, hu_pattern((1, 10, 12))[0]), VolumeValidationError, "is a 2D image"),
    "too few slices": Case(
        lambda t: _array_file(t, hu_pattern((3, 10, 12))), VolumeValidationError, "too few slices: 3"
    ),
    "too few rows": Case(lambda t: _array_file(t, hu_pattern((9, 4, 12))), VolumeValidationError, "too few rows: 4"),
    "rgb image": Case(
        lambda t: _array_file(t, np.zeros((9, 10, 12, 3), np.uint8)), VolumeValidationError, "3 components per voxel"
    ),
    "4d image": Case(_four_d, VolumeValidationError, "is a 4D image"),
    "nan voxels": Case(_nan, VolumeValidationError, "1 NaN or infinite"),
    "inf voxels": Case(_inf, VolumeValidationError, "NaN or infinite"),
    "values in [0, 1]": Case(
        lambda t: _array_file(t, np.linspace(0, 1, 9 * 10 * 12, dtype=np.float32).reshape(SHAPE)),
        VolumeValidationError,
        "all values lie in [0, 1]",
    ),
    "values in [0, 255]": Case(
        lambda t: _array_file(t, (np.arange(9 * 10 * 12) % 256).astype(np.uint8).reshape(SHAPE)),
        VolumeValidationError,
        "all values lie in [0, 255]",
    ),
    "raw unsigned without intercept": Case(_raw_unsigned, VolumeValidationError, "without the rescale intercept"),
    "constant image": Case(
        lambda t: _array_file(t, np.full(SHAPE, -1000, np.int16)), VolumeValidationError, "is constant"
    ),
    "zero spacing": Case(
        lambda t: _nrrd(t / "ct.nrrd", "(0,0,0) (0,1,0) (0,0,1)"),
        VolumeValidationError,
        "invalid voxel spacing along i: 0.0",
    ),
    "negative spacing": Case(
        lambda t: _bytes(
            t / "ct.mha",
            b"ObjectType = Image\nNDims = 3\nDimSize = 12 10 9\nElementSpacing = 1 -2 1\nElementType = MET_SHORT\n"
            b"ElementDataFile = LOCAL\n" + RAW,
        ),
        VolumeValidationError,
        "invalid voxel spacing along j: -2.0",
    ),
    "spacing too small": Case(
        lambda t: _nrrd(t / "ct.nrrd", "(0.01,0,0) (0,1,0) (0,0,1)"),
        VolumeValidationError,
        "absurd voxel spacing along i: 0.01",
    ),
    "spacing too large": Case(
        lambda t: _nrrd(t / "ct.nrrd", "(1,0,0) (0,1,0) (0,0,50)"),
        VolumeValidationError,
        "absurd voxel spacing along k: 50",
    ),
    "sheared file grid": Case(
        lambda t: _nrrd(t / "ct.nrrd", "(1,0,0) (0,1,0) (0,0.5,1)"), VolumeValidationError, "26.57 degrees off"
    ),
    "file beyond memory budget": Case(
        lambda t: _array_file(t, hu_pattern(SHAPE)), VolumeValidationError, "crop the CT", {"max_voxels": 1000}
    ),
    "dicom beyond memory budget": Case(
        lambda t: _series(t), VolumeValidationError, "1,080 voxels exceeds", {"max_voxels": 1000}
    ),
    "dicom missing slice": Case(_missing_slice, VolumeValidationError, "missing slices"),
    "dicom non-uniform spacing": Case(
        lambda t: _series(t, _shift_position(lambda k: (0.0, 0.0, 0.5 * k * k))),
        VolumeValidationError,
        "non-uniform slice spacing",
    ),
    "dicom gantry tilt": Case(
        lambda t: _series(t, _shift_position(lambda k: (0.0, 0.5 * k, 0.0))), VolumeValidationError, "gantry tilt"
    ),
    "dicom duplicate positions": Case(
        lambda t: _series(t, _only_slice(3, "ImagePositionPatient", [-100.5, 33.25, 12.0])),
        VolumeValidationError,
        "duplicate slice position",
    ),
    "dicom inconsistent orientation": Case(
        lambda t: _series(t, _only_slice(5, "ImageOrientationPatient", [0, 1, 0, -1, 0, 0])),
        VolumeValidationError,
        "different ImageOrientationPatient",
    ),
    "dicom inconsistent pixel spacing": Case(
        lambda t: _series(t, _only_slice(2, "PixelSpacing", [0.9, 0.7])),
        VolumeValidationError,
        "different PixelSpacing",
    ),
    "dicom inconsistent image size": Case(
        lambda t: _series(t, _only_slice(6, "Rows", 11)), VolumeValidationError, "different Rows"
    ),
    "dicom missing position": Case(
        lambda t: _series(t, lambda ds, k: delattr(ds, "ImagePositionPatient") if k == 1 else None),
        VolumeValidationError,
        "lacks ImagePositionPatient",
    ),
    "dicom orientation not perpendicular": Case(
        lambda t: _series(t, lambda ds, k: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0.5, 0.8660254, 0.1])),
        VolumeValidationError,
        "must be perpendicular unit vectors",
    ),
    "dicom several ct series": Case(_two_series, DicomSeriesError, "holds 2 CT series"),
    "dicom unknown series uid": Case(lambda t: _series(t), DicomSeriesError, "is not in", {"series_uid": "9.9.9"}),
    "dicom truncated pixel data": Case(_truncated_dicom_pixels, VolumeReadError, "cannot decode the pixel data"),
    "dicom corrupt header": Case(_corrupt_dicom_header, VolumeReadError, "lacks SOPClassUID and SeriesInstanceUID"),
    "dicom header cut short": Case(_dicom_header_cut_short, VolumeReadError, "CT0007.dcm starts like a DICOM file"),
    "dicom multi-frame": Case(_multiframe, VolumeValidationError, "multi-frame"),
    "dicom rgb": Case(_rgb_dicom, VolumeValidationError, "3 components per voxel"),
    "dicom raw values (intercept dropped)": Case(
        _intercept_dropped, VolumeValidationError, "without the rescale intercept"
    ),
}


def test_there_are_at_least_30_distinct_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input_raises_specific_error(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = case.build(tmp_path)
    before = tree_digest(path) if path.exists() else None
    with pytest.raises(case.error) as info:
        read_volume(path, **(case.kwargs or {}))
    assert case.phrase in str(info.value), str(info.value)
    if before is not None:
        assert tree_digest(path) == before  # the input is untouched


@pytest.mark.parametrize(
    "name",
    [
        "missing path",
        "truncated raw nrrd",
        "corrupt nifti header",
        "mr modality",
        "dicom several ct series",
        "nan voxels",
        "dicom gantry tilt",
        "mhd data file missing",
    ],
)
def test_cli_inspect_reports_one_error_line_and_exit_2(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = case.build(tmp_path)
    before = tree_digest(path) if path.exists() else None
    listing = sorted(os.listdir(tmp_path))
    result = run_cli("inspect", str(path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and case.phrase in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == listing
    if before is not None:
        assert tree_digest(path) == before


def _as_unprivileged(args: list[str]) -> list[str]:
    """The command, run without the capabilities that let root read any file (so chmod 000 bites)."""
    if os.geteuid() != 0:
        return args
    return [require_tool("setpriv"), "--bounding-set=-dac_override,-dac_read_search", *args]


@pytest.mark.parametrize("target", ["file", "folder", "file in a dicom folder"])
def test_permission_denied_is_an_input_error(tmp_path: Path, target: str) -> None:
    if target == "file":
        path = locked = _array_file(tmp_path, hu_pattern(SHAPE))
    elif target == "folder":
        path = locked = _series(tmp_path)
    else:
        path = _series(tmp_path)
        locked = path / "CT0004.dcm"
    locked.chmod(0)
    try:
        command = [sys.executable, "-m", "SmoothSegNetLib", "inspect", str(path)]
        result = subprocess.run(_as_unprivileged(command), capture_output=True, text=True, check=False, timeout=300)
    finally:
        locked.chmod(0o755 if locked.is_dir() else 0o644)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: permission denied reading")
    assert str(locked) in result.stderr


def test_folder_given_where_a_volume_file_is_expected(tmp_path: Path) -> None:
    from SmoothSegNetLib.io.readers import read_volume_file

    with pytest.raises(VolumeReadError, match="is a folder but a file is expected"):
        read_volume_file(_series(tmp_path))


def test_file_given_where_a_dicom_folder_is_expected(tmp_path: Path) -> None:
    from SmoothSegNetLib.io import list_ct_series

    with pytest.raises(VolumeReadError, match="is a file but a folder is expected"):
        list_ct_series(_array_file(tmp_path, hu_pattern(SHAPE)))
