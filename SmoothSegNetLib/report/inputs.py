"""Reading a labelmap (1 liver, 2 tumor) to measure, and checking that it lies on the CT's grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from SmoothSegNetLib.errors import InputError, VolumeReadError
from SmoothSegNetLib.volume import CTVolume, Geometry

LABELMAP_SUFFIXES = (".seg.nrrd", ".nrrd", ".nhdr", ".nii.gz", ".nii", ".mha", ".mhd")
#: Largest position difference (mm) between a labelmap's and the CT's voxels still taken as the same grid
#: (NRRD/NIfTI headers round matrices to about 1e-6 relative).
GRID_TOLERANCE_MM = 1e-3


def read_labelmap(path: str | Path, name: str = "LABELMAP") -> tuple[np.ndarray, Geometry]:
    """Read an integer labelmap ``[k, j, i]`` and its geometry from an image file or a Slicer .seg.nrrd.

    Raises:
        InputError: missing file, unknown ending, unreadable, not 3D or not integer.
    """
    source = Path(path)
    lower = source.name.lower()
    if not source.is_file():
        raise VolumeReadError(f"{name} {str(source)!r} does not exist: give the path of a labelmap file")
    if not lower.endswith(LABELMAP_SUFFIXES):
        raise VolumeReadError(f"{name} {source} must end with one of {', '.join(LABELMAP_SUFFIXES)}")
    if lower.endswith(".seg.nrrd"):
        from SmoothSegNetLib.io.writers import read_seg_nrrd

        array, geometry, _segments = read_seg_nrrd(source)
        return np.asarray(array), geometry
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(source))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise VolumeReadError(f"cannot read {name} {source}: {first}") from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeReadError(f"{name} {source} must be a 3D single-component image, got {image.GetDimension()}D")
    array = sitk.GetArrayFromImage(image)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} {source} has voxel type {array.dtype}: a labelmap must hold integer labels")
    return array, Geometry.from_sitk(image)


def require_same_grid(labels_geometry: Geometry, ct: CTVolume, name: str = "LABELMAP") -> None:
    """InputError that says how the grids differ when the labelmap is not on the CT's voxels."""
    g = ct.geometry
    if labels_geometry.same_grid(g, atol=GRID_TOLERANCE_MM):
        return
    if labels_geometry.shape_kji != g.shape_kji:
        detail = f"size (i, j, k) {labels_geometry.size_ijk} vs {g.size_ijk}"
    elif not np.allclose(labels_geometry.spacing_mm, g.spacing_mm, atol=GRID_TOLERANCE_MM):
        detail = f"spacing {labels_geometry.spacing_mm} vs {g.spacing_mm} mm"
    elif not np.allclose(labels_geometry.origin_lps_mm, g.origin_lps_mm, atol=GRID_TOLERANCE_MM):
        detail = f"origin {labels_geometry.origin_lps_mm} vs {g.origin_lps_mm} mm (LPS)"
    else:
        detail = "direction matrices differ"
    raise InputError(
        f"{name} is not on the CT's grid ({detail}): a report needs the labelmap on exactly the CT's voxels; "
        "resample the labelmap onto the CT (e.g. in Slicer: export the segmentation with the CT as reference)"
    )
