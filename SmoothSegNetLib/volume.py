"""The CT volume type: a voxel array and its geometry in the patient (LPS) coordinate system.

Axis order. ``CTVolume.array`` is indexed ``array[k, j, i]`` (slice, row, column), the order of
``SimpleITK.GetArrayFromImage`` and ``slicer.util.arrayFromVolume``. Geometry is given per *image* axis
in ``(i, j, k)`` order: ``spacing_mm[0]`` is the column spacing, and ``direction[:, 0]`` is the LPS unit
vector of the i axis. The LPS position of voxel index ``(i, j, k)`` is::

    origin_lps_mm + direction @ (spacing_mm * (i, j, k))

Slicer uses RAS: :meth:`Geometry.ijk_to_ras` and :meth:`Geometry.from_ijk_to_ras` convert exactly
(flip of the first two world axes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import SimpleITK as sitk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

#: Tolerance used when checking that a direction matrix is orthonormal.
ORTHONORMAL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Geometry:
    """Where the voxels of a 3D image lie in the patient, in LPS millimetres.

    Attributes:
        shape_kji: Array shape ``(k, j, i)`` = (slices, rows, columns).
        spacing_mm: Voxel size along ``(i, j, k)``, all > 0.
        origin_lps_mm: LPS position of the centre of voxel ``(0, 0, 0)``.
        direction: 3x3 matrix whose columns are the LPS unit vectors of the i, j, k axes.
    """

    shape_kji: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_lps_mm: tuple[float, float, float]
    direction: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]

    def __post_init__(self) -> None:
        if len(self.shape_kji) != 3 or any(int(n) < 1 for n in self.shape_kji):
            raise ValueError(f"shape_kji must be three positive sizes, got {self.shape_kji!r}")
        if len(self.spacing_mm) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing_mm):
            raise ValueError(f"spacing_mm must be three finite values > 0, got {self.spacing_mm!r}")
        if len(self.origin_lps_mm) != 3 or not all(np.isfinite(o) for o in self.origin_lps_mm):
            raise ValueError(f"origin_lps_mm must be three finite values, got {self.origin_lps_mm!r}")
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3) or not np.all(np.isfinite(d)):
            raise ValueError(f"direction must be a finite 3x3 matrix, got {self.direction!r}")
        if not np.allclose(d.T @ d, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
            raise ValueError(
                "direction must be orthonormal (the image axes must be perpendicular unit vectors); "
                f"got {d.tolist()} — a sheared grid (e.g. gantry tilt) must be resampled first"
            )

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        shape_kji: Any,
        spacing_mm: Any = (1.0, 1.0, 1.0),
        origin_lps_mm: Any = (0.0, 0.0, 0.0),
        direction: Any = None,
    ) -> Geometry:
        """Build a geometry from array-likes (``direction`` defaults to identity)."""
        d = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
        return cls(
            shape_kji=tuple(int(n) for n in shape_kji),  # type: ignore[arg-type]
            spacing_mm=tuple(float(s) for s in spacing_mm),  # type: ignore[arg-type]
            origin_lps_mm=tuple(float(o) for o in origin_lps_mm),  # type: ignore[arg-type]
            direction=tuple(tuple(float(x) for x in row) for row in d),  # type: ignore[arg-type]
        )

    @classmethod
    def from_ijk_to_lps(cls, matrix: Any, shape_kji: Any) -> Geometry:
        """Build from a 4x4 IJK-to-LPS matrix (spacing is the column norms)."""
        m = np.asarray(matrix, dtype=float)
        if m.shape != (4, 4):
            raise ValueError(f"matrix must be 4x4, got shape {m.shape}")
        linear = m[:3, :3]
        spacing = np.linalg.norm(linear, axis=0)
        if np.any(spacing <= 0):
            raise ValueError(f"matrix has a zero-length axis: column norms {spacing.tolist()}")
        return cls.create(shape_kji, spacing, m[:3, 3], linear / spacing)

    @classmethod
    def from_ijk_to_ras(cls, matrix: Any, shape_kji: Any) -> Geometry:
        """Build from Slicer's 4x4 IJK-to-RAS matrix (``vtkMRMLVolumeNode.GetIJKToRASMatrix``)."""
        m = np.array(matrix, dtype=float)
        if m.shape != (4, 4):
            raise ValueError(f"matrix must be 4x4, got shape {m.shape}")
        m[:3, :] = LPS_TO_RAS @ m[:3, :]
        return cls.from_ijk_to_lps(m, shape_kji)

    # -- derived ------------------------------------------------------------------------------
    @property
    def direction_array(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float)

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.shape_kji
        return (i, j, k)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_mm))

    def ijk_to_lps(self) -> np.ndarray:
        """The 4x4 matrix mapping homogeneous ``(i, j, k, 1)`` to LPS millimetres."""
        m = np.eye(4)
        m[:3, :3] = self.direction_array * np.asarray(self.spacing_mm, dtype=float)
        m[:3, 3] = self.origin_lps_mm
        return m

    def ijk_to_ras(self) -> np.ndarray:
        """Slicer's 4x4 IJK-to-RAS matrix."""
        m = self.ijk_to_lps()
        m[:3, :] = LPS_TO_RAS @ m[:3, :]
        return m

    def index_to_lps(self, ijk: Any) -> np.ndarray:
        """LPS positions of ``(..., 3)`` continuous indices given in ``(i, j, k)`` order."""
        ijk = np.asarray(ijk, dtype=float)
        m = self.ijk_to_lps()
        return ijk @ m[:3, :3].T + m[:3, 3]

    def lps_to_index(self, lps: Any) -> np.ndarray:
        """Continuous ``(i, j, k)`` indices of ``(..., 3)`` LPS positions."""
        lps = np.asarray(lps, dtype=float)
        m = self.ijk_to_lps()
        inv = np.linalg.inv(m[:3, :3])
        return (lps - m[:3, 3]) @ inv.T

    def same_grid(self, other: Geometry, atol: float = 1e-4) -> bool:
        """True if both geometries put the same voxels at the same places (to ``atol`` mm)."""
        return self.shape_kji == other.shape_kji and np.allclose(self.ijk_to_lps(), other.ijk_to_lps(), atol=atol)

    def with_shape(self, shape_kji: Any) -> Geometry:
        k, j, i = (int(n) for n in shape_kji)
        return replace(self, shape_kji=(k, j, i))

    # -- SimpleITK ----------------------------------------------------------------------------
    def apply_to(self, image: sitk.Image) -> None:
        """Set spacing, origin and direction of a SimpleITK image in place."""
        image.SetSpacing(self.spacing_mm)
        image.SetOrigin(self.origin_lps_mm)
        image.SetDirection(tuple(self.direction_array.ravel()))

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Geometry:
        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        i, j, k = image.GetSize()
        return cls.create((k, j, i), image.GetSpacing(), image.GetOrigin(), np.reshape(image.GetDirection(), (3, 3)))


@dataclass(frozen=True)
class DicomSlice:
    """Identifiers of one source slice (a classic file or a frame of an Enhanced CT object), for DICOM-SEG/SR
    references (k order of the volume)."""

    sop_instance_uid: str
    sop_class_uid: str
    path: str
    position_lps_mm: tuple[float, float, float]
    #: 1-based frame number within a multi-frame (Enhanced CT) source object; ``None`` for a single-frame file.
    frame_number: int | None = None


@dataclass(frozen=True)
class DicomSource:
    """What a DICOM export needs to know about the source series.

    Attributes:
        study_instance_uid, series_instance_uid, frame_of_reference_uid: source identifiers.
        slices: one entry per volume slice, in the volume's k order.
        attributes: patient/study-level attributes copied into derived objects
            (PatientName, PatientID, PatientBirthDate, PatientSex, StudyDate, StudyTime, StudyID,
            AccessionNumber, ReferringPhysicianName, Manufacturer, SeriesDescription, SeriesNumber, ...).
    """

    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    slices: tuple[DicomSlice, ...]
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.slices]


@dataclass(frozen=True)
class CTVolume:
    """A CT image in Hounsfield units with its geometry.

    Attributes:
        array: voxel values, shape ``geometry.shape_kji``, indexed ``[k, j, i]``.
        geometry: where the voxels are (LPS).
        source: path (or description) it was read from.
        dicom: source DICOM identifiers when read from a DICOM series, else ``None``.
        warnings: notes gathered while reading (carried into the report).
    """

    array: np.ndarray
    geometry: Geometry
    source: str = ""
    dicom: DicomSource | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.array, np.ndarray):
            raise TypeError(f"array must be a numpy array, got {type(self.array).__name__}")
        if self.array.shape != self.geometry.shape_kji:
            raise ValueError(
                f"array shape {self.array.shape} does not match geometry shape_kji {self.geometry.shape_kji}"
            )

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with the same voxels and geometry (array copied)."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        self.geometry.apply_to(image)
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, source: str = "", warnings: tuple[str, ...] = ()) -> CTVolume:
        import SimpleITK as sitk

        geometry = Geometry.from_sitk(image)
        return cls(sitk.GetArrayFromImage(image), geometry, source=source, warnings=warnings)

    @classmethod
    def from_ijk_to_ras(cls, array: np.ndarray, ijk_to_ras: Any, source: str = "") -> CTVolume:
        """From a ``[k, j, i]`` array and Slicer's IJK-to-RAS matrix."""
        return cls(np.asarray(array), Geometry.from_ijk_to_ras(ijk_to_ras, np.shape(array)), source=source)

    def with_array(self, array: np.ndarray) -> CTVolume:
        return replace(self, array=array)
