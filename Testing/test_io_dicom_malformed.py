"""Malformed DICOM input (issues 12 and 17): each case builds its input from a series our writer makes (classic,
or converted to Enhanced CT by highdicom), breaks it with pydicom, and checks the contract — the specific
InputError from ``read_volume``; through ``inspect`` and ``segment``: exit status 2, one ``error:`` line, no
traceback, nothing written, the input unchanged. Folder clutter that is ignored is checked to be read, with one
warning that counts it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _dicom_helpers import enhanced_from_classic, enhanced_series, move_to_per_frame, per_frame, set_raw
from _io_helpers import edit_series, make_ct, tree_digest, write_series
from conftest import run_cli
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from SmoothSegNetLib import cli
from SmoothSegNetLib.errors import InputError, VolumeReadError, VolumeValidationError
from SmoothSegNetLib.io import read_volume
from Testing._model_helpers import write_threshold_model

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")  # pydicom, on the broken values


def _classic(tmp: Path, edit: Callable[[Dataset, int], None] | None = None, **kwargs: object) -> Path:
    paths = write_series(make_ct(), tmp / "series", **kwargs)
    if edit is not None:
        edit_series(paths, edit)
    return tmp / "series"


def _on_slice(k_edit: int, edit: Callable[[Dataset], None]) -> Callable[[Dataset, int], None]:
    return lambda ds, k: edit(ds) if k == k_edit else None


def _from_slice(k_first: int, edit: Callable[[Dataset], None]) -> Callable[[Dataset, int], None]:
    return lambda ds, k: edit(ds) if k >= k_first else None


def _palette(with_table: bool) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        ds.PhotometricInterpretation = "PALETTE COLOR"
        if with_table:
            for colour in ("Red", "Green", "Blue"):
                ds.add_new(f"{colour}PaletteColorLookupTableDescriptor", "US", [256, 0, 16])
                ds.add_new(f"{colour}PaletteColorLookupTableData", "OW", np.arange(256, dtype="<u2").tobytes())

    return edit


def _shared_uid(tmp: Path) -> Path:
    folder = _classic(tmp)
    uid = pydicom.dcmread(folder / "CT0002.dcm").SOPInstanceUID
    edit_series([folder / "CT0007.dcm"], lambda ds, k: setattr(ds, "SOPInstanceUID", uid))
    return folder


def _corrupt_rle(tmp: Path) -> Path:
    """Slice 5's RLE header claims 3 segments where 16-bit pixels have 2 (pydicom logs an ERROR + traceback)."""
    folder = _classic(tmp, transfer_syntax="rle_lossless")
    ds = pydicom.dcmread(folder / "CT0005.dcm")
    data = bytearray(ds.PixelData)
    fragment = data.find(b"\xfe\xff\x00\xe0", 8) + 8  # after the basic offset table item: the RLE header
    data[fragment : fragment + 4] = (3).to_bytes(4, "little")
    ds.PixelData = bytes(data)
    ds.save_as(folder / "CT0005.dcm", enforce_file_format=True)
    return folder


def _frame_item(frame: int, group: str, **values: object) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        if group not in per_frame(ds, frame):
            move_to_per_frame(ds, group)
        item = getattr(per_frame(ds, frame), group)[0]
        for keyword, value in values.items():
            setattr(item, keyword, value)

    return edit


def _del_positions(frames: range) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for frame in frames:
            del per_frame(ds, frame).PlanePositionSequence

    return edit


def _frame_position(frame: int, like: int | None = None, shift: float = 0.0) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        source = per_frame(ds, like or frame).PlanePositionSequence[0].ImagePositionPatient
        position = [float(v) for v in source]
        position[2] += shift
        per_frame(ds, frame).PlanePositionSequence[0].ImagePositionPatient = position

    return edit


def _short_pixel_data(ds: Dataset) -> None:
    ds.PixelData = ds.PixelData[: len(ds.PixelData) * 8 // 9]  # 8 frames of data, 9 announced


def _enhanced_and_classic(tmp: Path) -> Path:
    """An Enhanced object filed into the classic series it was made from (same SeriesInstanceUID)."""
    paths = write_series(make_ct(), tmp / "series")
    _, ds = enhanced_from_classic(paths, tmp / "converted")
    ds.SeriesInstanceUID = pydicom.dcmread(paths[0]).SeriesInstanceUID
    ds.save_as(tmp / "series" / "enhanced.dcm", enforce_file_format=True)
    shutil.rmtree(tmp / "converted")
    return tmp / "series"


def _two_enhanced(tmp: Path) -> Path:
    folder = enhanced_series(tmp)
    ds = pydicom.dcmread(folder / "enhanced.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(folder / "second.dcm", enforce_file_format=True)
    return folder


ROTATED = [0, 1, 0, -1, 0, 0]  # rows along P, columns along R: 90 degrees from the series' axial frames


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], Path]
    error: type[InputError]
    phrase: str


CASES: dict[str, Case] = {
    # issue 12: malformed Enhanced CT, missing per-frame positions, inconsistent frame geometry
    "enhanced: NumberOfFrames above the per-frame items": Case(
        lambda t: enhanced_series(t, lambda ds: setattr(ds, "NumberOfFrames", 12)),
        VolumeValidationError,
        "NumberOfFrames is 12 but its Per-Frame Functional Groups Sequence has 9 items",
    ),
    "enhanced: no per-frame functional groups": Case(
        lambda t: enhanced_series(t, lambda ds: delattr(ds, "PerFrameFunctionalGroupsSequence")),
        VolumeValidationError,
        "Per-Frame Functional Groups Sequence has no items",
    ),
    "enhanced: NumberOfFrames abc": Case(
        lambda t: enhanced_series(t, lambda ds: set_raw(ds, "NumberOfFrames", "IS", b"abc")),
        VolumeValidationError,
        "unreadable NumberOfFrames 'abc'",
    ),
    "enhanced: one frame without its position": Case(
        lambda t: enhanced_series(t, _del_positions(range(4, 5))),
        VolumeValidationError,
        "frame 4 lacks ImagePositionPatient (per-frame or shared PlanePositionSequence)",
    ),
    "enhanced: no frame positions at all": Case(
        lambda t: enhanced_series(t, _del_positions(range(1, 10))),
        VolumeValidationError,
        "frame 1 lacks ImagePositionPatient",
    ),
    "enhanced: frames of different orientations": Case(
        lambda t: enhanced_series(
            t, _frame_item(3, "PlaneOrientationSequence", ImageOrientationPatient=[0, 1, 0, -1, 0, 0])
        ),
        VolumeValidationError,
        "different ImageOrientationPatient",
    ),
    "enhanced: frames of different pixel spacings": Case(
        lambda t: enhanced_series(t, _frame_item(6, "PixelMeasuresSequence", PixelSpacing=[0.9, 0.7])),
        VolumeValidationError,
        "different PixelSpacing",
    ),
    "enhanced: two frames at one position": Case(
        lambda t: enhanced_series(t, _frame_position(5, like=2)),
        VolumeValidationError,
        "duplicate slice position",
    ),
    "enhanced: frames unevenly spaced": Case(
        lambda t: enhanced_series(t, _frame_position(5, shift=1.0)),
        VolumeValidationError,
        "non-uniform slice spacing",
    ),
    "enhanced: per-frame RescaleSlope 0": Case(
        lambda t: enhanced_series(t, _frame_item(2, "PixelValueTransformationSequence", RescaleSlope="0")),
        VolumeValidationError,
        "RescaleSlope (per-frame or shared PixelValueTransformationSequence) 0",
    ),
    "enhanced: pixel data shorter than its frames": Case(
        lambda t: enhanced_series(t, _short_pixel_data), VolumeReadError, "cannot decode the pixel data"
    ),
    "enhanced: mixed with classic slices in one series": Case(
        _enhanced_and_classic, VolumeValidationError, "holds 1 Enhanced CT object and 9 single-frame files"
    ),
    "enhanced: two objects in one series": Case(_two_enhanced, VolumeValidationError, "holds 2 Enhanced CT objects"),
    # issue 17: classic series
    "later slices say Modality MR": Case(
        lambda t: _classic(t, _from_slice(5, lambda ds: setattr(ds, "Modality", "MR"))),
        VolumeValidationError,
        "CT0006.dcm has Modality MR, not CT",
    ),
    "first slice says Modality MR": Case(
        lambda t: _classic(t, _on_slice(0, lambda ds: setattr(ds, "Modality", "MR"))),
        VolumeValidationError,
        "CT0001.dcm has Modality MR, not CT like the rest of the series",
    ),
    "RescaleSlope 0": Case(
        lambda t: _classic(t, lambda ds, k: setattr(ds, "RescaleSlope", "0")), VolumeValidationError, "RescaleSlope 0"
    ),
    "RescaleSlope negative": Case(
        lambda t: _classic(t, _on_slice(3, lambda ds: setattr(ds, "RescaleSlope", "-1"))),
        VolumeValidationError,
        "RescaleSlope -1, but a CT's rescale slope is a finite number > 0",
    ),
    "RescaleSlope abc": Case(
        lambda t: _classic(t, _on_slice(2, lambda ds: set_raw(ds, "RescaleSlope", "DS", b"abc"))),
        VolumeValidationError,
        "unreadable RescaleSlope 'abc'",
    ),
    "RescaleIntercept abc": Case(
        lambda t: _classic(t, _on_slice(7, lambda ds: set_raw(ds, "RescaleIntercept", "DS", b"abc"))),
        VolumeValidationError,
        "unreadable RescaleIntercept 'abc'",
    ),
    "Rows missing on a later slice": Case(
        lambda t: _classic(t, _on_slice(6, lambda ds: delattr(ds, "Rows"))), VolumeValidationError, "lacks Rows"
    ),
    "ImageOrientationPatient abc": Case(
        lambda t: _classic(t, _on_slice(4, lambda ds: set_raw(ds, "ImageOrientationPatient", "DS", b"1\\0\\abc"))),
        VolumeValidationError,
        "CT0005.dcm has an unreadable ImageOrientationPatient",
    ),
    "NumberOfFrames abc": Case(
        lambda t: _classic(t, _on_slice(0, lambda ds: set_raw(ds, "NumberOfFrames", "IS", b"abc"))),
        VolumeValidationError,
        "unreadable NumberOfFrames 'abc'",
    ),
    "NumberOfFrames 0": Case(
        lambda t: _classic(t, _on_slice(1, lambda ds: setattr(ds, "NumberOfFrames", 0))),
        VolumeValidationError,
        "NumberOfFrames 0 (at least 1 is needed)",
    ),
    "PALETTE COLOR without a colour table": Case(
        lambda t: _classic(t, lambda ds, k: _palette(False)(ds)),
        VolumeValidationError,
        "PhotometricInterpretation PALETTE COLOR, but a CT stores grey values",
    ),
    "PALETTE COLOR with a colour table": Case(
        lambda t: _classic(t, lambda ds, k: _palette(True)(ds)),
        VolumeValidationError,
        "PALETTE COLOR (with a colour table), but a CT stores grey values",
    ),
    "two slices share one SOPInstanceUID": Case(_shared_uid, VolumeValidationError, "share SOPInstanceUID"),
    "corrupt RLE fragment": Case(_corrupt_rle, VolumeReadError, "CT0005.dcm (transfer syntax RLE Lossless"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_dicom_raises_specific_error(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = case.build(tmp_path)
    before = tree_digest(path)
    with pytest.raises(case.error) as info:
        read_volume(path)
    assert case.phrase in str(info.value), str(info.value)
    assert tree_digest(path) == before


@pytest.mark.parametrize("name", list(CASES))
def test_cli_inspect_refuses_with_one_error_line(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = case.build(tmp_path)
    before, listing = tree_digest(path), sorted(os.listdir(tmp_path))
    result = run_cli("inspect", str(path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert case.phrase in result.stderr and "Traceback" not in result.stderr and result.stdout == ""
    assert tree_digest(path) == before and sorted(os.listdir(tmp_path)) == listing


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("models")
    liver = write_threshold_model(folder, "liver", threshold_hu=50, spacing_mm=None, orientation="PLI")
    tumor = write_threshold_model(folder, "tumor", threshold_hu=150, spacing_mm=None)
    return ["--liver-model", str(liver), "--tumor-model", str(tumor)]


@pytest.mark.parametrize("name", list(CASES))
def test_cli_segment_refuses_and_writes_nothing(
    tmp_path: Path, name: str, models: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    path = case.build(tmp_path)
    before, out = tree_digest(path), tmp_path / "out"
    capsys.readouterr()
    status = cli.main(["segment", str(path), "-o", str(out), *models, "--dicom-seg", "--progress", "none"])
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and case.phrase in captured.err
    assert not out.exists() and tree_digest(path) == before


def test_corrupt_rle_prints_only_our_error_line(tmp_path: Path) -> None:
    """pydicom logs the decoder failure as an ERROR with a traceback on its own stderr handler: silenced."""
    result = run_cli("inspect", str(_corrupt_rle(tmp_path)))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith("error: ")
    assert "ERROR pydicom" not in result.stderr and "Traceback" not in result.stderr


def test_folder_clutter_is_ignored_with_one_warning_that_counts_it(tmp_path: Path) -> None:
    ct = make_ct()
    folder = tmp_path / "series"
    write_series(ct, folder)
    (folder / "notes.txt").write_text("not dicom")
    (folder / "empty.dcm").write_bytes(b"\x00" * 128 + b"DICM")  # preamble only
    shutil.copy(get_testdata_file("liver.dcm"), folder / "seg.dcm")  # type: ignore[arg-type]  # a DICOM-SEG
    (folder / "loop").symlink_to(folder / "loop")  # a symbolic link to itself
    (folder / "gone").symlink_to(folder / "nowhere")
    os.mkfifo(folder / "fifo")
    (folder / "up").symlink_to(folder, target_is_directory=True)
    back = read_volume(folder)
    assert np.array_equal(back.array, ct.array)
    assert back.dicom is not None and len(back.dicom.slices) == 9
    [warning] = back.warnings
    assert warning == (
        f"7 entries in {folder} ignored, not part of series {back.dicom.series_instance_uid}: non-DICOM files: 1, "
        "empty DICOM files (preamble only): 1, FIFOs, sockets or device files: 1, broken or looping symbolic links: "
        "2, symbolic links to folders (not followed): 1, DICOM objects of 1 other series (SEG): 1"
    )
    result = run_cli("inspect", str(folder))  # the warning is shown, the FIFO is never opened (no hang)
    assert result.returncode == 0 and f"warning       {warning}" in result.stdout and result.stderr == ""


def test_a_clean_series_has_no_warning(tmp_path: Path) -> None:
    assert read_volume(_classic(tmp_path)).warnings == ()


def test_monochrome1_reads_the_same_hu(tmp_path: Path) -> None:
    # MONOCHROME1 only inverts the display: the stored values still rescale to the same HU
    ct = make_ct()
    folder = _classic(tmp_path, lambda ds, k: setattr(ds, "PhotometricInterpretation", "MONOCHROME1"))
    assert np.array_equal(read_volume(folder).array, ct.array)


def test_the_malformed_dicom_cases_are_counted() -> None:
    """The README's bad-input list gives this count (issue 17's closing note)."""
    assert len(CASES) == 27
