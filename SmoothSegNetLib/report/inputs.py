"""Reading a labelmap (1 liver, 2 tumor) to measure, and checking that it lies on the CT's grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib import validation
from SmoothSegNetLib.errors import InputError, VolumeReadError
from SmoothSegNetLib.volume import CTVolume, Geometry

LABELMAP_SUFFIXES = (".seg.nrrd", ".nrrd", ".nhdr", ".nii.gz", ".nii", ".mha", ".mhd")
#: Largest position difference (mm) between a labelmap's and the CT's voxels still taken as the same grid
#: (NRRD/NIfTI headers round matrices to about 1e-6 relative).
GRID_TOLERANCE_MM = 1e-3


def read_labelmap(
    path: str | Path, name: str = "LABELMAP", *, reference: Geometry | None = None, max_voxels: int | None = None
) -> tuple[np.ndarray, Geometry]:
    """Read an integer labelmap ``[k, j, i]`` and its geometry from an image file or a Slicer .seg.nrrd.

    The header is checked first, before any voxel is read: its declared size against the memory budget, its
    geometry (finite origin, orthonormal axes) and, with ``reference``, that it lies on that grid.

    Args:
        path: the labelmap file.
        name: what to call it in messages (the command line argument).
        reference: the CT's grid the labelmap must lie on (checked from the header).
        max_voxels: memory budget in voxels (default :data:`SmoothSegNetLib.validation.DEFAULT_MAX_VOXELS`).

    Raises:
        InputError: missing file, unknown ending, unreadable, too large, not 3D, sheared, off the reference
            grid, or not integer.
    """
    source = Path(path)
    lower = source.name.lower()
    if not source.exists():
        raise VolumeReadError(f"{name} {str(source)!r} does not exist: give the path of a labelmap file")
    validation.check_input_path(source, want="file")
    if not lower.endswith(LABELMAP_SUFFIXES):
        raise VolumeReadError(f"{name} {source} must end with one of {', '.join(LABELMAP_SUFFIXES)}")
    reader, geometry = _read_header(source, name, max_voxels)
    if reference is not None and geometry is not None:
        require_same_grid(geometry, reference, name)
    if lower.endswith(".seg.nrrd"):
        from SmoothSegNetLib.io.writers import read_seg_nrrd

        array, seg_geometry, _segments = read_seg_nrrd(source)
        return np.asarray(array), seg_geometry
    import SimpleITK as sitk

    try:
        image = reader.Execute()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise VolumeReadError(f"cannot read the voxels of {name} {source}: {first}") from exc
    array = sitk.GetArrayFromImage(image)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} {source} has voxel type {array.dtype}: a labelmap must hold integer labels")
    return array, geometry if geometry is not None else Geometry.from_sitk(image)


def _read_header(source: Path, name: str, max_voxels: int | None) -> tuple[Any, Geometry | None]:
    """An ImageFileReader with the header read and checked, and the geometry (None for a layered .seg.nrrd)."""
    import SimpleITK as sitk

    from SmoothSegNetLib.io.file_headers import check_file_header
    from SmoothSegNetLib.io.readers import format_of

    image_io = format_of(source)
    label = f"{name} {source}"
    layered = source.name.lower().endswith(".seg.nrrd")  # may be 4D: one layer per group of overlapping segments
    check_file_header(source, image_io, max_dimension=4 if layered else 3)
    reader = sitk.ImageFileReader()
    reader.SetImageIO(image_io)
    reader.SetFileName(str(source))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise VolumeReadError(f"cannot read {label}: {first}") from exc
    size = tuple(int(n) for n in reader.GetSize())
    components = int(reader.GetNumberOfComponents())
    validation.check_voxel_budget((*size, components) if components != 1 else size, max_voxels, source=label)
    if layered and (len(size) != 3 or components != 1):
        return reader, None  # a layered segmentation: read_seg_nrrd says what to do
    if len(size) != 3 or components != 1:
        kind = f"{components} values per voxel" if components != 1 else f"a {len(size)}D image"
        raise VolumeReadError(f"{label} must be a 3D image with one label value per voxel, got {kind} (size {size})")
    validation.check_spacing(reader.GetSpacing(), source=label)
    direction = np.reshape(reader.GetDirection(), (3, 3))
    validation.check_direction(direction, source=label)
    validation.check_origin(reader.GetOrigin(), reader.GetSpacing(), size, source=label)
    geometry = Geometry.create(size[::-1], reader.GetSpacing(), reader.GetOrigin(), direction)
    return reader, geometry


def require_same_grid(labels_geometry: Geometry, ct: CTVolume | Geometry, name: str = "LABELMAP") -> None:
    """InputError that says how the grids differ when the labelmap is not on the CT's voxels."""
    g = ct.geometry if isinstance(ct, CTVolume) else ct
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


def labelmap_warnings(labels: np.ndarray) -> list[str]:
    """Warnings for a labelmap that measures but is unlikely to be what was meant (exit 0, but say it).

    Args:
        labels: ``[k, j, i]`` with 0 background, 1 liver, 2 tumor.
    """
    liver = int(np.count_nonzero(labels == 1))
    tumor = int(np.count_nonzero(labels == 2))
    if liver == 0 and tumor == 0:
        return ["the labelmap is empty (no liver, no tumor): every volume in the report is 0"]
    if tumor == labels.size:
        return ["every voxel of the labelmap is tumor (label 2): check that the labels are 1 liver, 2 tumor"]
    if liver == 0:
        return [
            "the labelmap has tumor but no liver (label 1): the liver volume counts tumor only and the tumor "
            "burden (TLVR) is 1; check that the labels are 1 liver, 2 tumor"
        ]
    return []
