"""Writers: formats and compression, refused inputs, no partial files, Slicer .seg.nrrd metadata."""

from __future__ import annotations

import gzip
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from _geometry_helpers import OBLIQUE, SHAPE_KJI, hu_array

from SmoothSegNetLib.errors import ExportError, InputError, VolumeReadError
from SmoothSegNetLib.io.writers import read_seg_nrrd, write_labelmap, write_seg_nrrd, write_volume
from SmoothSegNetLib.terminology import Code, SegmentSpec, TerminologyError, lesion_segments, output_segments
from SmoothSegNetLib.volume import CTVolume, Geometry

GEOMETRY = Geometry.create(SHAPE_KJI, (0.7, 1.3, 2.9), (-101.5, 22.25, -700.125), OBLIQUE[2][1])


def labels() -> np.ndarray:
    out = np.zeros(SHAPE_KJI, np.uint8)
    out[2:8, 1:6, 3:7] = 1  # liver: k 2..7, j 1..5, i 3..6
    out[4:6, 2:4, 4] = 2  # tumor: k 4..5, j 2..3, i 4
    return out


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- volumes and labelmaps --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint16])
@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha"])
def test_write_volume_keeps_the_voxel_type(tmp_path: Path, suffix: str, dtype: type) -> None:
    array = (hu_array(SHAPE_KJI) + (1000 if dtype is np.uint16 else 0)).astype(dtype)
    path = write_volume(tmp_path / f"v{suffix}", CTVolume(array, GEOMETRY))
    back = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert back.dtype == dtype and np.array_equal(back, array)
    assert files_in(tmp_path) == [f"v{suffix}"]  # no temporary left


def test_outputs_are_compressed(tmp_path: Path) -> None:
    flat = np.zeros((40, 40, 40), np.int16)  # 128 kB raw, compresses to almost nothing
    geometry = Geometry.create(flat.shape)
    nrrd_path = write_volume(tmp_path / "v.nrrd", CTVolume(flat, geometry))
    assert nrrd.read_header(str(nrrd_path))["encoding"] == "gzip"
    mha_path = write_volume(tmp_path / "v.mha", CTVolume(flat, geometry))
    assert b"CompressedData = True" in mha_path.read_bytes()[:1000]
    nii_path = write_labelmap(tmp_path / "l.nii.gz", flat.astype(np.uint8), geometry)
    assert gzip.decompress(nii_path.read_bytes())[344:348] == b"n+1\0"  # gzip stream holding a NIfTI-1 file
    label_path = write_labelmap(tmp_path / "l.nrrd", flat.astype(np.uint8), geometry)
    for path in (nrrd_path, mha_path, nii_path, label_path):
        assert path.stat().st_size < 5000, path


def test_write_labelmap_writes_bool_as_uint8(tmp_path: Path) -> None:
    path = write_labelmap(tmp_path / "m.nrrd", labels() > 0, GEOMETRY)
    back = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert back.dtype == np.uint8 and np.array_equal(back, (labels() > 0).astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.int8])
def test_write_labelmap_refuses_other_voxel_types(tmp_path: Path, dtype: type) -> None:
    with pytest.raises(ExportError, match=rf"labelmap_kji has voxel type {np.dtype(dtype)}; .* uint8 or uint16"):
        write_labelmap(tmp_path / "m.nrrd", labels().astype(dtype), GEOMETRY)
    assert files_in(tmp_path) == []


def test_write_labelmap_refuses_array_not_on_the_grid(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"shape \(8, 9, 10\) but the geometry has shape_kji \(10, 9, 8\)"):
        write_labelmap(tmp_path / "m.nrrd", labels().transpose(2, 1, 0), GEOMETRY)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(("name", "rule"), [("m.png", "unsupported ending"), ("m.seg.nrrd", "write_seg_nrrd")])
def test_write_labelmap_refuses_wrong_endings(tmp_path: Path, name: str, rule: str) -> None:
    with pytest.raises(ExportError, match=rule):
        write_labelmap(tmp_path / name, labels(), GEOMETRY)
    with pytest.raises(ExportError, match=rule):
        write_volume(tmp_path / name, CTVolume(hu_array(SHAPE_KJI), GEOMETRY))


def test_write_volume_refuses_masks(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="boolean; write masks with write_labelmap"):
        write_volume(tmp_path / "v.nrrd", CTVolume(labels() > 0, GEOMETRY))


# -- never overwrite an input, never leave a partial file -------------------------------------------------


def test_writers_refuse_to_overwrite_a_protected_input(tmp_path: Path) -> None:
    source = write_volume(tmp_path / "ct.nrrd", CTVolume(hu_array(SHAPE_KJI), GEOMETRY))
    before = source.read_bytes()
    with pytest.raises(InputError, match="refusing to overwrite the input"):
        write_labelmap(source, labels(), GEOMETRY, protect=[source])
    with pytest.raises(InputError, match="refusing to overwrite the input"):
        write_seg_nrrd(
            tmp_path / "x.seg.nrrd", labels(), GEOMETRY, output_segments(), protect=[tmp_path / "x.seg.nrrd"]
        )
    # write_volume protects the volume's own source file without being told.
    ct = CTVolume(hu_array(SHAPE_KJI, seed=9), GEOMETRY, source=str(source))
    with pytest.raises(InputError, match="refusing to overwrite the input"):
        write_volume(tmp_path / "." / "ct.nrrd", ct)
    assert source.read_bytes() == before
    assert files_in(tmp_path) == ["ct.nrrd"]


def test_failed_write_leaves_nothing_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = write_labelmap(tmp_path / "m.nrrd", labels(), GEOMETRY)
    before = target.read_bytes()

    def half_write(image: sitk.Image, name: str, useCompression: bool = False) -> None:
        Path(name).write_bytes(b"NRRD0004\ntype: uint8\n")  # a truncated file, then the disk "fills up"
        raise RuntimeError("itk::ERROR: NrrdImageIO: write failed\nNo space left on device")

    monkeypatch.setattr(sitk, "WriteImage", half_write)
    with pytest.raises(ExportError, match=r"cannot write .*m.nrrd: No space left on device"):
        write_labelmap(target, np.zeros(SHAPE_KJI, np.uint8), GEOMETRY)
    assert files_in(tmp_path) == ["m.nrrd"] and target.read_bytes() == before


def test_unwritable_destination_is_an_export_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(ExportError, match=r"cannot write .*choose a writable output folder"):
        write_labelmap(blocker / "m.nrrd", labels(), GEOMETRY)
    with pytest.raises(ExportError, match="cannot write"):
        write_seg_nrrd(blocker / "s.seg.nrrd", labels(), GEOMETRY, output_segments())
    assert files_in(tmp_path) == ["not-a-folder"]


# -- Slicer .seg.nrrd -------------------------------------------------------------------------------------


def test_seg_nrrd_read_by_slicerio_has_exact_metadata(tmp_path: Path) -> None:
    path = write_seg_nrrd(tmp_path / "s.seg.nrrd", labels(), GEOMETRY, output_segments())
    document = slicerio.read_segmentation(str(path))
    assert document["encoding"] == "gzip"
    np.testing.assert_allclose(document["ijkToLPS"], GEOMETRY.ijk_to_lps(), rtol=0, atol=1e-12)
    assert np.array_equal(document["voxels"].transpose(2, 1, 0), labels())  # slicerio reads [i, j, k]
    liver, tumor = document["segments"]
    assert (liver["id"], liver["name"], liver["labelValue"], liver["layer"]) == ("liver", "Liver", 1, 0)
    assert (tumor["id"], tumor["name"], tumor["labelValue"], tumor["layer"]) == ("tumor", "Tumor", 2, 0)
    assert liver["color"] == pytest.approx([221 / 255, 130 / 255, 101 / 255])
    assert tumor["color"] == pytest.approx([1.0, 210 / 255, 0.0])
    assert liver["extent"] == [3, 6, 1, 5, 2, 7]  # i0 i1 j0 j1 k0 k1, inclusive
    assert tumor["extent"] == [4, 4, 2, 3, 4, 5]
    assert liver["terminology"] == {
        "contextName": "Segmentation category and type - DICOM master list",
        "category": ["SCT", "123037004", "Anatomical Structure"],
        "type": ["SCT", "10200004", "Liver"],
    }
    assert tumor["terminology"]["type"] == ["SCT", "108369006", "Neoplasm"]
    assert tumor["terminology"]["category"] == ["SCT", "49755003", "Morphologically Altered Structure"]
    assert tumor["terminology"]["anatomicRegion"] == ["SCT", "10200004", "Liver"]
    assert not liver["nameAutoGenerated"] and not liver["colorAutoGenerated"]
    assert document["containedRepresentationNames"] == ["Binary labelmap"]


def test_seg_nrrd_read_back_by_read_seg_nrrd(tmp_path: Path) -> None:
    segments = lesion_segments(3)
    lesions = np.zeros(SHAPE_KJI, np.uint16)
    lesions[1, 1, 1], lesions[2:4, 2, 2], lesions[9, 8, 7] = 1, 2, 3
    path = write_seg_nrrd(tmp_path / "lesions.seg.nrrd", lesions, GEOMETRY, segments)
    back, geometry, specs = read_seg_nrrd(path)
    assert back.dtype == np.uint16 and np.array_equal(back, lesions)
    np.testing.assert_allclose(geometry.ijk_to_lps(), GEOMETRY.ijk_to_lps(), rtol=0, atol=1e-12)
    assert [s.name for s in specs] == ["Lesion 1", "Lesion 2", "Lesion 3"]
    assert [(s.label, s.id, s.color_rgb, s.category, s.type, s.anatomic_region) for s in specs] == [
        (s.label, s.id, s.color_rgb, s.category, s.type, s.anatomic_region) for s in segments
    ]


def test_seg_nrrd_is_also_a_plain_nrrd_with_the_same_grid(tmp_path: Path) -> None:
    path = write_seg_nrrd(tmp_path / "s.seg.nrrd", labels(), GEOMETRY, output_segments())
    image = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(image), labels())
    assert Geometry.from_sitk(image).same_grid(GEOMETRY, atol=1e-9)


def test_empty_segment_is_kept_with_the_full_extent(tmp_path: Path) -> None:
    only_liver = np.where(labels() == 2, 1, labels()).astype(np.uint8)
    document = slicerio.read_segmentation(
        str(write_seg_nrrd(tmp_path / "s.seg.nrrd", only_liver, GEOMETRY, output_segments()))
    )
    assert document["segments"][1]["name"] == "Tumor"
    assert document["segments"][1]["extent"] == [0, 7, 0, 8, 0, 9]


def test_seg_nrrd_refuses_labels_without_a_segment(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"holds label values \[2\] that no segment describes"):
        write_seg_nrrd(tmp_path / "s.seg.nrrd", labels(), GEOMETRY, output_segments()[:1])
    assert files_in(tmp_path) == []


def test_seg_nrrd_refuses_duplicate_labels_and_wrong_ending(tmp_path: Path) -> None:
    liver = output_segments()[0]
    with pytest.raises(ExportError, match="unique labels and ids"):
        write_seg_nrrd(tmp_path / "s.seg.nrrd", labels() * 0, GEOMETRY, [liver, liver])
    with pytest.raises(ExportError, match=r"must end with '\.seg\.nrrd'"):
        write_seg_nrrd(tmp_path / "s.nrrd", labels(), GEOMETRY, output_segments())
    with pytest.raises(ExportError, match="segments is empty"):
        write_seg_nrrd(tmp_path / "s.seg.nrrd", labels() * 0, GEOMETRY, [])


def test_read_seg_nrrd_refuses_several_layers(tmp_path: Path) -> None:
    layers = np.zeros((2, *GEOMETRY.size_ijk), np.uint8)
    segments = [{"id": f"s{n}", "name": f"S{n}", "labelValue": 1, "layer": n} for n in range(2)]
    slicerio.write_segmentation(
        str(tmp_path / "l.seg.nrrd"), {"voxels": layers, "ijkToLPS": np.eye(4), "segments": segments}
    )
    with pytest.raises(VolumeReadError, match=r"has 2 layers .*collapse the layers in Slicer"):
        read_seg_nrrd(tmp_path / "l.seg.nrrd")


def test_read_seg_nrrd_refuses_segment_without_terminology(tmp_path: Path) -> None:
    voxels = labels().transpose(2, 1, 0).copy()
    document = {"voxels": voxels, "ijkToLPS": np.eye(4), "segments": [{"id": "a", "name": "Blob", "labelValue": 1}]}
    slicerio.write_segmentation(str(tmp_path / "t.seg.nrrd"), document)
    with pytest.raises(TerminologyError, match="segment 'Blob' has no TerminologyEntry"):
        read_seg_nrrd(tmp_path / "t.seg.nrrd")


def test_read_seg_nrrd_refuses_missing_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(VolumeReadError, match="does not exist"):
        read_seg_nrrd(tmp_path / "none.seg.nrrd")
    good = write_seg_nrrd(tmp_path / "s.seg.nrrd", labels(), GEOMETRY, output_segments()).read_bytes()
    cut = tmp_path / "cut.seg.nrrd"
    cut.write_bytes(good[: len(good) - 40])
    with pytest.raises(VolumeReadError, match="cannot read segmentation"):
        read_seg_nrrd(cut)


def test_custom_segment_spec_round_trips(tmp_path: Path) -> None:
    spec = SegmentSpec(1, "x", "Custom thing", (1, 2, 3), Code("DCM", "111", "A"), Code("SCT", "222", "B"))
    _, _, (back,) = read_seg_nrrd(write_seg_nrrd(tmp_path / "c.seg.nrrd", labels() == 1, GEOMETRY, [spec]))
    assert back == spec
