"""The ``.seg.nrrd`` writer checked by Slicer itself: a real MRML scene (slicer-core) reads the file with
Slicer's segmentation storage node; segments keep names, colours, label values and terminology, and the
segmentation exported on the reference volume's grid gives back the labelmap voxel for voxel, with the same
IJK-to-RAS matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _geometry_helpers import OBLIQUE

from SmoothSegNetLib import mrml
from SmoothSegNetLib.io.writers import write_seg_nrrd
from SmoothSegNetLib.terminology import output_segments
from SmoothSegNetLib.volume import Geometry

SHAPE_KJI = (8, 9, 10)
REFLECTED_PERMUTATION = [[0, 1, 0], [0, 0, -1], [-1, 0, 0]]
GEOMETRIES = {
    "reflected-permutation": Geometry.create(SHAPE_KJI, (0.7, 1.3, 2.9), (-12.5, 8.25, -100.0), REFLECTED_PERMUTATION),
    "oblique-reflected": Geometry.create(SHAPE_KJI, (0.8, 0.9, 3.0), (41.3, -77.7, 310.2), OBLIQUE[4][1]),
}


def labels() -> np.ndarray:
    out = np.zeros(SHAPE_KJI, np.uint8)
    out[1:6, 2:7, 1:4] = 1
    out[4, 5, 2] = 2
    out[6, 8, 9] = 2  # a corner voxel: a one-voxel shift or flip would lose it
    return out


def matrix(vtk_matrix: object) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_slicer_reads_the_seg_nrrd_exactly(tmp_path: Path, name: str) -> None:
    import slicer
    import vtk
    from vtk.util import numpy_support

    geometry = GEOMETRIES[name]
    path = write_seg_nrrd(tmp_path / "s.seg.nrrd", labels(), geometry, output_segments())
    headless = mrml.create_headless_scene()
    scene = headless.scene
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1

    segmentation = node.GetSegmentation()
    found = [segmentation.GetNthSegment(n) for n in range(segmentation.GetNumberOfSegments())]
    for segment, spec in zip(found, output_segments(), strict=True):
        assert segment.GetName() == spec.name
        assert segment.GetLabelValue() == spec.label
        assert segment.GetColor() == pytest.approx(spec.color_float)
        assert segment.GetTerminology() == spec.slicer_terminology_entry()

    reference = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    slicer.util.updateVolumeFromArray(reference, np.zeros(SHAPE_KJI, np.int16))
    reference.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(geometry.ijk_to_ras()))
    labelmap_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentIDs(ids)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(node, ids, labelmap_node, reference)
    image = labelmap_node.GetImageData()
    exported = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(SHAPE_KJI)
    assert np.array_equal(exported, labels())
    ijk_to_ras = vtk.vtkMatrix4x4()
    labelmap_node.GetIJKToRASMatrix(ijk_to_ras)
    np.testing.assert_allclose(matrix(ijk_to_ras), geometry.ijk_to_ras(), rtol=0, atol=1e-9)
