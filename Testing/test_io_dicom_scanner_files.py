"""Real scanner CT slices that pydicom-data ships: each read with the geometry of its own tags.

Each file is one slice, so alone it is refused as too few slices (a volume needs
:data:`SmoothSegNetLib.validation.MIN_SLICES`); copies of it moved along its own slice normal (new
ImagePositionPatient and SOPInstanceUID only — pixel data, transfer syntax and private tags untouched) make a
series whose geometry is computed by hand from the tags.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from SmoothSegNetLib.errors import VolumeValidationError
from SmoothSegNetLib.io import read_volume

# the Siemens file's UIDs are hexadecimal hashes and one SH value is too long: pydicom warns, the reader does not
pytestmark = pytest.mark.filterwarnings(
    "ignore:Invalid value for VR UI:UserWarning", "ignore:The value length:UserWarning"
)

STEP_MM = 2.5
COPIES = 8


def _real(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"{name} is missing: pydicom-data is not installed (pip install -e '.[test]')"
    return Path(path)


def _series_from(tmp: Path, name: str) -> Path:
    """``COPIES`` copies of a real slice, ``STEP_MM`` apart along its normal, named in reverse order."""
    folder = tmp / "series"
    folder.mkdir()
    for n in range(COPIES):
        ds = pydicom.dcmread(_real(name))
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(iop[:3], iop[3:])
        position = np.array([float(v) for v in ds.ImagePositionPatient]) + n * STEP_MM * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = n + 1
        ds.save_as(folder / f"IM{COPIES - n:02d}", enforce_file_format=True)
    return folder


# name: (transfer syntax, ImageOrientationPatient, ImagePositionPatient, PixelSpacing, slope, intercept,
#        PixelPaddingValue) as read by hand from each file's tags (pydicom's dump)
REAL_SLICES = {
    # abdominal CT (pancreas), explicit VR with UN private tags (0013,1010) and (0013,1013), JPEG 2000, and a
    # reversed column direction (rows run down the image towards the patient's anterior)
    "explicit_VR-UN.dcm": ("1.2.840.10008.1.2.4.90", (1, 0, 0, 0, -1, 0), (0, 0, -121), 0.859375, 1, 0, None),
    # Siemens neck CT, JPEG lossless (process 14, selection value 1), 12 bits stored, unsigned
    "bad_sequence.dcm": (
        "1.2.840.10008.1.2.4.70",
        (1, 0, 0, 0, 1, 0),
        (-65.3564453125, -154.3564453125, 1687.5),
        0.287109375,
        1,
        -1024,
        None,
    ),
    # CT with pixel padding -2000 (stored) outside the reconstruction circle, JPEG 2000 lossless
    "693_J2KR.dcm": ("1.2.840.10008.1.2.4.90", (1, 0, 0, 0, 1, 0), (-122.5, -112.4, 47.0), 0.478516, 1, -1024, -2000),
}


@pytest.mark.parametrize("name", list(REAL_SLICES))
def test_real_slice_series_has_the_geometry_of_its_tags(tmp_path: Path, name: str) -> None:
    syntax, iop, ipp, spacing, slope, intercept, padding = REAL_SLICES[name]
    original = pydicom.dcmread(_real(name))
    assert original.file_meta.TransferSyntaxUID == syntax and original.Modality == "CT"
    assert [float(v) for v in original.ImageOrientationPatient] == list(iop)
    assert [float(v) for v in original.ImagePositionPatient] == pytest.approx(ipp)
    assert [float(v) for v in original.PixelSpacing] == [spacing, spacing]
    ct = read_volume(_series_from(tmp_path, name))
    g = ct.geometry
    row, column = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row, column)
    assert g.shape_kji == (COPIES, 512, 512)
    assert g.spacing_mm == pytest.approx((spacing, spacing, STEP_MM))
    assert np.allclose(g.direction_array, np.column_stack([row, column, normal]))
    assert g.origin_lps_mm == pytest.approx(ipp, abs=1e-6)  # the original slice comes first along the normal
    far = np.array(ipp) + 511 * spacing * row + 511 * spacing * column + (COPIES - 1) * STEP_MM * normal
    assert g.index_to_lps([511, 511, COPIES - 1]) == pytest.approx(far, abs=1e-4)
    expected = original.pixel_array.astype(np.float64) * slope + intercept
    if padding is not None:
        expected[original.pixel_array == padding] = -1024  # padding becomes air
    for k in (0, COPIES - 1):
        assert np.array_equal(ct.array[k], expected)
    assert ct.dicom is not None and len({s.sop_instance_uid for s in ct.dicom.slices}) == COPIES


def test_reversed_column_direction_puts_the_first_row_posterior(tmp_path: Path) -> None:
    # explicit_VR-UN.dcm's column direction is (0, -1, 0): row j lies j * 0.859375 mm anterior of row 0
    ct = read_volume(_series_from(tmp_path, "explicit_VR-UN.dcm"))
    assert ct.geometry.index_to_lps([0, 100, 0]) == pytest.approx((0.0, -85.9375, -121.0))
    assert ct.geometry.index_to_lps([0, 0, 1]) == pytest.approx((0.0, 0.0, -123.5))  # k follows the normal (0,0,-1)


@pytest.mark.parametrize("name", [*REAL_SLICES, "CT_small.dcm"])
def test_one_real_slice_alone_is_refused_as_too_few_slices(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "slice.dcm").write_bytes(_real(name).read_bytes())
    with pytest.raises(VolumeValidationError, match=r"too few slices: 1 .*give the full CT series, not a localizer"):
        read_volume(folder)
