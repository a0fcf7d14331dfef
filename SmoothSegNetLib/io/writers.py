"""Writing CT volumes, labelmaps and Slicer segmentations, safely and on exactly the given grid.

Every writer goes through :func:`SmoothSegNetLib.outputs.atomic_path`: the file is written under a temporary
name beside the target and renamed when complete, so a failed write leaves nothing behind and never
replaces the previous file; a path listed in ``protect`` (the inputs of the job) is never overwritten.

Arrays are indexed ``[k, j, i]`` and geometry is LPS, as everywhere in the engine (see
:mod:`SmoothSegNetLib.volume`). NRRD and MHA keep the geometry at full double precision; NIfTI stores it in
32-bit floats (about 7 significant digits), which is the format's limit, not the writer's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from SmoothSegNetLib.errors import ExportError, VolumeReadError
from SmoothSegNetLib.outputs import atomic_path
from SmoothSegNetLib.volume import CTVolume, Geometry

if TYPE_CHECKING:
    from SmoothSegNetLib.terminology import Code, SegmentSpec

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: File name endings :func:`write_volume` accepts (format chosen by ending; compression where the format has it).
VOLUME_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha")
#: File name endings :func:`write_labelmap` accepts.
LABELMAP_SUFFIXES = (".nrrd", ".nii.gz", ".nii")
#: Integer types a labelmap may have on disk (Slicer reads both; DICOM-SEG and the report expect them).
LABELMAP_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def _suffix_of(path: Path, allowed: Sequence[str], what: str) -> str:
    name = path.name.lower()
    if name.endswith(".seg.nrrd"):
        raise ExportError(
            f"{what} path {str(path)!r} ends with '.seg.nrrd', which is a Slicer segmentation: "
            "use write_seg_nrrd for it, or name the file '.nrrd'"
        )
    for suffix in allowed:
        if name.endswith(suffix):
            return suffix
    raise ExportError(
        f"{what} path {str(path)!r} has an unsupported ending: use one of {', '.join(allowed)} "
        "(the format is chosen by the ending)"
    )


def _write_sitk(image: Any, target: Path, final: Path, compress: bool = True) -> None:
    """Write ``image`` to ``target`` (a temporary name), compressed unless told; errors become :class:`ExportError`."""
    import SimpleITK as sitk

    try:
        # .nii.gz is gzipped by its name; NRRD and MHA need the flag (gzip / zlib).
        sitk.WriteImage(image, str(target), useCompression=compress)
    except RuntimeError as exc:
        raise ExportError(f"cannot write {final}: {str(exc).strip().splitlines()[-1]}") from exc


@contextlib.contextmanager
def _atomic(final: Path, protect: Iterable[PathLike]) -> Iterator[Path]:
    """:func:`atomic_path`, with file-system failures (no folder, no space, no permission) as ExportError."""
    try:
        with atomic_path(final, protect=protect) as tmp:
            yield tmp
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ExportError(f"cannot write {final}: {reason}; choose a writable output folder") from exc


def _protect_list(protect: Iterable[PathLike], extra: Iterable[str] = ()) -> list[PathLike]:
    items: list[PathLike] = list(protect)
    items.extend(p for p in extra if p)
    return items


def write_volume(path: PathLike, ct: CTVolume, protect: Iterable[PathLike] = (), *, compress: bool = True) -> Path:
    """Write a CT volume, keeping its voxel type and geometry.

    Args:
        path: output file; ``.nrrd`` (gzip), ``.nii`` / ``.nii.gz`` or ``.mha`` (zlib) chosen by its ending.
        ct: the volume; ``ct.array`` ``[k, j, i]`` is written with its own dtype (int16 stays int16).
        protect: input paths that must never be overwritten (``ct.source`` and, for a DICOM source, its
            slice files are protected as well).
        compress: ``False`` writes NRRD/MHA uncompressed (a temporary file for a child process: gzip costs
            seconds on a real CT).

    Returns:
        The path written.

    Raises:
        ExportError: unsupported ending, unsupported voxel type, or the file cannot be written.
        InputError: ``path`` is one of the protected inputs.
    """
    final = Path(path)
    _suffix_of(final, VOLUME_SUFFIXES, "volume")
    array = np.asarray(ct.array)
    if array.dtype == np.bool_:
        raise ExportError("write_volume: ct.array is boolean; write masks with write_labelmap")
    extra = [ct.source] if ct.source and Path(ct.source).exists() else []
    if ct.dicom is not None:
        extra.extend(ct.dicom.paths)
    image = _to_sitk(array, ct.geometry, "ct.array")
    with _atomic(final, _protect_list(protect, extra)) as tmp:
        _write_sitk(image, tmp, final, compress)
    log.debug("wrote volume %s (%s, %s)", final, array.dtype, array.shape)
    return final


def _to_sitk(array: np.ndarray, geometry: Geometry, name: str) -> Any:
    import SimpleITK as sitk

    if array.shape != geometry.shape_kji:
        raise ExportError(
            f"{name} has shape {array.shape} but the geometry has shape_kji {geometry.shape_kji}: "
            "the array must be indexed [k, j, i] on exactly that grid"
        )
    try:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    except (RuntimeError, TypeError) as exc:
        raise ExportError(f"{name} has voxel type {array.dtype}, which cannot be written: {exc}") from exc
    geometry.apply_to(image)
    return image


def check_labelmap(labelmap_kji: Any, geometry: Geometry, name: str = "labelmap_kji") -> np.ndarray:
    """Return ``labelmap_kji`` as a uint8/uint16 array on ``geometry``'s grid, or raise :class:`ExportError`.

    Booleans become uint8 (0/1); other types are refused rather than silently converted.
    """
    array = np.asarray(labelmap_kji)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype not in LABELMAP_DTYPES:
        raise ExportError(
            f"{name} has voxel type {array.dtype}; a labelmap must be uint8 or uint16 "
            "(convert with .astype(np.uint8) after checking the values fit)"
        )
    if array.ndim != 3 or array.shape != geometry.shape_kji:
        raise ExportError(
            f"{name} has shape {array.shape} but the geometry has shape_kji {geometry.shape_kji}: "
            "a labelmap must be indexed [k, j, i] on exactly the geometry's grid"
        )
    return array


def write_labelmap(
    path: PathLike, labelmap_kji: np.ndarray, geometry: Geometry, protect: Iterable[PathLike] = ()
) -> Path:
    """Write a labelmap (uint8 or uint16, indexed ``[k, j, i]``) on ``geometry``.

    Args:
        path: ``.nrrd`` (gzip-compressed) or ``.nii`` / ``.nii.gz``.
        labelmap_kji: label values; bool is written as uint8 0/1, other types are refused.
        geometry: the grid the labels lie on (usually the input CT's).
        protect: input paths that must never be overwritten.

    Returns:
        The path written.

    Raises:
        ExportError: unsupported ending or voxel type, shape not matching the geometry, write failure.
        InputError: ``path`` is one of the protected inputs.
    """
    final = Path(path)
    _suffix_of(final, LABELMAP_SUFFIXES, "labelmap")
    array = check_labelmap(labelmap_kji, geometry)
    image = _to_sitk(array, geometry, "labelmap_kji")
    with _atomic(final, protect) as tmp:
        _write_sitk(image, tmp, final)
    log.debug("wrote labelmap %s (%s, %s)", final, array.dtype, array.shape)
    return final


def _extent_ijk(mask_kji: np.ndarray) -> list[int]:
    """Slicer segment extent ``i0 i1 j0 j1 k0 k1`` (inclusive) of the voxels set in ``mask_kji``; full if empty."""
    k, j, i = mask_kji.shape
    if not mask_kji.any():
        return [0, i - 1, 0, j - 1, 0, k - 1]
    bounds = []
    for axis in (2, 1, 0):  # i, j, k
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask_kji.any(axis=other))
        bounds.extend([int(hits[0]), int(hits[-1])])
    return bounds


def _check_segments(array: np.ndarray, segments: Sequence[SegmentSpec]) -> None:
    labels = [s.label for s in segments]
    if not segments:
        raise ExportError("segments is empty: give one SegmentSpec per label value (see terminology.output_segments)")
    if len(set(labels)) != len(labels) or len({s.id for s in segments}) != len(segments):
        raise ExportError(f"segments must have unique labels and ids, got labels {labels}")
    limit = int(np.iinfo(array.dtype).max)
    if any(not 1 <= label <= limit for label in labels):
        raise ExportError(f"segment labels must be 1..{limit} for a {array.dtype} labelmap, got {labels}")
    present = {int(v) for v in np.unique(array)} - {0}
    orphans = sorted(present - set(labels))
    if orphans:
        raise ExportError(
            f"labelmap_kji holds label values {orphans} that no segment describes: "
            "add a SegmentSpec for each, or zero those voxels"
        )


def write_seg_nrrd(
    path: PathLike,
    labelmap_kji: np.ndarray,
    geometry: Geometry,
    segments: Sequence[SegmentSpec],
    protect: Iterable[PathLike] = (),
) -> Path:
    """Write a Slicer segmentation file (``.seg.nrrd``): one gzip-compressed labelmap layer, one segment per label.

    Each segment gets Slicer's ``Segment{N}_ID / Name / Color / LabelValue / Layer / Extent / Tags`` keys; the
    tags hold the ``TerminologyEntry`` (category, type and anatomic region codes) so Slicer and DICOM-SEG
    export show the right concept. Name and colour are marked as not auto-generated, so Slicer keeps them.

    Args:
        path: output file, must end with ``.seg.nrrd``.
        labelmap_kji: uint8/uint16 (or bool) labels indexed ``[k, j, i]`` on ``geometry``.
        geometry: the grid (usually the input CT's), written at full double precision.
        segments: one :class:`~SmoothSegNetLib.terminology.SegmentSpec` per label value present; segments
            without voxels are allowed (an empty segment).
        protect: input paths that must never be overwritten.

    Returns:
        The path written.

    Raises:
        ExportError: wrong ending, voxel type or shape; a label without segment; duplicate labels; write failure.
        InputError: ``path`` is one of the protected inputs.
    """
    import slicerio
    from slicerio.segmentation import terminology_entry_from_string

    final = Path(path)
    if not final.name.lower().endswith(".seg.nrrd"):
        raise ExportError(f"segmentation path {str(final)!r} must end with '.seg.nrrd' (Slicer's segmentation file)")
    array = check_labelmap(labelmap_kji, geometry)
    _check_segments(array, segments)
    document: dict[str, Any] = {
        "voxels": np.ascontiguousarray(array),
        "ijkToLPS": geometry.ijk_to_lps(),
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
        "segments": [
            {
                "id": spec.id,
                "name": spec.name,
                "nameAutoGenerated": False,
                "color": list(spec.color_float),
                "colorAutoGenerated": False,
                "labelValue": spec.label,
                "layer": 0,
                "extent": _extent_ijk(array == spec.label),
                "terminology": terminology_entry_from_string(spec.slicer_terminology_entry()),
            }
            for spec in segments
        ],
    }
    with _atomic(final, protect) as tmp:
        try:
            # index_order "C": the array is [k, j, i]; the NRRD axes stay i, j, k as Slicer expects.
            slicerio.write_segmentation(str(tmp), document, compression_level=6, index_order="C")
        except ValueError as exc:
            raise ExportError(f"cannot write {final}: {exc}") from exc
    log.debug("wrote segmentation %s (%d segments)", final, len(segments))
    return final


def _code_from_slicer(raw: Any, where: str) -> Code:
    from SmoothSegNetLib.terminology import Code, TerminologyError

    if not isinstance(raw, list) or len(raw) != 3 or not all(raw):
        raise TerminologyError(f"{where} must be 'scheme^value^meaning', got {raw!r}: set the segment's terminology")
    return Code(scheme=raw[0], value=raw[1], meaning=raw[2])


def _spec_from_slicer(segment: Mapping[str, Any], source: Path) -> SegmentSpec:
    from SmoothSegNetLib.terminology import SegmentSpec, TerminologyError

    where = f"{source}: segment {segment.get('name', segment.get('id'))!r}"
    terminology = segment.get("terminology")
    if not terminology:
        raise TerminologyError(f"{where} has no TerminologyEntry tag: set its terminology in Slicer and save again")
    color = segment.get("color", [0.5, 0.5, 0.5])
    region = terminology.get("anatomicRegion")
    return SegmentSpec(
        label=int(segment.get("labelValue", 1)),
        id=str(segment["id"]),
        name=str(segment.get("name", segment["id"])),
        color_rgb=(round(color[0] * 255), round(color[1] * 255), round(color[2] * 255)),
        category=_code_from_slicer(terminology.get("category"), f"{where} category"),
        type=_code_from_slicer(terminology.get("type"), f"{where} type"),
        anatomic_region=_code_from_slicer(region, f"{where} anatomic region") if region else None,
    )


def read_seg_nrrd(path: PathLike) -> tuple[np.ndarray, Geometry, tuple[SegmentSpec, ...]]:
    """Read a one-layer Slicer ``.seg.nrrd``.

    Returns:
        ``(labelmap [k, j, i] uint8/uint16, geometry, segments)`` with segments in file order; colours are
        rounded back to 0..255 integers.

    Raises:
        VolumeReadError: missing, corrupt, not 3D, or several layers (overlapping segments).
        TerminologyError: a segment without terminology codes.
    """
    import nrrd
    import slicerio

    source = Path(path)
    if not source.is_file():
        raise VolumeReadError(f"segmentation file {str(source)!r} does not exist: give the path of a .seg.nrrd file")
    try:
        document = slicerio.read_segmentation(str(source))
    except (nrrd.errors.NRRDError, OSError, ValueError, KeyError, IndexError) as exc:
        raise VolumeReadError(f"cannot read segmentation {source}: {exc} (is it a complete .seg.nrrd file?)") from exc
    voxels = document["voxels"]
    if voxels.ndim != 3:
        raise VolumeReadError(
            f"segmentation {source} has {voxels.shape[0]} layers (overlapping segments): "
            "only one-layer segmentations are supported; collapse the layers in Slicer and save again"
        )
    labelmap = np.ascontiguousarray(voxels.transpose(2, 1, 0))  # NRRD (i, j, k) -> [k, j, i]
    if labelmap.dtype not in LABELMAP_DTYPES:
        if not np.issubdtype(labelmap.dtype, np.integer) or labelmap.min() < 0 or labelmap.max() > 65535:
            raise VolumeReadError(f"segmentation {source} has voxel type {labelmap.dtype} with values outside 0..65535")
        labelmap = labelmap.astype(np.uint8 if labelmap.max() <= 255 else np.uint16)
    geometry = Geometry.from_ijk_to_lps(document["ijkToLPS"], labelmap.shape)
    segments = tuple(_spec_from_slicer(segment, source) for segment in document.get("segments", []))
    return labelmap, geometry, segments
