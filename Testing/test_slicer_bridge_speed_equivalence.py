"""Issue 15 "never freeze": :func:`mrml.labelmap_from_segmentation` reads Slicer's shared labelmap layers instead
of exporting every segment onto the full grid (4.0 s for 7 lesions on 512x512x300), and gives EXACTLY the result of
that per-segment export, on REAL slicer-core scenes edited as Segment Editor would (overlaps kept in separate
layers, hidden and emptied segments, hand-added segments, segments off the CT grid). Timings: bench/slicer_bridge.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _mrml_helpers import GEOMETRIES, LESION_1, LESION_2, LIVER, add_volume, synthetic_arrays, write_segment_folder

from SmoothSegNetLib import mrml
from SmoothSegNetLib.slicer_support.masks import BoxMask
from SmoothSegNetLib.volume import Geometry


def _lesion_order(segment: Any) -> tuple[int, int]:
    tag = mrml._tag(segment, mrml.TAG_LESION_ID)
    return (0, int(tag)) if tag is not None and tag.isdigit() else (1, 0)


def per_segment_reference(node: Any, volume: Any) -> mrml.SegmentationArrays:
    """The algorithm this replaces, kept as the reference: one ExportSegmentsToLabelmapNode per segment."""
    reference = mrml.geometry_from_node(volume)
    labelmap = np.zeros(reference.shape_kji, np.uint8)
    lesions = np.zeros(reference.shape_kji, np.uint16)
    segmentation = node.GetSegmentation()
    tumors, liver_edited = [], False
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segment_id)
        role = mrml._segment_role(segment)
        if role is None:
            continue
        mask = mrml._export_segment(node, segment_id, volume, reference)
        tag = mrml._tag(segment, mrml.TAG_DIGEST)
        if role == 1:
            labelmap[mask & (labelmap == 0)] = 1
            liver_edited = liver_edited or not BoxMask.from_full(mask).matches(tag)
        elif mask.any():
            tumors.append((segment_id, segment, mask, tag))
    lesion_ids, edited = {}, []
    for lesion_id, (segment_id, _segment, mask, tag) in enumerate(
        sorted(tumors, key=lambda t: _lesion_order(t[1])), start=1
    ):
        labelmap[mask] = 2
        lesions[mask & (lesions == 0)] = lesion_id
        lesion_ids[lesion_id] = segment_id
        if not BoxMask.from_full(mask).matches(tag):
            edited.append(lesion_id)
    return mrml.SegmentationArrays(labelmap, lesions, lesion_ids, tuple(edited), liver_edited, reference)


def _scene(tmp_path: Path, geometry_name: str) -> tuple[Any, Any, Geometry]:
    geometry = GEOMETRIES[geometry_name]
    headless = mrml.create_headless_scene()
    volume = add_volume(headless.scene, synthetic_arrays()[0], geometry)
    node = mrml.import_result(headless.scene, write_segment_folder(tmp_path / geometry_name, geometry), volume)
    node._keep = headless  # the logics live as long as the node is used
    return node, volume, geometry


def _paint(node: Any, segment_id: str, mask: np.ndarray, geometry: Geometry) -> None:
    """Replace a segment's voxels as Segment Editor does (an overlap with other segments is kept)."""
    import slicer

    image = mrml._oriented_image(mask, geometry)
    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(image, node, segment_id)


def _add(node: Any, name: str, mask: np.ndarray | None, geometry: Geometry) -> str:
    segment_id = node.GetSegmentation().AddEmptySegment("", name)
    if mask is not None:
        _paint(node, segment_id, mask, geometry)
    return str(segment_id)


def _box(box: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[box] = True
    return mask


def as_imported(node: Any, geometry: Geometry) -> None:
    pass


def lesion_painted_over_liver(node: Any, geometry: Geometry) -> None:
    grown = _box(LESION_1, geometry.shape_kji)
    grown[3:6, 4:7, 7:9] = True  # 18 liver voxels: the lesion must win them as tumor, the liver keeps them too
    _paint(node, "lesion_1", grown, geometry)


def hidden_and_emptied_segments(node: Any, geometry: Geometry) -> None:
    node.GetDisplayNode().SetSegmentVisibility("lesion_2", False)  # hidden: still measured
    _paint(node, "lesion_1", np.zeros(geometry.shape_kji, bool), geometry)  # emptied: closes its gap
    _add(node, "Lesion (new)", None, geometry)  # added and left empty: no lesion


def overlapping_lesions_and_hand_added_segments(node: Any, geometry: Geometry) -> None:
    shape = geometry.shape_kji
    over = _box(LESION_2, shape)
    over[3:6, 5:7, 5:7] = True  # lesion 2 painted over part of lesion 1: the lower id keeps it
    _paint(node, "lesion_2", over, geometry)
    _add(node, "Tumor", _box((slice(2, 4), slice(9, 11), slice(12, 14)), shape), geometry)  # hand-drawn, by name
    _add(node, "Bone", _box((slice(0, 2), slice(0, 3), slice(0, 3)), shape), geometry)  # neither: ignored
    _add(node, "Lesion extra", _box((slice(6, 8), slice(3, 5), slice(12, 14)), shape), geometry)


def liver_erased_and_legacy_digest(node: Any, geometry: Geometry) -> None:
    liver = _box(LIVER, geometry.shape_kji) & (synthetic_arrays()[1] == 1)
    liver[2:4] = False  # two slices of liver erased
    _paint(node, "liver", liver, geometry)
    # A scene saved before digests were taken by bounding box: its lesion 2 is unedited all the same.
    legacy = BoxMask.from_full(synthetic_arrays()[2] == 2).legacy_digest()
    node.GetSegmentation().GetSegment("lesion_2").SetTag(mrml.TAG_DIGEST, legacy)


def off_grid_and_beyond_the_grid(node: Any, geometry: Geometry) -> None:
    """A segment drawn on a finer grid (Segment Editor's oversampling) and one reaching outside the CT."""
    fine_shape = tuple(2 * n for n in geometry.shape_kji)
    half = Geometry.create(
        fine_shape,
        tuple(s / 2 for s in geometry.spacing_mm),
        geometry.origin_lps_mm,
        geometry.direction,
    )
    fine = np.zeros(fine_shape, bool)
    fine[7:12, 9:13, 9:13] = True  # over lesion 1 (kept apart from it, in a layer of its own)
    _add(node, "Lesion fine", fine, half)
    wide_shape = (geometry.shape_kji[0] + 4, geometry.shape_kji[1], geometry.shape_kji[2])
    shifted = Geometry.create(
        wide_shape,
        geometry.spacing_mm,
        tuple(np.asarray(geometry.origin_lps_mm) - 2 * np.asarray(geometry.direction)[:, 2] * geometry.spacing_mm[2]),
        geometry.direction,
    )
    beyond = np.zeros(wide_shape, bool)
    beyond[0:5, 2:4, 2:4] = True  # slices -2..2 of the CT grid: only 0..2 are inside it
    _add(node, "Lesion edge", beyond, shifted)


EDITS: list[Callable[[Any, Geometry], None]] = [
    as_imported,
    lesion_painted_over_liver,
    hidden_and_emptied_segments,
    overlapping_lesions_and_hand_added_segments,
    liver_erased_and_legacy_digest,
    off_grid_and_beyond_the_grid,
]


def _same(a: mrml.SegmentationArrays, b: mrml.SegmentationArrays) -> None:
    assert a.labelmap.dtype == b.labelmap.dtype and a.lesions.dtype == b.lesions.dtype
    np.testing.assert_array_equal(a.labelmap, b.labelmap)
    np.testing.assert_array_equal(a.lesions, b.lesions)
    assert (a.lesion_ids, a.edited_lesion_ids, a.liver_edited) == (b.lesion_ids, b.edited_lesion_ids, b.liver_edited)


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("geometry_name", sorted(GEOMETRIES))
def test_layers_give_exactly_the_per_segment_export(tmp_path: Path, geometry_name: str, edit: Callable) -> None:
    node, volume, geometry = _scene(tmp_path, geometry_name)
    edit(node, geometry)
    _same(mrml.labelmap_from_segmentation(node, volume), per_segment_reference(node, volume))


def test_hand_computed_answers_of_the_odd_cases(tmp_path: Path) -> None:
    """The reference itself, checked by hand on the cases the issue names."""
    node, volume, geometry = _scene(tmp_path, "oblique")
    lesion_painted_over_liver(node, geometry)
    arrays = mrml.labelmap_from_segmentation(node, volume)
    assert (arrays.labelmap[3:6, 4:7, 7:9] == 2).all() and (arrays.lesions[3:6, 4:7, 7:9] == 1).all()
    assert int((arrays.lesions == 1).sum()) == 27 + 18 and arrays.edited_lesion_ids == (1,)
    assert not arrays.liver_edited  # the liver segment itself was not touched

    node, volume, geometry = _scene(tmp_path / "b", "oblique")
    hidden_and_emptied_segments(node, geometry)
    arrays = mrml.labelmap_from_segmentation(node, volume)
    assert arrays.lesion_ids == {1: "lesion_2"} and int((arrays.lesions == 1).sum()) == 8
    assert arrays.edited_lesion_ids == ()  # the hidden lesion 2 is as imported; emptied ones are gone

    node, volume, geometry = _scene(tmp_path / "c", "oblique")
    overlapping_lesions_and_hand_added_segments(node, geometry)
    arrays = mrml.labelmap_from_segmentation(node, volume)
    assert list(arrays.lesion_ids.values())[:2] == ["lesion_1", "lesion_2"]  # imported first, then hand-added
    assert (arrays.lesions[3:6, 5:7, 5:7] == 1).all()  # the overlap stays with the lower id
    assert arrays.edited_lesion_ids == (2, 3, 4)

    node, volume, geometry = _scene(tmp_path / "d", "oblique")
    liver_erased_and_legacy_digest(node, geometry)
    arrays = mrml.labelmap_from_segmentation(node, volume)
    assert arrays.liver_edited and arrays.edited_lesion_ids == ()


def test_segments_on_the_ct_grid_need_no_export_per_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost model: no full-grid export for segments already on the grid; one for a segment that is not."""
    calls: list[str] = []
    export = mrml._export_segment

    def counting(node: Any, segment_id: str, volume: Any, reference: Geometry) -> np.ndarray:
        calls.append(segment_id)
        return export(node, segment_id, volume, reference)

    monkeypatch.setattr(mrml, "_export_segment", counting)
    node, volume, geometry = _scene(tmp_path, "anisotropic-flipped")
    lesion_painted_over_liver(node, geometry)  # two layers now, both on the grid
    mrml.labelmap_from_segmentation(node, volume)
    assert calls == []
    node, volume, geometry = _scene(tmp_path / "b", "anisotropic-flipped")
    off_grid_and_beyond_the_grid(node, geometry)  # a finer layer, and a layer that starts 2 slices before the CT
    segmentation = node.GetSegmentation()
    fine_layer = segmentation.GetLayerIndex(segmentation.GetSegmentIdBySegmentName("Lesion fine"))
    assert segmentation.GetSegmentIDsForLayer(fine_layer) == (segmentation.GetSegmentIdBySegmentName("Lesion fine"),)
    mrml.labelmap_from_segmentation(node, volume)
    assert calls == [segmentation.GetSegmentIdBySegmentName("Lesion fine")]  # only it needs Slicer's resampling


def test_digest_tells_equal_masks_from_different_ones() -> None:
    shape = (4, 5, 6)
    a = np.zeros(shape, bool)
    a[1:3, 2, 3:5] = True
    same = BoxMask.from_region(shape, (1, 2, 3), np.ones((2, 1, 2), bool))
    assert BoxMask.from_full(a).digest() == same.digest() and same.digest().startswith("v2:")
    moved = np.roll(a, 1, axis=2)
    assert BoxMask.from_full(moved).digest() != same.digest()
    assert BoxMask.from_full(np.zeros(shape, bool)).digest() != BoxMask.from_full(np.zeros((4, 5, 7), bool)).digest()
    assert same.matches(BoxMask.from_full(a).legacy_digest()) and not same.matches(None)
    np.testing.assert_array_equal(same.full(), a)
