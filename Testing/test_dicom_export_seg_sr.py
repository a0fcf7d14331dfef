"""DICOM-SEG and DICOM SR from a real (generated) oblique CT series: dciodvfy-clean, read back exactly."""

from __future__ import annotations

import dataclasses
import functools
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from _report_helpers import OBLIQUE, ellipsoid_mask, grid
from conftest import require_tool
from pydicom.sr.codedict import codes

from SmoothSegNetLib.case_outputs import write_case_outputs
from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.io import read_volume, write_ct_series
from SmoothSegNetLib.outputs import StagedOutputDir
from SmoothSegNetLib.report import label_lesions, measure
from SmoothSegNetLib.volume import CTVolume

MODELS = [
    {"id": "smoothsegnet-demo-liver", "title": "Demo liver", "version": "1.0", "sha256": "a" * 64, "task": "liver"},
    {"id": "smoothsegnet-demo-tumor", "title": "Demo tumor", "version": "1.1", "sha256": "b" * 64, "task": "tumor"},
]

pytestmark = pytest.mark.dciodvfy


def _case() -> tuple[CTVolume, np.ndarray]:
    g = grid((12, 40, 48), (1.0, 1.2, 2.5), OBLIQUE)
    liver = ellipsoid_mask(g, g.index_to_lps([24, 20, 6]), (20.0, 16.0, 12.0), np.eye(3))
    big = ellipsoid_mask(g, g.index_to_lps([20, 20, 6]), (6.0, 5.0, 5.0), np.eye(3))
    small = ellipsoid_mask(g, g.index_to_lps([32, 24, 5]), (3.0, 3.0, 3.0), np.eye(3))
    labels = np.zeros(g.shape_kji, np.uint8)
    labels[liver] = 1
    labels[(big | small) & liver] = 2
    hu = np.where(labels == 2, 30, np.where(labels == 1, 90, -100)).astype(np.int16)
    hu[labels == 2] += (np.arange(int((labels == 2).sum())) % 7).astype(np.int16)  # some HU spread
    return CTVolume(hu, g, source="synthetic"), labels


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[CTVolume, np.ndarray, np.ndarray]:
    """A 12-slice oblique series whose file names run opposite to the slice positions."""
    ct0, labels = _case()
    folder = tmp_path_factory.mktemp("series")
    paths = write_ct_series(ct0, folder)
    for n, path in enumerate(paths):
        path.rename(folder / f"tmp{n}.dcm")
    for n in range(len(paths)):
        (folder / f"tmp{n}.dcm").rename(folder / f"IM{len(paths) - n:03d}.dcm")
    ct = read_volume(folder)
    assert ct.geometry.same_grid(ct0.geometry)
    assert ct.dicom is not None
    return ct, labels, label_lesions(labels == 2, ct.geometry)


def _dciodvfy(path: Path) -> list[str]:
    tool = require_tool("dciodvfy")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


def _export(tmp_path: Path, series: tuple, **options: bool) -> Path:
    ct, labels, lesions = series
    report = measure(ct, labels, lesions, models=MODELS)
    out = tmp_path / "out"
    with StagedOutputDir(out) as stage:
        write_case_outputs(stage, ct, labels, lesions, report, overview=False, **options)
    return out


def _read_back(seg_path: Path, ct: CTVolume) -> tuple[hd.seg.Segmentation, np.ndarray]:
    """The SEG and its segments but the last combined into one label array [k, j, i]; the last segment,
    "Liver including tumors", overlaps the others and must hold exactly the voxels of all of them."""
    seg = hd.seg.segread(str(seg_path))
    uids = [s.sop_instance_uid for s in ct.dicom.slices]
    numbers = [int(n) for n in seg.get_segment_numbers()]
    assert seg.get_segment_description(numbers[-1]).segment_label == "Liver including tumors"
    read = functools.partial(seg.get_pixels_by_source_instance, uids, assert_missing_frames_are_empty=True)
    pixels = read(segment_numbers=numbers[:-1], combine_segments=True, relabel=False)
    whole = read(segment_numbers=numbers[-1:], combine_segments=True)
    assert np.array_equal(whole > 0, pixels > 0)
    return seg, pixels


def test_seg_one_tumor_segment_reads_back_voxel_for_voxel(tmp_path: Path, series: tuple) -> None:
    ct, labels, _ = series
    out = _export(tmp_path, series, dicom_seg=True)
    assert _dciodvfy(out / "seg.dcm") == []
    seg, pixels = _read_back(out / "seg.dcm", ct)
    assert np.array_equal(pixels, labels)  # segment 1 liver, 2 tumor, frames in k order
    liver, tumor = (seg.get_segment_description(n) for n in (1, 2))
    assert (liver.segment_label, tumor.segment_label) == ("Liver", "Tumor")
    assert liver.segmented_property_type.value == "10200004"
    assert tumor.segmented_property_category.value == "49755003"
    assert tumor.segmented_property_type.value == "108369006"
    assert liver.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    algorithm = liver.algorithm_identification[0]
    assert algorithm.AlgorithmName == "Demo liver"
    assert algorithm.AlgorithmVersion == "1.0"
    parameters = algorithm.AlgorithmParameters
    assert "a" * 64 in parameters
    assert tumor.algorithm_identification[0].AlgorithmName == "Demo tumor"
    assert not (out / "sr.dcm").exists()


def test_seg_frames_sit_on_their_source_slices(tmp_path: Path, series: tuple) -> None:
    ct, _, _ = series
    out = _export(tmp_path, series, dicom_seg=True)
    ds = pydicom.dcmread(out / "seg.dcm")
    by_uid = {s.sop_instance_uid: s.position_lps_mm for s in ct.dicom.slices}
    assert ds.NumberOfFrames > 0
    for frame in ds.PerFrameFunctionalGroupsSequence:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        assert position == pytest.approx(by_uid[uid], abs=1e-3)
    orientation = [
        float(v) for v in ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    ]
    d = ct.geometry.direction_array
    assert orientation == pytest.approx([*d[:, 0], *d[:, 1]], abs=1e-5)


def test_seg_one_segment_per_lesion(tmp_path: Path, series: tuple) -> None:
    ct, labels, lesions = series
    out = _export(tmp_path, series, dicom_seg=True, per_lesion_segments=True)
    assert _dciodvfy(out / "seg.dcm") == []
    seg, pixels = _read_back(out / "seg.dcm", ct)
    expected = np.where(labels == 1, 1, 0) + np.where(lesions > 0, lesions.astype(int) + 1, 0)
    assert np.array_equal(pixels, expected)
    assert [seg.get_segment_description(n).segment_label for n in (1, 2, 3)] == ["Liver", "Lesion 1", "Lesion 2"]


def test_sr_holds_the_measurements_and_references_the_segments(tmp_path: Path, series: tuple) -> None:
    ct, labels, lesions = series
    out = _export(tmp_path, series, dicom_sr=True)
    assert _dciodvfy(out / "seg.dcm") == []
    assert _dciodvfy(out / "sr.dcm") == []
    report = measure(ct, labels, lesions)
    seg = hd.seg.segread(str(out / "seg.dcm"))
    sr = hd.sr.srread(str(out / "sr.dcm"))
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    groups = sr.content.get_volumetric_roi_measurement_groups()
    by_name = {g.tracking_identifier: g for g in groups}
    assert set(by_name) == {"Liver parenchyma", "Liver including tumors", "Lesion 1", "Lesion 2"}
    for lesion in report["lesions"]:
        group = by_name[f"Lesion {lesion['id']}"]
        values = {m.name.value: m.value for m in group.get_measurements() if m.derivation is None}
        assert values["118565006"] == pytest.approx(lesion["volume_ml"])
        assert values["L0JK"] == pytest.approx(lesion["max_diameter_3d_mm"])
        units = {m.name.value: m.unit.value for m in group.get_measurements()}
        assert (units["118565006"], units["112031"]) == ("ml", "[hnsf'U]")
        ref = group.referenced_segment
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert seg.get_segment_description(ref.referenced_segment_numbers[0]).segment_label == f"Lesion {lesion['id']}"
    liver_values = {m.name.value: m.value for m in by_name["Liver including tumors"].get_measurements()}
    assert liver_values["118565006"] == pytest.approx(report["liver"]["volume_ml"])
    parenchyma = {m.name.value: m.value for m in by_name["Liver parenchyma"].get_measurements()}
    assert parenchyma["118565006"] == pytest.approx(report["liver"]["parenchyma_volume_ml"])
    # The evidence lists the SEG and every source CT image.
    evidence = {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series_item in study.ReferencedSeriesSequence
        for item in series_item.ReferencedSOPSequence
    }
    assert evidence == {seg.SOPInstanceUID, *(s.sop_instance_uid for s in ct.dicom.slices)}


def test_sr_codes_hu_as_attenuation_with_derivation_axes_as_scoord3d_tlvr_as_ratio(
    tmp_path: Path, series: tuple
) -> None:
    """Issue 12 item 9: HU statistics were coded as a bare Mean / Standard Deviation, RECIST axes had no end
    points, TLVR was coded as a Volume."""
    ct, labels, lesions = series
    out = _export(tmp_path, series, dicom_sr=True)
    assert _dciodvfy(out / "sr.dcm") == []
    report = measure(ct, labels, lesions)
    content = hd.sr.srread(str(out / "sr.dcm")).content
    volumetric = {g.tracking_identifier: g for g in content.get_volumetric_roi_measurement_groups()}
    plain = content.get_image_measurement_groups()
    for lesion in report["lesions"]:
        name = f"Lesion {lesion['id']}"
        hu = {
            m.derivation.meaning: m.value
            for m in volumetric[name].get_measurements(name=codes.DCM.AttenuationCoefficient)
        }
        assert hu == {"Mean": pytest.approx(lesion["mean_hu"]), "Standard Deviation": pytest.approx(lesion["std_hu"])}
        (recist,) = [g for g in plain if g.tracking_identifier == name]
        # The RECIST group is the same finding as the volumetric one (same tracking UID), method RECIST 1.1.
        assert recist.tracking_uid == volumetric[name].tracking_uid
        assert recist.method.value == "126081"
        for code, key in ((codes.SCT.LongAxis, "long_axis"), (codes.SCT.ShortAxis, "short_axis")):
            (axis,) = recist.get_measurements(name=code)
            assert axis.value == pytest.approx(lesion[f"{key}_mm"])
            (coordinates,) = axis.referenced_coordinates
            assert coordinates.graphic_type == hd.sr.GraphicTypeValues3D.POLYLINE
            assert coordinates.frame_of_reference_uid == ct.dicom.frame_of_reference_uid
            ends = np.asarray(coordinates.value, dtype=float)
            assert ends == pytest.approx(np.asarray(lesion[f"{key}_ends_lps_mm"]), abs=1e-3)
            # The end points are as far apart as the axis is long (to the report's rounding).
            assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(lesion[f"{key}_mm"], abs=1e-3)
    (burden,) = [g for g in plain if g.tracking_identifier == "Tumor burden"]
    (tlvr,) = burden.get_measurements(name=codes.DCM.VolumeRatio)
    assert tlvr.value == pytest.approx(report["tumor_burden"]["tlvr"]) and tlvr.unit.value == "1"
    (total,) = burden.get_measurements(name=codes.SCT.Volume)
    assert total.value == pytest.approx(report["tumor_burden"]["total_volume_ml"])


def test_hand_drawn_labelmap_is_manual(tmp_path: Path, series: tuple) -> None:
    ct, labels, lesions = series
    report = measure(ct, labels, lesions)  # no models
    with StagedOutputDir(tmp_path / "out") as stage:
        write_case_outputs(stage, ct, labels, lesions, report, overview=False, dicom_seg=True)
    seg = hd.seg.segread(str(tmp_path / "out" / "seg.dcm"))
    assert seg.get_segment_description(1).algorithm_type == hd.seg.SegmentAlgorithmTypeValues.MANUAL


def test_volume_off_the_source_slices_is_refused(tmp_path: Path, series: tuple) -> None:
    ct, labels, lesions = series
    shifted = dataclasses.replace(ct, geometry=dataclasses.replace(ct.geometry, origin_lps_mm=(0.0, 0.0, 0.0)))
    report = measure(shifted, labels, lesions)
    with pytest.raises(ExportError, match=r"not on the DICOM series' grid"):
        with StagedOutputDir(tmp_path / "out") as stage:
            write_case_outputs(stage, shifted, labels, lesions, report, dicom_seg=True)
    assert not (tmp_path / "out").exists()


def test_empty_labelmap_is_refused(tmp_path: Path, series: tuple) -> None:
    ct, labels, _ = series
    empty = np.zeros_like(labels)
    lesions = np.zeros(labels.shape, np.uint16)
    with pytest.raises(ExportError, match="labelmap is empty"):
        with StagedOutputDir(tmp_path / "out") as stage:
            write_case_outputs(stage, ct, empty, lesions, measure(ct, empty, lesions), dicom_seg=True)


def test_the_validator_check_catches_a_broken_seg(tmp_path: Path, series: tuple) -> None:
    """Guards the other tests: dciodvfy errors are seen when a required attribute is missing."""
    out = _export(tmp_path, series, dicom_seg=True)
    ds = pydicom.dcmread(out / "seg.dcm")
    del ds.SegmentSequence[0].SegmentLabel
    ds.save_as(tmp_path / "broken.dcm")
    errors = _dciodvfy(tmp_path / "broken.dcm")
    assert any("SegmentLabel" in line for line in errors)


def test_sr_without_lesions_has_the_liver_only(tmp_path: Path, series: tuple) -> None:
    ct, labels, _ = series
    liver_only = np.where(labels == 2, 1, labels).astype(np.uint8)
    lesions = np.zeros(labels.shape, np.uint16)
    report = measure(ct, liver_only, lesions)
    with StagedOutputDir(tmp_path / "out") as stage:
        write_case_outputs(stage, ct, liver_only, lesions, report, overview=False, dicom_sr=True)
    assert _dciodvfy(tmp_path / "out" / "sr.dcm") == []
    groups = hd.sr.srread(str(tmp_path / "out" / "sr.dcm")).content.get_volumetric_roi_measurement_groups()
    assert [g.tracking_identifier for g in groups] == ["Liver parenchyma", "Liver including tumors"]


def segment_volumes_ml(seg: hd.seg.Segmentation, ct: CTVolume) -> dict[int, float]:
    """Volume (ml) of every SEG segment: its voxels, read back with highdicom, times the CT's voxel volume."""
    uids = [s.sop_instance_uid for s in ct.dicom.slices]
    numbers = [int(n) for n in seg.get_segment_numbers()]
    pixels = seg.get_pixels_by_source_instance(
        uids, segment_numbers=numbers, combine_segments=False, assert_missing_frames_are_empty=True
    )
    voxel_ml = ct.geometry.voxel_volume_mm3 / 1000.0
    return {n: float(np.count_nonzero(pixels[..., index])) * voxel_ml for index, n in enumerate(numbers)}


def test_every_sr_volume_is_the_volume_of_the_segment_it_references(tmp_path: Path, series: tuple) -> None:
    """Issue 12 item 5: the SR's liver volume (incl. tumor) referenced the "Liver" segment (label 1 only)."""
    ct, labels, _ = series
    out = _export(tmp_path, series, dicom_sr=True)
    seg = hd.seg.segread(str(out / "seg.dcm"))
    volumes = segment_volumes_ml(seg, ct)
    groups = hd.sr.srread(str(out / "sr.dcm")).content.get_volumetric_roi_measurement_groups()
    checked = {}
    for group in groups:
        (number,) = group.referenced_segment.referenced_segment_numbers
        (volume,) = [m.value for m in group.get_measurements() if m.name.value == "118565006"]
        assert volume == pytest.approx(volumes[number], abs=1e-4), group.tracking_identifier
        checked[group.tracking_identifier] = volume
    voxel_ml = ct.geometry.voxel_volume_mm3 / 1000.0
    # Both liver quantities are there, and they are what the labelmap says (hand-computable from the voxels).
    assert checked["Liver including tumors"] == pytest.approx(np.count_nonzero(labels) * voxel_ml, abs=1e-4)
    assert checked["Liver parenchyma"] == pytest.approx(np.count_nonzero(labels == 1) * voxel_ml, abs=1e-4)
    assert checked["Liver including tumors"] > checked["Liver parenchyma"]
