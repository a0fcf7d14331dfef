"""Writing a CT volume as a DICOM CT Image Storage series (one file per k slice), with pydicom.

Geometry mapping (DICOM PS3.3 C.7.6.2): ImageOrientationPatient holds the LPS directions of the i axis
(along a row, increasing column) then of the j axis (down a column, increasing row); PixelSpacing is
*row spacing then column spacing* — (spacing along j, spacing along i); ImagePositionPatient of slice k is
``origin + k * spacing_k * direction_k``. Any orthonormal direction works (oblique, any of the 48 signed
axis permutations); readers order slices by position along the normal, so a left-handed geometry reads
back with its k axis reversed (same voxels at the same LPS positions).
"""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from SmoothSegNetLib import __version__
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.outputs import atomic_path
from SmoothSegNetLib.volume import CTVolume

#: Transfer syntaxes ``write_ct_series`` can write (all lossless).
TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit_vr_little_endian": ExplicitVRLittleEndian,
    "implicit_vr_little_endian": ImplicitVRLittleEndian,
    "rle_lossless": RLELossless,
    "jpeg2000_lossless": JPEG2000Lossless,
    "jpegls_lossless": JPEGLSLossless,
}

_INT16 = np.iinfo(np.int16)
_J2K_MIN_SIZE = 32


def write_ct_series(
    ct: CTVolume,
    folder: str | os.PathLike[str],
    *,
    series_description: str = "SmoothSegNet CT",
    patient_id: str = "SSN-PHANTOM",
    patient_name: str = "Phantom^SmoothSegNet",
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_number: int = 1,
    transfer_syntax: str = "explicit_vr_little_endian",
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
    attributes: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``ct`` as a CT Image Storage series, one file ``CT0001.dcm``... per k slice.

    Args:
        ct: the volume (HU); float values are rounded to the stored integer grid.
        folder: output folder (created); it must not already hold ``CT*.dcm`` files of another write.
        series_description, patient_id, patient_name, series_number: written as given.
        study_instance_uid, series_instance_uid, frame_of_reference_uid: new UIDs when ``None``.
        transfer_syntax: one of :data:`TRANSFER_SYNTAXES` (all lossless).
        rescale_slope, rescale_intercept: HU = stored * slope + intercept; stored values are int16.
        attributes: extra top-level attributes by keyword (e.g. ``{"StudyDate": "20240101"}``); they
            override the defaults.

    Returns:
        The written file paths in k order.

    Raises:
        InputError: unknown transfer syntax, bad slope, values that do not fit int16 after rescaling,
            or an output folder that already holds a series.
    """
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise InputError(f"transfer_syntax must be one of {', '.join(TRANSFER_SYNTAXES)}, got {transfer_syntax!r}")
    if not np.isfinite(rescale_slope) or rescale_slope <= 0:
        raise InputError(f"rescale_slope must be a finite value > 0, got {rescale_slope!r}")
    rows, columns = ct.geometry.shape_kji[1], ct.geometry.shape_kji[2]
    if transfer_syntax == "jpeg2000_lossless" and min(rows, columns) < _J2K_MIN_SIZE:
        # the OpenJPEG encoder always uses 6 wavelet resolutions, which needs 2**5 pixels per side
        raise InputError(
            f"transfer_syntax 'jpeg2000_lossless' needs at least {_J2K_MIN_SIZE} rows and columns, got "
            f"{rows} x {columns}: use 'rle_lossless' or 'jpegls_lossless' for such small images"
        )
    unknown = [key for key in (attributes or {}) if pydicom.datadict.tag_for_keyword(key) is None]
    if unknown:
        raise InputError(f"attributes must be DICOM keywords (e.g. 'StudyDate'), got unknown {unknown}")
    stored = _stored_values(ct.array, rescale_slope, rescale_intercept)
    folder = Path(folder)
    if folder.exists() and any(folder.glob("CT*.dcm")):
        raise InputError(f"output folder {folder} already holds CT*.dcm files: choose an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    common = _common_dataset(
        ct,
        series_description=series_description,
        patient_id=patient_id,
        patient_name=patient_name,
        study_instance_uid=study_instance_uid or generate_uid(),
        series_instance_uid=series_instance_uid or generate_uid(),
        frame_of_reference_uid=frame_of_reference_uid or generate_uid(),
        series_number=series_number,
        rescale=(rescale_slope, rescale_intercept),
    )
    for keyword, value in (attributes or {}).items():
        setattr(common, keyword, value)
    written: list[Path] = []
    try:
        for k in range(stored.shape[0]):
            final = folder / f"CT{k + 1:04d}.dcm"
            with atomic_path(final) as tmp:
                _slice_dataset(common, ct, stored[k], k, TRANSFER_SYNTAXES[transfer_syntax]).save_as(
                    tmp, enforce_file_format=True
                )
            written.append(final)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return written


def _stored_values(array: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    values = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise InputError("ct.array holds NaN or infinite values, which DICOM cannot store: replace them first")
    stored = np.rint((values - intercept) / slope)
    if stored.size and (stored.min() < _INT16.min or stored.max() > _INT16.max):
        raise InputError(
            f"with rescale_slope={slope:g} and rescale_intercept={intercept:g} the stored values span "
            f"{stored.min():g}..{stored.max():g}, beyond int16: choose a larger slope or another intercept"
        )
    return stored.astype(np.int16)


def _ds(value: float) -> str:
    """A decimal string (VR DS, at most 16 characters) as exact as DS allows."""
    for digits in range(10, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot write {value!r} as a DICOM decimal string")


def _common_dataset(ct: CTVolume, **kw: Any) -> Dataset:
    now = datetime.datetime.now(datetime.timezone.utc)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    # Patient module
    ds.PatientName = kw["patient_name"]
    ds.PatientID = kw["patient_id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    # General Study module
    ds.StudyInstanceUID = kw["study_instance_uid"]
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.StudyDescription = "SmoothSegNet synthetic CT"
    # General Series module
    ds.Modality = "CT"
    ds.SeriesInstanceUID = kw["series_instance_uid"]
    ds.SeriesNumber = int(kw["series_number"])
    ds.SeriesDescription = kw["series_description"]
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = ds.StudyTime
    ds.BodyPartExamined = "ABDOMEN"
    ds.PatientPosition = "HFS"  # type 2C, required for CT
    # Frame of Reference module
    ds.FrameOfReferenceUID = kw["frame_of_reference_uid"]
    ds.PositionReferenceIndicator = ""
    # General Equipment module
    ds.Manufacturer = "SmoothSegNet"
    ds.SoftwareVersions = __version__
    # General Image / CT Image modules
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.AcquisitionNumber = 1
    ds.KVP = ""
    ds.BurnedInAnnotation = "NO"
    slope, intercept = kw["rescale"]
    ds.RescaleIntercept = _ds(intercept)
    ds.RescaleSlope = _ds(slope)
    ds.RescaleType = "HU"
    # Image Plane module (shared part)
    g = ct.geometry
    d = g.direction_array
    si, sj, sk = g.spacing_mm
    ds.ImageOrientationPatient = [_ds(v) for v in (*d[:, 0], *d[:, 1])]
    ds.PixelSpacing = [_ds(sj), _ds(si)]  # row spacing (along j) first, then column spacing (along i)
    ds.SliceThickness = _ds(sk)
    ds.SpacingBetweenSlices = _ds(sk)
    # Image Pixel module
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(g.shape_kji[1]), int(g.shape_kji[2])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    return ds


def _slice_dataset(common: Dataset, ct: CTVolume, pixels: np.ndarray, k: int, syntax: UID) -> Dataset:
    ds = Dataset()
    ds.update(common)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = k + 1
    position = ct.geometry.index_to_lps([0.0, 0.0, float(k)])
    ds.ImagePositionPatient = [_ds(v) for v in position]
    normal = np.cross(ct.geometry.direction_array[:, 0], ct.geometry.direction_array[:, 1])
    ds.SliceLocation = _ds(float(position @ normal))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    if syntax == ImplicitVRLittleEndian:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif syntax != ExplicitVRLittleEndian:
        ds.compress(syntax, np.ascontiguousarray(pixels))
    return ds
