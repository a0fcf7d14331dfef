"""report.json (validated by its JSON schema), report.csv, overview.png and write_case_outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import matplotlib.image
import numpy as np
import pytest
from _report_helpers import ct_with, ellipsoid_mask, grid

from SmoothSegNetLib.case_outputs import write_case_outputs
from SmoothSegNetLib.errors import ExportError
from SmoothSegNetLib.outputs import StagedOutputDir
from SmoothSegNetLib.report import label_lesions, measure
from SmoothSegNetLib.report.categories import milan_size_check, size_categories

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "SmoothSegNetLib" / "schemas" / "report.schema.json").read_text()
)


def _case() -> tuple:
    geometry = grid((20, 60, 60), (1.0, 1.0, 2.0))
    liver = ellipsoid_mask(geometry, geometry.index_to_lps([30, 30, 10]), (25.0, 22.0, 16.0), np.eye(3))
    tumor = ellipsoid_mask(geometry, geometry.index_to_lps([25, 30, 10]), (8.0, 6.0, 6.0), np.eye(3))
    small = ellipsoid_mask(geometry, geometry.index_to_lps([40, 38, 8]), (3.0, 3.0, 3.0), np.eye(3))
    labels = np.zeros(geometry.shape_kji, np.uint8)
    labels[liver] = 1
    labels[(tumor | small) & liver] = 2
    ct = ct_with(labels, geometry)
    lesions = label_lesions(labels == 2, geometry)
    return ct, labels, lesions


def test_report_json_validates_against_schema(tmp_path: Path) -> None:
    ct, labels, lesions = _case()
    # The model entries the inference pipeline passes (sha256 is None when the weights were not checked).
    models = [
        {"id": "m", "title": "M", "version": "1", "task": "liver", "sha256": None, "weights": "m.safetensors"},
        {"id": "t", "title": "T", "version": "2", "task": "tumor", "sha256": "f" * 64, "weights": "t.safetensors"},
    ]
    report = measure(ct, labels, lesions, confidence={1: 0.8}, models=models)
    with StagedOutputDir(tmp_path / "out") as stage:
        write_case_outputs(stage, ct, labels, lesions, report)
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    jsonschema.validate(written, SCHEMA)
    assert written["schema"] == "smoothsegnet.report/1"
    assert written["tumor_burden"]["count"] == 2
    assert [m["sha256"] for m in written["models"]] == [None, "f" * 64]
    assert [m["synthetic_only"] for m in written["models"]] == [False, False]
    assert written["measurement_codes"]["long_axis_mm"]["quantity"]["value"] == "103339001"
    assert written["measurement_codes"]["volume_ml"]["unit"]["value"] == "ml"
    assert written["measurement_codes"]["mean_hu"]["unit"]["value"] == "[hnsf'U]"


def test_schema_rejects_a_lesion_without_long_axis() -> None:
    ct, labels, lesions = _case()
    report = measure(ct, labels, lesions)
    del report["lesions"][0]["long_axis_mm"]
    with pytest.raises(jsonschema.ValidationError, match="long_axis_mm"):
        jsonschema.validate(report, SCHEMA)


def test_csv_has_one_row_per_lesion_with_units(tmp_path: Path) -> None:
    ct, labels, lesions = _case()
    report = measure(ct, labels, lesions)
    with StagedOutputDir(tmp_path / "out") as stage:
        write_case_outputs(stage, ct, labels, lesions, report, overview=False)
    with (tmp_path / "out" / "report.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["lesion_id"]) for r in rows] == [1, 2]
    assert float(rows[0]["volume_ml"]) == report["lesions"][0]["volume_ml"]
    assert float(rows[1]["long_axis_mm"]) == report["lesions"][1]["long_axis_mm"]
    assert rows[0]["confidence"] == ""
    assert {"long_axis_mm", "short_axis_mm", "mean_hu", "centroid_l_mm"} <= set(rows[0])
    assert not (tmp_path / "out" / "overview.png").exists()


def test_empty_case_files(tmp_path: Path) -> None:
    geometry = grid((6, 20, 20), (1.0, 1.0, 2.0))
    labels = np.ones(geometry.shape_kji, np.uint8)
    ct = ct_with(labels, geometry)
    lesions = np.zeros(labels.shape, np.uint16)
    report = measure(ct, labels, lesions)
    with StagedOutputDir(tmp_path / "out") as stage:
        write_case_outputs(stage, ct, labels, lesions, report)
    jsonschema.validate(json.loads((tmp_path / "out" / "report.json").read_text()), SCHEMA)
    assert (tmp_path / "out" / "report.csv").read_text().count("\n") == 1  # header only
    assert matplotlib.image.imread(str(tmp_path / "out" / "overview.png")).shape[0] > 100


def test_overview_draws_the_axes(tmp_path: Path) -> None:
    ct, labels, lesions = _case()
    report = measure(ct, labels, lesions, models=[{"id": "smoothsegnet-demo-tumor", "title": "Demo tumor"}])
    with StagedOutputDir(tmp_path / "out") as stage:
        write_case_outputs(stage, ct, labels, lesions, report)
    image = matplotlib.image.imread(str(tmp_path / "out" / "overview.png"))[..., :3]
    red = (image[..., 0] > 0.9) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)  # long axis colour
    cyan = (image[..., 0] < 0.3) & (image[..., 1] > 0.7) & (image[..., 2] > 0.9)  # short axis colour
    assert red.sum() > 50
    assert cyan.sum() > 50


def test_dicom_outputs_need_a_dicom_source(tmp_path: Path) -> None:
    ct, labels, lesions = _case()
    report = measure(ct, labels, lesions)
    with pytest.raises(ExportError, match=r"DICOM-SEG needs a DICOM source.*synthetic"):
        with StagedOutputDir(tmp_path / "out") as stage:
            write_case_outputs(stage, ct, labels, lesions, report, dicom_seg=True)
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize(
    ("long_mm", "measurable", "lirads", "paper"),
    [
        (9.99, False, "<10 mm", "<10 cm"),
        (10.0, True, "10-<20 mm", "<10 cm"),
        (19.99, True, "10-<20 mm", "<10 cm"),
        (20.0, True, ">=20 mm", "<10 cm"),
        (99.9, True, ">=20 mm", "<10 cm"),
        (100.0, True, ">=20 mm", ">=10 cm"),
    ],
)
def test_size_categories(long_mm: float, measurable: bool, lirads: str, paper: str) -> None:
    assert size_categories(long_mm) == {
        "recist_measurable": measurable,
        "lirads_size_only": lirads,
        "paper_size_group": paper,
    }


@pytest.mark.parametrize(
    ("long_axes", "within"),
    [
        ([], None),
        ([50.0], True),
        ([50.1], False),
        ([30.0, 30.0, 12.0], True),
        ([30.1, 10.0], False),
        ([10.0, 10.0, 10.0, 10.0], False),
    ],
)
def test_milan_size_check(long_axes: list[float], within: bool | None) -> None:
    result = milan_size_check(long_axes)
    assert result["within_size_limits"] is within
    assert "size-only aid" in result["note"]


def test_overview_shows_axial_slices_in_the_radiological_view() -> None:
    from SmoothSegNetLib.report.overview import render_overview
    from SmoothSegNetLib.volume import Geometry

    ct, labels, lesions = _case()
    # Standard LPS storage: columns already run to the patient's left and rows posterior, so the image is
    # drawn as stored (imshow puts row 0 on top: its y axis counts downwards).
    panel = render_overview(ct, labels, lesions, measure(ct, labels, lesions)).axes[0]
    assert (panel.xaxis_inverted(), panel.yaxis_inverted()) == (False, True)
    # The same CT stored in RAS order (columns to the right, rows anterior) is mirrored back on both axes.
    g = ct.geometry
    _k, j, i = g.shape_kji
    ras = Geometry.create(g.shape_kji, g.spacing_mm, g.index_to_lps([i - 1, j - 1, 0]), np.diag([-1.0, -1.0, 1.0]))
    ras_labels = np.ascontiguousarray(labels[:, ::-1, ::-1])
    ras_ct = ct_with(ras_labels, ras)
    ras_lesions = np.ascontiguousarray(lesions[:, ::-1, ::-1])
    panel = render_overview(ras_ct, ras_labels, ras_lesions, measure(ras_ct, ras_labels, ras_lesions)).axes[0]
    assert (panel.xaxis_inverted(), panel.yaxis_inverted()) == (True, False)
    # Screen edges: patient right on the left, left on the right, anterior on top.
    edges = {(round(t.get_position()[0], 2), round(t.get_position()[1], 2)): t.get_text() for t in panel.texts}
    assert (edges[(0.01, 0.5)], edges[(0.99, 0.5)], edges[(0.5, 0.99)]) == ("R", "L", "A")
