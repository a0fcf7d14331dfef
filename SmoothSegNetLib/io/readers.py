"""Reading a CT volume: NRRD, NIfTI, MetaImage files (SimpleITK) or a DICOM series folder (pydicom).

Every reader validates before it returns (:mod:`SmoothSegNetLib.validation`); header checks run before any
voxel is read. Voxel arrays come back as ``int16`` when every value is an integer in the int16 range,
else ``float32``, indexed ``[k, j, i]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from SmoothSegNetLib import validation
from SmoothSegNetLib.errors import VolumeReadError
from SmoothSegNetLib.io.file_headers import check_file_header, has_dicom_preamble
from SmoothSegNetLib.volume import CTVolume, Geometry

log = logging.getLogger(__name__)

#: File name endings read with SimpleITK, and the ImageIO used for each (never guessed from content).
FILE_FORMATS: dict[str, str] = {
    ".nii.gz": "NiftiImageIO",
    ".nii": "NiftiImageIO",
    ".nrrd": "NrrdImageIO",
    ".nhdr": "NrrdImageIO",
    ".mha": "MetaImageIO",
    ".mhd": "MetaImageIO",
}

_INT16_MIN, _INT16_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max


def read_volume(
    path: str | Path,
    *,
    series_uid: str | None = None,
    max_voxels: int | None = None,
    allow_resample: bool = False,
) -> CTVolume:
    """Read and validate a CT volume from a file or a DICOM series folder.

    Args:
        path: a ``.nrrd``/``.nhdr``/``.nii``/``.nii.gz``/``.mha``/``.mhd`` file, or a folder (searched
            recursively) holding a DICOM CT series.
        series_uid: for a folder with several CT series, the SeriesInstanceUID to read.
        max_voxels: memory budget in voxels (default :data:`validation.DEFAULT_MAX_VOXELS`).
        allow_resample: for a DICOM series with non-uniform slice spacing or missing slices, resample it
            onto a uniform grid (with a warning in ``CTVolume.warnings``) instead of refusing it.

    Returns:
        The CT in HU with its LPS geometry; for DICOM, ``CTVolume.dicom`` holds the source identifiers.

    Raises:
        VolumeReadError: missing/empty/truncated/corrupt file, unknown format, permission denied.
        VolumeValidationError: not a usable CT (dimensions, spacing, intensities, geometry, size).
        DicomSeriesError: no usable CT series in a folder, or several and none chosen.
    """
    path = Path(path)
    validation.check_input_path(path)
    if path.is_dir():
        from SmoothSegNetLib.io.dicom_series import read_dicom_series

        return read_dicom_series(path, series_uid=series_uid, max_voxels=max_voxels, allow_resample=allow_resample)
    if series_uid is not None:
        raise VolumeReadError(
            f"series_uid {series_uid!r} was given but {path} is a file, not a DICOM folder: drop the series UID "
            "or give the folder holding the DICOM series"
        )
    return read_volume_file(path, max_voxels=max_voxels)


def format_of(path: Path) -> str:
    """The SimpleITK ImageIO for ``path`` from its name ending.

    Raises:
        VolumeReadError: unknown ending (a lone DICOM file is pointed at its folder).
    """
    name = path.name.lower()
    for ending, image_io in FILE_FORMATS.items():
        if name.endswith(ending):
            return image_io
    if has_dicom_preamble(path):
        raise VolumeReadError(
            f"{path} is a single DICOM file: give the folder that holds the whole DICOM series instead"
        )
    raise VolumeReadError(
        f"unknown volume format for {path} (ending {path.suffix or 'none'!r}): supported are "
        f"{', '.join(FILE_FORMATS)} files and DICOM series folders; convert it (e.g. with Slicer) first"
    )


def read_volume_file(path: Path, *, max_voxels: int | None = None) -> CTVolume:
    """Read one NRRD/NIfTI/MetaImage file; the header is validated before the voxels are read."""
    import SimpleITK as sitk

    validation.check_input_path(path, want="file")
    # ITK writes warnings (e.g. about NIfTI qform/sform) straight to stderr; the CLI must print one line.
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    image_io = format_of(path)
    source = str(path)
    # Before ITK opens anything: a detached header's data file may be a FIFO (ITK would block on it).
    check_file_header(path, image_io)
    reader = sitk.ImageFileReader()
    reader.SetImageIO(image_io)
    reader.SetFileName(source)
    try:
        with _native_stderr_to_log():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise VolumeReadError(
            f"cannot read the header of {path} as {image_io.removesuffix('ImageIO')}: it is corrupt or not that "
            f"format ({_itk_reason(exc)}); export the volume again"
        ) from exc
    size = tuple(int(n) for n in reader.GetSize())
    validation.check_dimensions(size, int(reader.GetNumberOfComponents()), source=source)
    validation.check_spacing(reader.GetSpacing(), source=source)
    validation.check_direction(np.reshape(reader.GetDirection(), (3, 3)), source=source)
    validation.check_origin(reader.GetOrigin(), reader.GetSpacing(), size, source=source)
    validation.check_voxel_budget(size, max_voxels, source=source)
    try:
        with _native_stderr_to_log():
            image = reader.Execute()
    except RuntimeError as exc:
        raise VolumeReadError(
            f"cannot read the voxels of {path}: the file is truncated or corrupt, or its data file is missing "
            f"({_itk_reason(exc)}); export the volume again"
        ) from exc
    array = to_hu_dtype(sitk.GetArrayFromImage(image))
    validation.check_hounsfield(array, source=source)
    geometry = Geometry.create(
        array.shape, image.GetSpacing(), image.GetOrigin(), np.reshape(image.GetDirection(), (3, 3))
    )
    log.info("read %s: size %s, spacing %s mm", path, size, image.GetSpacing())
    return CTVolume(array, geometry, source=source)


def to_hu_dtype(array: np.ndarray) -> np.ndarray:
    """``int16`` when every value is an integer within int16, else ``float32`` (same values)."""
    if array.dtype == np.int16:
        return array
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        if array.size and (int(array.min()) < _INT16_MIN or int(array.max()) > _INT16_MAX):
            return array.astype(np.float32)
        return array.astype(np.int16)
    return array.astype(np.float32, copy=array.dtype != np.float32)


def _itk_reason(exc: RuntimeError) -> str:
    """The last meaningful line of an ITK exception (ITK messages span several lines with file paths)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    for line in reversed(lines):
        if not line.startswith(("itk::", "Location", "File:", "Line:", "Description: ")):
            reason = line
            break
    return re.sub(r"^ITK ERROR: \w+\(0x[0-9a-f]+\): ", "", reason)[:200]


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """Send what C libraries print on file descriptor 2 to the log instead.

    ITK's NIfTI and MetaImage libraries print their complaints straight to stderr; the command line must
    show exactly one ``error:`` line, and the exception raised afterwards already says what is wrong.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no file descriptor 2 (e.g. an embedded interpreter)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log.debug("image library output: %s", text)
