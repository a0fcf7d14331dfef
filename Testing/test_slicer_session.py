"""What the Slicer logic does after a run: recompute, export, command lines (real engine, no Qt)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from _mrml_helpers import GEOMETRIES, LESION_1, synthetic_arrays

from SmoothSegNetLib.report import measure
from SmoothSegNetLib.slicer_support.session import (
    EditedResult,
    carried_confidence,
    dicom_export_command,
    export_folder_name,
    install_model_command,
    lesion_centre_ras,
    previous_report_from_text,
    recompute_report,
    send_command,
    summary_text,
    write_export,
)
from SmoothSegNetLib.volume import CTVolume

REPO = Path(__file__).resolve().parents[1]


def _case() -> tuple[CTVolume, EditedResult, dict]:
    geometry = GEOMETRIES["oblique"]
    ct, labelmap, lesions = synthetic_arrays()
    volume = CTVolume(ct, geometry)
    previous = measure(volume, labelmap, lesions, confidence={1: 0.75, 2: 0.5})
    return volume, EditedResult(labelmap, lesions, {1: "lesion_1", 2: "lesion_2"}, ()), previous


def test_confidence_is_carried_only_for_unedited_network_lesions() -> None:
    _, result, previous = _case()
    assert carried_confidence(previous, result) == {1: 0.75, 2: 0.5}
    edited = EditedResult(result.labelmap, result.lesions, {1: "lesion_2", 2: "hand"}, (2,))
    # Lesion 1 of the scene is the network's lesion 2 (lesion 1 was deleted); the hand-drawn one has none.
    assert carried_confidence(previous, edited) == {1: 0.5}
    assert carried_confidence(None, result) == {}


def test_recompute_report_after_an_edit() -> None:
    volume, result, previous = _case()
    labelmap, lesions = result.labelmap.copy(), result.lesions.copy()
    labelmap[LESION_1] = 1  # lesion 1 erased by hand...
    lesions[lesions == 1] = 0
    lesions[lesions == 2] = 1  # ...so the former lesion 2 is now lesion 1
    edited = EditedResult(labelmap, lesions, {1: "lesion_2"}, ())
    report = recompute_report(volume, edited, previous)
    assert report["tumor_burden"]["count"] == 1
    assert report["lesions"][0]["voxel_count"] == 8
    assert report["lesions"][0]["confidence"] == 0.5
    schema = json.loads((REPO / "SmoothSegNetLib" / "schemas" / "report.schema.json").read_text())
    jsonschema.validate(report, schema)
    marked = recompute_report(volume, EditedResult(labelmap, lesions, {1: "lesion_2"}, (1,)), previous)
    assert marked["lesions"][0]["confidence"] is None
    assert "lesion(s) 1 were edited by hand after the network result" in marked["warnings"]


def test_write_export_writes_everything_on_the_ct_grid(tmp_path: Path) -> None:
    import SimpleITK as sitk

    volume, result, previous = _case()
    report = recompute_report(volume, result, previous)
    written = write_export(tmp_path / "export", volume, result, report)
    names = sorted(p.name for p in written)
    assert names == ["lesions.nrrd", "overview.png", "report.csv", "report.json", "segmentation.nrrd"]
    image = sitk.ReadImage(str(tmp_path / "export" / "lesions.nrrd"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), result.lesions)
    np.testing.assert_allclose(image.GetOrigin(), volume.geometry.origin_lps_mm, atol=1e-9)
    assert json.loads((tmp_path / "export" / "report.json").read_text())["lesions"][0]["confidence"] == 0.75


def test_command_lines() -> None:
    assert dicom_export_command(Path("out"), Path("series"), python_executable="py") == [
        "py", "-m", "SmoothSegNetLib", "export", "out", "--dicom", "series", "--per-lesion-segments",
    ]  # fmt: skip
    assert send_command(Path("out"), "pacs.local", 4242, "ORTHANC", "py")[-4:] == [
        "--dicom", "pacs.local:4242", "--aet", "ORTHANC",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="PACS settings incomplete: host '', port 104"):
        send_command(Path("out"), "", 104, "PACS")
    assert install_model_command(Path("w.safetensors"), "py")[3:] == ["models", "install", "w.safetensors"]


def test_summary_centre_and_stored_report() -> None:
    _, _, previous = _case()
    liver_ml = previous["liver"]["volume_ml"]
    tumor_ml = previous["tumor_burden"]["total_volume_ml"]
    tlvr = previous["tumor_burden"]["tlvr"]
    assert (
        summary_text(previous) == f"Liver {liver_ml:.1f} ml · 2 lesion(s), {tumor_ml:.1f} ml · TLVR {100 * tlvr:.2f} %"
    )
    left, posterior, superior = previous["lesions"][1]["centroid_lps_mm"]
    assert lesion_centre_ras(previous, 2) == (-left, -posterior, superior)
    assert lesion_centre_ras(previous, 7) is None
    assert previous_report_from_text(json.dumps(previous)) == previous
    assert previous_report_from_text("not json") is None and previous_report_from_text(None) is None


def test_lesion_table_headers_and_cells() -> None:
    from SmoothSegNetLib.slicer_support.lesion_table import format_cell, lesion_table_columns

    columns = lesion_table_columns()
    assert [c.header for c in columns if c.visible] == [
        "ID", "Volume (ml)", "Long axis (mm)", "Short axis (mm)", "3D diameter (mm)", "Mean HU", "Confidence", "Edited",
    ]  # fmt: skip
    by_key = {c.key: c for c in columns if c.index is None}
    assert format_cell(12.345, by_key["volume_ml"]) == "12.3"
    assert format_cell(0.756, by_key["confidence"]) == "0.76"
    assert format_cell(float("nan"), by_key["confidence"]) == "—"
    assert format_cell(3, by_key["id"]) == "3"


def test_one_tumor_segment_is_split_into_lesions_again() -> None:
    volume, result, previous = _case()
    one_segment = EditedResult(result.labelmap, (result.labelmap == 2).astype(np.uint16), {1: "tumor"}, (1,))
    report = recompute_report(volume, one_segment, previous)
    # Two separate cubes: two lesions by decreasing volume (27 and 8 voxels), as 'segment' numbers them.
    assert [lesion["voxel_count"] for lesion in report["lesions"]] == [27, 8]
    assert all(lesion["confidence"] is None for lesion in report["lesions"])
    assert "the tumor segment was edited by hand after the network result" in report["warnings"]


@pytest.mark.parametrize(
    ("volume_name", "folder"),
    [
        ("CT abdomen", "CT abdomen-SmoothSegNet"),
        ("6: Abdomen 1/2", "6_ Abdomen 1_2-SmoothSegNet"),  # ':' is invalid on Windows, '/' makes a subfolder
        ('a<b>c"d\\e|f?g*h', "a_b_c_d_e_f_g_h-SmoothSegNet"),
        ("tab\there\x00", "tab_here_-SmoothSegNet"),  # control characters
        ("  series. ", "series-SmoothSegNet"),  # no leading/trailing spaces or dots
        ("..", "CT-SmoothSegNet"),
        ("", "CT-SmoothSegNet"),
        ("x" * 300, "x" * 100 + "-SmoothSegNet"),  # stays well under Windows' 260-character paths
    ],
)
def test_export_folder_name_is_one_valid_folder_on_every_system(volume_name: str, folder: str) -> None:
    assert export_folder_name(volume_name) == folder
