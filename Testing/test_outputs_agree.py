"""Every number shown in two outputs is the same number (issue 12, invariance suite).

One real run: ``segment --dicom-seg --dicom-sr`` with the bundled demo models on the bundled sample phantom
written as a DICOM series. Then report.json, report.csv, overview.png's table, the DICOM SR, the DICOM-SEG's
voxels and the Slicer table (``mrml.table_from_report`` on a real slicer-core scene) are read back and compared.

overview.png: the figure is drawn again from the files read back and its text artists (table cells, summary
lines) are read before saving; the drawing is checked to be the file's, pixel for pixel, so the text read is the
text in overview.png. (OCR of the PNG would be a weaker check; the figure's own text is exact.)
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from typing import Any

import highdicom as hd
import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.image import imread
from pydicom.sr.codedict import codes

from SmoothSegNetLib.io import read_volume, write_ct_series
from SmoothSegNetLib.report.files import CASE_COLUMNS, CSV_COLUMNS
from SmoothSegNetLib.report.overview import overview_table, render_overview
from SmoothSegNetLib.resources import RESOURCES_DIR
from Testing.conftest import require_tool, run_cli

VOLUME = "118565006"


def _get(entry: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        entry = entry[int(part)] if isinstance(entry, list) else entry[part]
    return entry


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("agree")
    ct = read_volume(RESOURCES_DIR / "Sample" / "sample_ct.nrrd")
    write_ct_series(ct, root / "series")
    out = root / "out"
    result = run_cli("segment", str(root / "series"), "-o", str(out), "--dicom-seg", "--dicom-sr", "--progress", "none")
    assert result.returncode == 0, result.stderr
    series = read_volume(root / "series")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["tumor_burden"]["count"] >= 2  # the sample's lesions are found: there is something to compare
    return {
        "out": out,
        "ct": series,
        "report": report,
        "labels": sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentation.nrrd"))),
        "lesions": sitk.GetArrayFromImage(sitk.ReadImage(str(out / "lesions.nrrd"))),
    }


def _segments(case: dict[str, Any]) -> dict[str, np.ndarray]:
    """SEG segment label -> its voxels [k, j, i] read back with highdicom."""
    seg = hd.seg.segread(str(case["out"] / "seg.dcm"))
    uids = [s.sop_instance_uid for s in case["ct"].dicom.slices]
    numbers = [int(n) for n in seg.get_segment_numbers()]
    pixels = seg.get_pixels_by_source_instance(
        uids, segment_numbers=numbers, combine_segments=False, assert_missing_frames_are_empty=True
    )
    return {seg.get_segment_description(n).segment_label: pixels[..., i] > 0 for i, n in enumerate(numbers)}


def test_report_csv_equals_report_json(case: dict[str, Any]) -> None:
    report = case["report"]
    with (case["out"] / "report.csv").open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    lesion_rows = [r for r in rows if r["status"] == "lesion"]
    candidate_rows = [r for r in rows if r["status"] == "candidate"]
    assert len(lesion_rows) == report["tumor_burden"]["count"] == len(report["lesions"])
    # The demo card lists the liver scan's three best findings (the sample's missed 15 mm lesion first by score).
    assert len(candidate_rows) == len(report["candidates"]) >= 1 and len(rows) == len(lesion_rows) + len(candidate_rows)
    pairs = [*zip(lesion_rows, report["lesions"]), *zip(candidate_rows, report["candidates"])]
    for row, entry in pairs:
        for header, key in CSV_COLUMNS:
            # A candidate has fewer fields (no short axis, no HU): an empty cell where it has none.
            value = _get(entry, key) if entry in report["lesions"] or key.split(".")[0] in entry else None
            assert row[header] == ("" if value is None else str(value)), header
        for header, key in CASE_COLUMNS:
            assert float(row[header]) == _get(report, key), header
        assert row["reason"] == entry.get("reason", "")


def test_seg_voxels_give_the_reported_volumes(case: dict[str, Any]) -> None:
    report, labels, lesions = case["report"], case["labels"], case["lesions"]
    segments = _segments(case)
    voxel_ml = case["ct"].geometry.voxel_volume_mm3 / 1000.0
    assert np.array_equal(segments["Liver"], labels == 1)
    assert np.array_equal(segments["Liver including tumors"], labels > 0)
    assert segments["Liver"].sum() * voxel_ml == pytest.approx(report["liver"]["parenchyma_volume_ml"], abs=5e-5)
    assert segments["Liver including tumors"].sum() * voxel_ml == pytest.approx(report["liver"]["volume_ml"], abs=5e-5)
    for lesion in report["lesions"]:
        voxels = segments[f"Lesion {lesion['id']}"]
        assert np.array_equal(voxels, lesions == lesion["id"])
        assert int(voxels.sum()) == lesion["voxel_count"]
        assert voxels.sum() * voxel_ml == pytest.approx(lesion["volume_ml"], abs=5e-5)
    tumor = sum(int(segments[f"Lesion {e['id']}"].sum()) for e in report["lesions"]) * voxel_ml
    assert tumor == pytest.approx(report["tumor_burden"]["total_volume_ml"], abs=5e-5)


def _values(group: Any) -> dict[tuple[str, str | None], float]:
    return {(m.name.value, m.derivation.value if m.derivation else None): m.value for m in group.get_measurements()}


def test_sr_equals_report_json_and_seg_voxels(case: dict[str, Any]) -> None:
    report = case["report"]
    content = hd.sr.srread(str(case["out"] / "sr.dcm")).content
    volumetric = {g.tracking_identifier: g for g in content.get_volumetric_roi_measurement_groups()}
    plain = {g.tracking_identifier: g for g in content.get_image_measurement_groups()}
    segments = _segments(case)
    voxel_ml = case["ct"].geometry.voxel_volume_mm3 / 1000.0
    for name, value in (
        ("Liver including tumors", report["liver"]["volume_ml"]),
        ("Liver parenchyma", report["liver"]["parenchyma_volume_ml"]),
    ):
        assert _values(volumetric[name])[(VOLUME, None)] == value
    for name, group in volumetric.items():  # every SR volume is its referenced segment's voxels
        seg_label = "Liver" if name == "Liver parenchyma" else name
        assert _values(group)[(VOLUME, None)] == pytest.approx(segments[seg_label].sum() * voxel_ml, abs=5e-5)
    lesion_groups = [n for n in volumetric if n.startswith("Lesion")]
    assert len(lesion_groups) == report["tumor_burden"]["count"]
    for lesion in report["lesions"]:
        name = f"Lesion {lesion['id']}"
        values = {**_values(volumetric[name]), **_values(plain[name])}
        assert values == {
            (VOLUME, None): lesion["volume_ml"],
            ("L0JK", None): lesion["max_diameter_3d_mm"],
            ("112031", "373098007"): lesion["mean_hu"],
            ("112031", "386136009"): lesion["std_hu"],
            ("103339001", None): lesion["long_axis_mm"],
            ("103340004", None): lesion["short_axis_mm"],
        }
    burden = _values(plain["Tumor burden"])
    assert burden[(VOLUME, None)] == report["tumor_burden"]["total_volume_ml"]
    assert burden[(codes.DCM.VolumeRatio.value, None)] == report["tumor_burden"]["tlvr"]


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def test_overview_table_shows_the_report_numbers(case: dict[str, Any]) -> None:
    report, out = case["report"], case["out"]
    figure = render_overview(case["ct"], case["labels"], case["lesions"], report)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    assert np.array_equal(imread(buffer), imread(out / "overview.png"))  # the figure read is the file's
    (table,) = [t for ax in figure.axes for t in ax.tables]
    cells = table.get_celld()
    n_rows = 1 + max(r for r, _ in cells)
    n_cols = 1 + max(c for _, c in cells)
    drawn = [[cells[(r, c)].get_text().get_text() for c in range(n_cols)] for r in range(n_rows)]
    headers, rows = overview_table(report)
    assert drawn == [headers, *rows]
    keys = {"#": "id", "Vol ml": "volume_ml", "Long mm": "long_axis_mm", "Short mm": "short_axis_mm"}
    keys |= {"3D max mm": "max_diameter_3d_mm", "Mean HU": "mean_hu", "SD HU": "std_hu", "Conf": "confidence"}
    for row, lesion in zip(rows, report["lesions"]):
        for header, text in zip(headers, row):
            if header in keys and lesion[keys[header]] is not None:
                digits = _decimals(text)
                # The number shown is the report's, rounded to the digits shown.
                assert float(text) == pytest.approx(lesion[keys[header]], abs=0.5 * 10**-digits + 1e-9), header
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    liver = report["liver"]
    assert any(
        f"Liver including tumors {liver['volume_ml']:.1f} ml · Liver parenchyma {liver['parenchyma_volume_ml']:.1f} ml"
        in t
        for t in texts
    )


def test_slicer_table_equals_report_json(case: dict[str, Any]) -> None:
    from SmoothSegNetLib import mrml
    from SmoothSegNetLib.slicer_support.lesion_table import lesion_table_columns

    report = case["report"]
    headless = mrml.create_headless_scene()
    table = mrml.table_from_report(headless.scene, report).GetTable()
    assert table.GetNumberOfRows() == len(report["lesions"])
    for column in lesion_table_columns():
        if column.key in ("segment", "edited"):
            continue
        for row, lesion in enumerate(report["lesions"]):
            source = report if column.scope == "case" else lesion
            value = _get(source, column.key)
            value = value[column.index] if column.index is not None else value
            cell = table.GetValueByName(row, column.title)
            shown = cell.ToInt() if column.kind == "integer" else cell.ToDouble()
            if value is None:
                assert math.isnan(shown), column.title
            else:
                assert shown == value, column.title


@pytest.mark.dciodvfy
@pytest.mark.parametrize("name", ["seg.dcm", "sr.dcm"])
def test_the_real_run_seg_and_sr_are_dciodvfy_clean(case: dict[str, Any], name: str) -> None:
    tool = require_tool("dciodvfy")
    result = subprocess.run([tool, str(case["out"] / name)], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    assert [line for line in lines if line.startswith(("Error", "Warning"))] == []
