"""Fixtures for the MRML bridge tests: real MRML scenes from slicer-core and small ``segment``-like folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.io.writers import write_labelmap
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.volume import CTVolume, Geometry

SHAPE_KJI = (10, 14, 18)
#: Lesion 1: a 3x3x3 cube (27 voxels); lesion 2: a 2x2x2 cube (8 voxels); both inside the liver box.
LESION_1 = (slice(3, 6), slice(4, 7), slice(4, 7))
LESION_2 = (slice(5, 7), slice(8, 10), slice(10, 12))
LIVER = (slice(2, 8), slice(3, 11), slice(3, 15))


def rotation(axis: tuple[float, float, float], angle_deg: float) -> np.ndarray:
    """Rodrigues rotation matrix about ``axis``."""
    a = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = np.deg2rad(angle_deg)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


GEOMETRIES = {
    "oblique": Geometry.create(SHAPE_KJI, (0.7, 0.9, 2.5), (-41.5, 17.25, 102.0), rotation((1.0, 2.0, 0.5), 23.0)),
    "anisotropic-flipped": Geometry.create(
        SHAPE_KJI, (0.8, 1.3, 5.0), (12.0, -7.5, -30.0), [[-1, 0, 0], [0, 0, 1], [0, -1, 0]]
    ),
}


def synthetic_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ct int16 HU, labelmap uint8 1 liver 2 tumor, lesions uint16) on SHAPE_KJI, asymmetric on purpose."""
    ct = np.full(SHAPE_KJI, -100, dtype=np.int16)
    ct[LIVER] = 60
    labelmap = np.zeros(SHAPE_KJI, dtype=np.uint8)
    labelmap[LIVER] = 1
    lesions = np.zeros(SHAPE_KJI, dtype=np.uint16)
    for lesion_id, box, hu in ((1, LESION_1, 20), (2, LESION_2, 140)):
        labelmap[box] = 2
        lesions[box] = lesion_id
        ct[box] = hu
    return ct, labelmap, lesions


def add_volume(scene: Any, array_kji: np.ndarray, geometry: Geometry, name: str = "CT") -> Any:
    """A scalar volume node holding ``array_kji`` on ``geometry`` (as Slicer would after loading a file)."""
    import slicer

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, array_kji)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(geometry.ijk_to_ras()))
    return node


def measured_report(geometry: Geometry) -> dict[str, Any]:
    """The engine's report (helper E's ``measure``) of the synthetic arrays, lesion 1 with a confidence."""
    ct, labelmap, lesions = synthetic_arrays()
    return measure(CTVolume(ct, geometry), labelmap, lesions, confidence={1: 0.75})


def write_segment_folder(folder: Path, geometry: Geometry, report: dict[str, Any] | None = None) -> Path:
    """A folder shaped like the output of ``smoothsegnet segment`` for the synthetic arrays (engine writers)."""
    _, labelmap, lesions = synthetic_arrays()
    folder.mkdir(parents=True, exist_ok=True)
    write_labelmap(folder / "segmentation.nrrd", labelmap, geometry)
    write_labelmap(folder / "lesions.nrrd", lesions, geometry)
    report = report if report is not None else measured_report(geometry)
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return folder
