"""DICOM pixel padding (PixelPaddingValue / PixelPaddingRangeLimit): padded voxels become air, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _io_helpers import edit_series, make_ct, write_series
from pydicom.dataset import Dataset

from SmoothSegNetLib import validation
from SmoothSegNetLib.errors import VolumeValidationError
from SmoothSegNetLib.io import read_volume
from SmoothSegNetLib.volume import CTVolume

INTERCEPT = -1024.0
CORNER = (slice(None), slice(0, 3), slice(0, 4))  # rows 0..2, columns 0..3 of every slice: 108 voxels


def padded_ct(stored_corner: int = -2000) -> tuple[CTVolume, CTVolume]:
    """(the CT, the same CT whose corner holds ``stored_corner`` stored, i.e. ``stored_corner - 1024`` HU)."""
    ct = make_ct()
    array = ct.array.copy()
    array[CORNER] = stored_corner + INTERCEPT
    return ct, ct.with_array(array)


def expected_air_corner(ct: CTVolume) -> np.ndarray:
    expected = ct.array.copy()
    expected[CORNER] = -1024
    return expected


@pytest.mark.parametrize("syntax", ["explicit_vr_little_endian", "implicit_vr_little_endian", "rle_lossless"])
def test_padding_value_in_a_corner_becomes_air_and_nothing_else_changes(tmp_path: Path, syntax: str) -> None:
    ct, padded = padded_ct()
    attributes = {"PixelPaddingValue": -2000}
    write_series(padded, tmp_path / "s", transfer_syntax=syntax, rescale_intercept=INTERCEPT, attributes=attributes)
    back = read_volume(tmp_path / "s")
    assert back.array.dtype == np.int16
    assert np.all(back.array[CORNER] == -1024)  # not -3024
    assert np.array_equal(back.array, expected_air_corner(ct))  # every other voxel untouched
    assert back.warnings == ()  # ordinary padding (air-like, 9 % of the voxels) is only logged
    assert back.dicom is not None and len(back.dicom.slices) == 9


def test_padding_range_limit_marks_every_value_between_the_two(tmp_path: Path) -> None:
    ct = make_ct()
    array = ct.array.copy()
    # stored values (HU + 1024): -2000, -1995, -1990 are padding; -2001 and -1989 are not
    array[:, 0, 0], array[:, 0, 1], array[:, 0, 2] = -3024, -3019, -3014
    array[:, 0, 3], array[:, 0, 4] = -3025, -3013
    attributes = {"PixelPaddingValue": -1990, "PixelPaddingRangeLimit": -2000}  # either order
    write_series(ct.with_array(array), tmp_path / "s", rescale_intercept=INTERCEPT, attributes=attributes)
    back = read_volume(tmp_path / "s")
    expected = array.copy()
    expected[:, 0, :3] = -1024
    assert np.array_equal(back.array, expected)
    assert np.all(back.array[:, 0, 3] == -3025) and np.all(back.array[:, 0, 4] == -3013)


def test_padding_written_with_the_wrong_vr_and_only_in_some_slices(tmp_path: Path) -> None:
    ct, padded = padded_ct()
    paths = write_series(padded, tmp_path / "s", rescale_intercept=INTERCEPT)

    def edit(ds: Dataset, k: int) -> None:
        if k % 2 == 0:  # even slices: -2000 written as unsigned 63536 (65536 - 2000) in a signed image
            ds.add_new(0x00280120, "US", 63536)

    edit_series(paths, edit)
    back = read_volume(tmp_path / "s")
    expected = expected_air_corner(ct)
    expected[1::2][CORNER] = -3024  # odd slices declare no padding: their corner keeps its HU
    assert np.array_equal(back.array, expected)


def test_raw_stored_values_are_still_refused_when_padding_is_present(tmp_path: Path) -> None:
    # stored values without intercept (24..2523, no air) and a -2000 padding corner: the padding must
    # not make the image look like HU, nor may its -1024 replacement
    ct = make_ct()
    raw = ct.array.astype(np.int32) + 1024
    raw[CORNER] = -2000
    write_series(ct.with_array(raw.astype(np.int16)), tmp_path / "pad", attributes={"PixelPaddingValue": -2000})
    real = np.ones(raw.shape, dtype=bool)
    real[CORNER] = False
    low, high = int(raw[real].min()), int(raw[real].max())
    with pytest.raises(VolumeValidationError, match=rf"no value below -50 \(range {low}\.\.{high}\)"):
        read_volume(tmp_path / "pad")
    # the same voxels without PixelPaddingValue: -2000 is then a real value and the image passes
    write_series(ct.with_array(raw.astype(np.int16)), tmp_path / "plain")
    assert int(read_volume(tmp_path / "plain").array.min()) == -2000


def test_padding_standing_for_tissue_is_applied_with_a_warning(tmp_path: Path) -> None:
    ct = make_ct()  # column 0 holds 40 HU everywhere, and random voxels may hold 40 too
    write_series(ct, tmp_path / "s", attributes={"PixelPaddingValue": 40})  # intercept 0: stored 40 = 40 HU
    back = read_volume(tmp_path / "s")
    is40 = ct.array == 40
    count = int(is40.sum())
    assert count >= 90
    expected = ct.array.copy()
    expected[is40] = -1024
    assert np.array_equal(back.array, expected)
    assert len(back.warnings) == 1
    assert back.warnings[0].startswith(f"{count:,} voxels ({count / ct.array.size:.1%}) marked as pixel padding")
    assert "stood for 40..40 HU" in back.warnings[0] and "PixelPaddingValue" in back.warnings[0]


def test_padding_over_half_the_volume_is_applied_with_a_warning(tmp_path: Path) -> None:
    ct = make_ct()
    array = ct.array.copy()
    array[:, :6, :] = -3024  # 6 of 10 rows: 648 of 1080 voxels
    write_series(
        ct.with_array(array), tmp_path / "s", rescale_intercept=INTERCEPT, attributes={"PixelPaddingValue": -2000}
    )
    back = read_volume(tmp_path / "s")
    assert np.all(back.array[:, :6, :] == -1024) and np.array_equal(back.array[:, 6:, :], ct.array[:, 6:, :])
    assert back.warnings == (
        "648 voxels (60.0%) marked as pixel padding (PixelPaddingValue) were set to -1024 HU (air); the padding "
        "covers more than 50% of the volume: check the series' PixelPaddingValue",
    )


def test_a_series_of_padding_only_is_refused(tmp_path: Path) -> None:
    ct = make_ct()
    attributes = {"PixelPaddingValue": -32768, "PixelPaddingRangeLimit": 32767}
    write_series(ct, tmp_path / "s", attributes=attributes)
    with pytest.raises(VolumeValidationError, match=r"holds only padding voxels \(1,080 voxels"):
        read_volume(tmp_path / "s")


def test_padding_is_air_before_a_missing_slice_is_interpolated(tmp_path: Path) -> None:
    ct, padded = padded_ct()
    paths = write_series(padded, tmp_path / "s", rescale_intercept=INTERCEPT, attributes={"PixelPaddingValue": -2000})
    paths[4].unlink()
    back = read_volume(tmp_path / "s", allow_resample=True)
    expected = expected_air_corner(ct)
    expected[4] = np.rint((expected[3].astype(float) + expected[5]) / 2)  # slice 4: half way, air stays air
    assert np.array_equal(back.array, expected)
    assert np.all(back.array[CORNER] == -1024)
    assert len(back.warnings) == 1 and "missing slices" in back.warnings[0]


def test_hounsfield_range_ignores_masked_voxels_for_float_and_int() -> None:
    for dtype in (np.int16, np.float32):
        array = np.array([[-2000, 5, 900], [-80, 3000, 0]], dtype=dtype)
        ignore = np.array([[True, False, False], [False, True, False]])
        assert validation.check_hounsfield(array, source="x", ignore=ignore) == (-80.0, 900.0)
        assert validation.check_hounsfield(array, source="x") == (-2000.0, 3000.0)
