"""``report --manual-axes`` and ``export`` with hand-drawn RECIST lines, as a user runs them (child process, a real
DICOM series, highdicom and dciodvfy). One number everywhere: report.json, report.csv, the DICOM SR (marked
Manual) and overview.png's table show the length of the line (50.0 mm) for lesion 1."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pytest
from conftest import require_tool, run_cli
from test_manual_axes import GEOMETRY, LESION_1, LONG, SHORT, case

from SmoothSegNetLib.io import read_volume, write_ct_series
from SmoothSegNetLib.io.writers import write_labelmap
from SmoothSegNetLib.report.overview import overview_table
from SmoothSegNetLib.volume import Geometry

LONG_AXIS, SHORT_AXIS = "103339001", "103340004"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ct, labels, _lesions = case()
    write_ct_series(ct, tmp_path / "series")
    # The series reads back head first (k reversed): the labelmap is written on that grid, as a user's would be.
    assert read_volume(tmp_path / "series").geometry.same_grid(SERIES_GEOMETRY, atol=1e-4)
    _write_labels(tmp_path / "labels.nrrd", labels)
    axes = tmp_path / "axes.json"
    axes.write_text(json.dumps({"1": {"long": LONG, "short": SHORT}}), encoding="utf-8")
    return {"series": tmp_path / "series", "labels": tmp_path / "labels.nrrd", "axes": axes, "root": tmp_path}


SERIES_GEOMETRY = Geometry.create(
    GEOMETRY.shape_kji, GEOMETRY.spacing_mm, GEOMETRY.index_to_lps([0, 0, GEOMETRY.shape_kji[0] - 1]),
    np.diag([-1.0, 1.0, -1.0]),
)  # fmt: skip


def _write_labels(path: Path, labels: np.ndarray) -> None:
    """``labels`` (on GEOMETRY) written on the grid of the series as read (slices in reverse order)."""
    write_labelmap(path, labels[::-1], SERIES_GEOMETRY)


def _report(files: dict[str, Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    labels, series = str(files["labels"]), str(files["series"])
    return run_cli("report", labels, "--image", series, "-o", str(out), "--dicom-sr", "--per-lesion-segments", *extra)


def _sr_axes(path: Path) -> dict[str, dict[str, tuple[float, str | None]]]:
    """Lesion group name -> RECIST measurement code -> (value, measurement method meaning)."""
    content = hd.sr.srread(str(path)).content
    found: dict[str, dict[str, tuple[float, str | None]]] = {}
    for group in content.get_image_measurement_groups():
        for m in group.get_measurements():
            if m.name.value in (LONG_AXIS, SHORT_AXIS):
                method = m.method.meaning if m.method is not None else None
                found.setdefault(group.tracking_identifier, {})[m.name.value] = (m.value, method)
    return found


def _check_outputs(out: Path, long_mm: float, short_mm: float) -> dict[str, Any]:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    one = report["lesions"][0]
    assert (one["long_axis_mm"], one["short_axis_mm"]) == (long_mm, short_mm)
    assert (one["long_axis_source"], one["short_axis_source"]) == ("manual", "manual")
    with (out / "report.csv").open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert (rows[0]["long_axis_mm"], rows[0]["short_axis_mm"]) == (str(long_mm), str(short_mm))
    assert (rows[0]["long_axis_source"], rows[1]["long_axis_source"]) == ("manual", "automatic")
    sr = _sr_axes(out / "sr.dcm")
    assert sr["Lesion 1"] == {LONG_AXIS: (long_mm, "Manual"), SHORT_AXIS: (short_mm, "Manual")}
    two = report["lesions"][1]
    assert sr["Lesion 2"] == {
        LONG_AXIS: (two["long_axis_mm"], "Automated"),
        SHORT_AXIS: (two["short_axis_mm"], "Automated"),
    }
    headers, table = overview_table(report)
    cells = dict(zip(headers, table[0]))
    assert (cells["Long mm"], cells["Short mm"], cells["Axes"]) == (f"{long_mm:.1f}", f"{short_mm:.1f}", "manual")
    assert (out / "overview.png").is_file()
    return report


def test_report_with_manual_axes_shows_one_number_everywhere(files: dict[str, Path]) -> None:
    out = files["root"] / "out"
    result = _report(files, out, "--manual-axes", str(files["axes"]))
    assert result.returncode == 0, result.stderr
    _check_outputs(out, 50.0, 10.0)
    tool = require_tool("dciodvfy")
    checked = subprocess.run([tool, str(out / "sr.dcm")], capture_output=True, text=True, check=False)
    lines = (checked.stdout + checked.stderr).splitlines()
    assert [line for line in lines if line.startswith(("Error", "Warning"))] == []


def test_export_keeps_the_lines_and_drops_them_when_their_lesion_is_deleted(files: dict[str, Path]) -> None:
    out = files["root"] / "out"
    assert _report(files, out, "--manual-axes", str(files["axes"])).returncode == 0
    labels = case()[1]
    _write_labels(out / "segmentation.nrrd", labels)
    again = run_cli("export", str(out), "--dicom", str(files["series"]), "--per-lesion-segments")
    assert again.returncode == 0, again.stderr
    report = _check_outputs(out, 50.0, 10.0)  # carried from the folder's report.json, the same numbers
    assert report["warnings"].count("lesion(s) 1: RECIST axes measured by hand (manual lines)") == 1
    labels[LESION_1] = 1  # lesion 1 deleted by hand: its voxels are liver; the former lesion 2 is lesion 1
    _write_labels(out / "segmentation.nrrd", labels)
    deleted = run_cli("export", str(out), "--dicom", str(files["series"]), "--per-lesion-segments")
    assert deleted.returncode == 0, deleted.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    (only,) = report["lesions"]
    assert only["long_axis_source"] == "automatic" and only["voxel_count"] == 27
    assert any("manual RECIST line(s) of lesion(s) 1 (long), 1 (short) were dropped" in w for w in report["warnings"])
    assert not any("measured by hand" in w for w in report["warnings"])
    assert _sr_axes(out / "sr.dcm")["Lesion 1"][LONG_AXIS] == (only["long_axis_mm"], "Automated")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"3": {"long": LONG}}, "error: --manual-axes: lesion 3 does not exist (the labelmap has 2 lesion(s)"),
        ({"1": {"long": [[0, 0, 0], [30, 40, 30]]}}, "error: --manual-axes: lesion 1 long axis end points"),
        ('{"1": {"long": [[0, 0, 0], [30, 40, 0]]', "error: --manual-axes "),
        ({"1": {"long": [[2, 3, 0], [2, 3, 0]]}}, "error: --manual-axes "),
        ({"2": {"long": LONG}}, "error: --manual-axes: the lesion 2 long axis does not lie on lesion 2"),
    ],
    ids=["unknown-lesion", "point-outside", "malformed-json", "zero-length", "other-lesion"],
)
def test_bad_manual_axes_exit_2_with_one_line_and_nothing_written(
    files: dict[str, Path], content: Any, message: str
) -> None:
    axes = files["root"] / "bad.json"
    axes.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    out = files["root"] / "out"
    result = _report(files, out, "--manual-axes", str(axes))
    assert result.returncode == 2
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
    # export refuses the same file and leaves the folder as it was
    assert _report(files, out).returncode == 0
    shutil.copyfile(files["labels"], out / "segmentation.nrrd")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = run_cli("export", str(out), "--dicom", str(files["series"]), "--manual-axes", str(axes))
    assert refused.returncode == 2 and refused.stderr.startswith(message), refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
