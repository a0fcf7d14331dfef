"""Checks every CT reader applies, with messages that say what is wrong and what to do.

The rules (documented in docs/ct-input.md):

- a path must exist, be readable, and be a regular file for a volume file (not a device, FIFO or socket) or
  a folder for a DICOM series;
- the image is 3D with at least :data:`MIN_SLICES` slices along every axis and one scalar component;
- spacing lies in [:data:`MIN_SPACING_MM`, :data:`MAX_SPACING_MM`] along every axis;
- the number of voxels is at most the memory budget (:data:`DEFAULT_MAX_VOXELS` unless given), checked
  from the header before any voxel is read;
- the origin is finite and every voxel lies within :data:`MAX_POSITION_MM` of the origin of LPS;
- voxels are finite and look like Hounsfield units (see :func:`check_hounsfield`).

Whether the image is a CT *of a body* (field of view, intensity distribution) is checked separately, before
segmentation only: :mod:`SmoothSegNetLib.plausibility`.

Header checks take plain numbers so that the NRRD/NIfTI/MHA reader and the DICOM series reader share them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from SmoothSegNetLib.errors import VolumeReadError, VolumeValidationError

#: Fewest slices (and rows, and columns) a CT must have: the networks need a 3D neighbourhood, and a
#: thinner stack is a localizer, a single slice or a thick-slab reformat, not an abdominal CT.
MIN_SLICES = 8

#: Smallest and largest voxel size accepted along any axis, in mm. Below 0.1 mm is a micro-CT or a
#: header in metres/micrometres; above 20 mm is not a diagnostic CT (or a header in cm).
MIN_SPACING_MM = 0.1
MAX_SPACING_MM = 20.0

#: Default memory budget in voxels: 512 x 512 x 2048 (about 1 GiB as int16, 2 GiB as float32).
DEFAULT_MAX_VOXELS = 512 * 512 * 2048

#: A CT in Hounsfield units always holds air (-1000 HU) or at least fat (about -100 HU); an image whose
#: lowest value is at or above this is not in HU (raw stored values without the rescale intercept).
HU_MINIMUM_EXPECTED = -50.0

#: Highest value of a plausible HU image is at least this (soft tissue is 0..100 HU).
HU_MAXIMUM_EXPECTED = 0.0

#: No CT holds values beyond this magnitude (int16 HU spans -32768..32767; extended-range CT reaches about
#: 31,000 HU in metal): larger values come from a wrong rescale slope/intercept or a scaled image.
HU_ABSOLUTE_LIMIT = 100_000.0

#: Largest distance (mm) of any voxel from the patient coordinate origin: 100 m. Scanner table positions
#: are within a few metres; larger values are a broken header (and overflow measurements).
MAX_POSITION_MM = 100_000.0

_SPECIAL_FILES = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def check_input_path(path: Path, *, want: str = "any") -> None:
    """Check that ``path`` exists and can be read.

    Args:
        path: file or folder given by the user.
        want: ``"file"``, ``"dir"`` or ``"any"``.

    Raises:
        VolumeReadError: missing, unreadable, empty file, or a file/folder where the other is expected.
    """
    if not path.exists():
        hint = " (a broken symbolic link)" if path.is_symlink() else ""
        raise VolumeReadError(
            f"input {path} does not exist{hint}: give the path of a CT volume file (.nrrd, .nii, .nii.gz, .mha, "
            ".mhd) or of a folder holding a DICOM CT series"
        )
    if path.is_dir():
        if want == "file":
            raise VolumeReadError(f"input {path} is a folder but a file is expected: give the path of a volume file")
        if not os.access(path, os.R_OK | os.X_OK):
            raise VolumeReadError(f"permission denied reading folder {path}: make it readable (chmod) or copy it")
        return
    if want == "dir":
        raise VolumeReadError(
            f"input {path} is a file but a folder is expected: give the folder holding the DICOM series"
        )
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
        raise VolumeReadError(
            f"input {path} is {kind}, not a regular file: give the path of a CT volume file or DICOM folder"
        )
    if not os.access(path, os.R_OK):
        raise VolumeReadError(f"permission denied reading {path}: make the file readable (chmod) or copy it")
    if path.stat().st_size == 0:
        raise VolumeReadError(f"input {path} is empty (0 bytes): the file was not written completely; export it again")


def check_dimensions(size_ijk: Sequence[int], components: int, *, source: str) -> None:
    """Check a header's image size (i, j, k) and number of components per voxel.

    Raises:
        VolumeValidationError: not 3D, too few slices/rows/columns, or a vector/RGB image.
    """
    if components != 1:
        raise VolumeValidationError(
            f"{source} has {components} components per voxel (an RGB or vector image), but a CT has one "
            "grey value per voxel: give the original greyscale CT, not a screenshot, colour map or vector field"
        )
    if len(size_ijk) == 2:
        raise VolumeValidationError(
            f"{source} is a 2D image (size {tuple(int(n) for n in size_ijk)}), but a 3D CT with at least "
            f"{MIN_SLICES} slices is needed: give the whole series or volume"
        )
    if len(size_ijk) != 3:
        raise VolumeValidationError(
            f"{source} is a {len(size_ijk)}D image (size {tuple(int(n) for n in size_ijk)}), but a 3D CT is "
            "needed: extract one 3D volume (e.g. one time point or phase) first"
        )
    names = ("columns", "rows", "slices")
    for name, n in zip(names, size_ijk):
        if int(n) < MIN_SLICES:
            raise VolumeValidationError(
                f"{source} has too few {name}: {int(n)} (size {tuple(int(m) for m in size_ijk)}), at least "
                f"{MIN_SLICES} are needed: give the full CT series, not a localizer or a few slices"
            )


def check_spacing(spacing_mm: Sequence[float], *, source: str) -> None:
    """Check voxel sizes (i, j, k) in mm.

    Raises:
        VolumeValidationError: zero, negative, non-finite, or outside [MIN_SPACING_MM, MAX_SPACING_MM].
    """
    values = [float(s) for s in spacing_mm]
    for axis, s in zip("ijk", values):
        if not np.isfinite(s) or s <= 0:
            raise VolumeValidationError(
                f"{source} has an invalid voxel spacing along {axis}: {s} mm (spacing {tuple(values)}); "
                "the header is broken: fix the spacing in the header or export the CT again"
            )
        if s < MIN_SPACING_MM or s > MAX_SPACING_MM:
            raise VolumeValidationError(
                f"{source} has an absurd voxel spacing along {axis}: {s:g} mm (spacing {tuple(values)}); "
                f"a CT has spacing between {MIN_SPACING_MM} and {MAX_SPACING_MM} mm: check the header's units "
                "(metres or centimetres instead of mm?) and fix it"
            )


def check_voxel_budget(size_ijk: Sequence[int], max_voxels: int | None, *, source: str) -> None:
    """Refuse a volume larger than the memory budget, before reading its voxels.

    Raises:
        VolumeValidationError: the voxel count exceeds ``max_voxels`` (or :data:`DEFAULT_MAX_VOXELS`).
    """
    budget = DEFAULT_MAX_VOXELS if max_voxels is None else int(max_voxels)
    if budget <= 0:
        raise VolumeValidationError(f"max_voxels must be a positive number of voxels, got {budget}")
    count = int(np.prod([int(n) for n in size_ijk], dtype=np.int64))
    if count > budget:
        raise VolumeValidationError(
            f"{source} is too large: {tuple(int(n) for n in size_ijk)} = {count:,} voxels exceeds the memory "
            f"budget of {budget:,} voxels: crop the CT to the abdomen (e.g. Slicer's Crop Volume module) or "
            "resample it to a coarser spacing, or raise the budget (max_voxels)"
        )


def check_hounsfield(array: np.ndarray, *, source: str, ignore: np.ndarray | None = None) -> tuple[float, float]:
    """Check that voxels are finite and look like Hounsfield units; returns (min, max).

    Refused: NaN/Inf; every value in [0, 1] (normalised intensities); every value in [0, 255] (an 8-bit
    picture); no value below :data:`HU_MINIMUM_EXPECTED` (raw stored values whose rescale intercept,
    usually -1024, was not applied — a CT always contains air or fat); a constant image.

    Args:
        array: the voxels.
        source: what to name in messages.
        ignore: optional bool mask (same shape) of voxels left out of the range rules — DICOM pixel padding,
            which is set to air and must not make raw stored values look like HU.

    Raises:
        VolumeValidationError: with the observed range and what to do.
    """
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            raise VolumeValidationError(
                f"{source} contains {bad:,} NaN or infinite voxel values: a CT holds finite HU values; "
                "export the original CT again (not a processed or divided image)"
            )
    if array.size == 0:
        raise VolumeValidationError(f"{source} holds no voxels: export the CT again")
    low, high = _value_range(array, ignore, source=source)
    if max(abs(low), abs(high)) > HU_ABSOLUTE_LIMIT:
        raise VolumeValidationError(
            f"{source} intensities are not Hounsfield units: values reach {low:g}..{high:g}, far outside any CT "
            f"(beyond +-{HU_ABSOLUTE_LIMIT:g}); the rescale slope/intercept (NIfTI scl_slope/scl_inter) is wrong "
            "or the image was scaled: give the original CT in HU (air -1000, water 0)"
        )
    if low == high:
        raise VolumeValidationError(
            f"{source} is constant ({low:g} everywhere): it holds no image; export the CT again"
        )
    if low >= 0.0 and high <= 1.0:
        raise VolumeValidationError(
            f"{source} intensities are not Hounsfield units: all values lie in [0, 1] (range {low:g}..{high:g}), "
            "a normalised image; give the original CT in HU (air -1000, water 0)"
        )
    if low >= 0.0 and high <= 255.0:
        raise VolumeValidationError(
            f"{source} intensities are not Hounsfield units: all values lie in [0, 255] (range {low:g}..{high:g}), "
            "an 8-bit picture; give the original CT in HU (air -1000, water 0), not a screenshot or PNG stack"
        )
    if low >= HU_MINIMUM_EXPECTED:
        raise VolumeValidationError(
            f"{source} intensities are not Hounsfield units: no value below {HU_MINIMUM_EXPECTED:g} "
            f"(range {low:g}..{high:g}) while a CT always holds air (-1000 HU) or fat (-100 HU); these look like "
            "raw stored values without the rescale intercept (usually -1024): apply RescaleSlope/Intercept"
        )
    if high <= HU_MAXIMUM_EXPECTED:
        raise VolumeValidationError(
            f"{source} intensities are not Hounsfield units: no value above {HU_MAXIMUM_EXPECTED:g} "
            f"(range {low:g}..{high:g}) while a CT of the abdomen holds soft tissue (0..100 HU): "
            "check the rescale slope/intercept or give the original CT"
        )
    return low, high


def _value_range(array: np.ndarray, ignore: np.ndarray | None, *, source: str) -> tuple[float, float]:
    """Lowest and highest value of the voxels not in ``ignore``."""
    if ignore is None or not ignore.any():
        return float(array.min()), float(array.max())
    keep = ~ignore
    if not keep.any():
        raise VolumeValidationError(
            f"{source} holds only padding voxels ({ignore.size:,} voxels marked by PixelPaddingValue): it holds "
            "no image; export the CT again or check its PixelPaddingValue"
        )
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        highest, lowest = int(info.max), int(info.min)
        return float(array.min(where=keep, initial=highest)), float(array.max(where=keep, initial=lowest))
    return float(array.min(where=keep, initial=np.inf)), float(array.max(where=keep, initial=-np.inf))


def check_origin(
    origin_lps_mm: Sequence[float], spacing_mm: Sequence[float], size_ijk: Sequence[int], *, source: str
) -> None:
    """Check that the origin is finite and every voxel lies within :data:`MAX_POSITION_MM` of (0, 0, 0).

    Raises:
        VolumeValidationError: a NaN/infinite origin or one absurdly far away (e.g. 1e308 mm).
    """
    origin = [float(o) for o in origin_lps_mm]
    extent = float(np.linalg.norm([float(s) * max(int(n) - 1, 0) for s, n in zip(spacing_mm, size_ijk)]))
    if not all(np.isfinite(origin)) or max(abs(o) for o in origin) + extent > MAX_POSITION_MM:
        raise VolumeValidationError(
            f"{source} has an invalid origin {tuple(origin)} mm: a CT lies within {MAX_POSITION_MM / 1000:g} m of "
            "the scanner's origin, so the header is broken (measurements would overflow); fix the origin in the "
            "header or export the CT again"
        )


def check_direction(direction: np.ndarray, *, source: str) -> None:
    """Check that the 3x3 direction (columns: i, j, k in LPS) is orthonormal.

    Raises:
        VolumeValidationError: sheared or degenerate axes (e.g. gantry tilt stored as a sheared grid).
    """
    d = np.asarray(direction, dtype=float)
    if d.shape != (3, 3) or not np.all(np.isfinite(d)):
        raise VolumeValidationError(f"{source} has an invalid direction matrix {d.tolist()}: fix the header")
    gram = d.T @ d
    if not np.allclose(gram, np.eye(3), atol=1e-4):
        cos_ik = float(np.clip(abs(gram[0, 2]), 0.0, 1.0))
        cos_jk = float(np.clip(abs(gram[1, 2]), 0.0, 1.0))
        shear_deg = float(np.degrees(np.arcsin(max(cos_ik, cos_jk))))
        raise VolumeValidationError(
            f"{source} has sheared or non-unit image axes (direction {np.round(d, 4).tolist()}, slice axis "
            f"{shear_deg:.2f} degrees off perpendicular, e.g. gantry tilt): resample it onto a rectangular "
            "grid first (Slicer's DICOM import or dcm2niix do this)"
        )


#: Relative tolerance on slice steps: a step further than this from the median step is non-uniform.
SLICE_STEP_TOLERANCE = 0.01

#: Largest accepted angle (degrees) between the slice-to-slice step and the slice normal (gantry tilt).
MAX_TILT_DEG = 0.05


def describe_positions(values_mm: Sequence[float], limit: int = 5) -> str:
    """A short list of positions for a message (``'12.5, 15 mm and 3 more'``)."""
    shown = ", ".join(f"{v:g}" for v in list(values_mm)[:limit])
    more = len(values_mm) - limit
    return f"{shown} mm" + (f" and {more} more" if more > 0 else "")


def check_slice_steps(positions_mm: np.ndarray, *, source: str) -> tuple[float, list[int]]:
    """Check sorted slice positions along the normal; returns (median step, indices of irregular gaps).

    Args:
        positions_mm: positions of the slices along the slice normal, sorted ascending.
        source: what to name in messages.

    Returns:
        The median step in mm and the indices ``g`` of gaps ``positions[g] -> positions[g + 1]`` whose
        step differs from the median by more than :data:`SLICE_STEP_TOLERANCE` (empty when uniform).

    Raises:
        VolumeValidationError: two slices at the same position (duplicates).
    """
    steps = np.diff(positions_mm)
    duplicates = np.flatnonzero(steps < 1e-3)
    if duplicates.size:
        raise VolumeValidationError(
            f"{source} has {duplicates.size} duplicate slice position(s) at "
            f"{describe_positions(positions_mm[duplicates].tolist())} along the slice normal (two acquisitions, "
            "echoes or phases mixed in one series?): export one acquisition per series, or remove the duplicates"
        )
    step = float(np.median(steps))
    irregular = np.flatnonzero(np.abs(steps - step) > SLICE_STEP_TOLERANCE * step + 1e-4)
    return step, irregular.tolist()


def check_tilt(positions_lps_mm: np.ndarray, normal: np.ndarray, *, source: str) -> None:
    """Refuse slices whose positions do not advance along the slice normal (gantry tilt or shear).

    Args:
        positions_lps_mm: ``(n, 3)`` ImagePositionPatient of the slices in stack order.
        normal: unit normal of the slices (row direction x column direction).

    Raises:
        VolumeValidationError: the step leaves the normal by more than :data:`MAX_TILT_DEG`.
    """
    steps = np.diff(np.asarray(positions_lps_mm, dtype=float), axis=0)
    along = steps @ normal
    across = np.linalg.norm(steps - np.outer(along, normal), axis=1)
    angles = np.degrees(np.arctan2(across, np.abs(along)))
    worst = float(angles.max()) if angles.size else 0.0
    if worst > MAX_TILT_DEG:
        raise VolumeValidationError(
            f"{source} has a gantry tilt or shear: the slices advance {worst:.2f} degrees off the slice normal "
            f"(more than {MAX_TILT_DEG} degrees), so the voxels are not on a rectangular grid: resample it first "
            "(Slicer's DICOM import with 'acquisition geometry regularization', or dcm2niix) and read that file"
        )
