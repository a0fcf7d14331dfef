"""Bad labelmaps for ``report``, bad output folders and options (issue 17): exit status 2, one ``error:`` line,
no traceback, nothing written, inputs unchanged; and the warnings of a labelmap that measures but is odd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from _io_helpers import make_ct, tree_digest, write_series
from conftest import require_tool, run_cli

from SmoothSegNetLib.inference.cases import COMPLETE_MARKER
from SmoothSegNetLib.io.writers import write_labelmap, write_volume
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model

SHAPE = (10, 12, 14)  # k, j, i
GEOMETRY = Geometry.create(SHAPE, (0.8, 0.9, 2.5), (-20.0, 10.0, 5.0))


def _ct_file(folder: Path) -> Path:
    a = np.full(SHAPE, -1000, np.int16)
    a[2:8, 3:9, 3:11] = 60
    return write_volume(folder / "ct.nrrd", CTVolume(a, GEOMETRY))


def _nrrd(path: Path, sizes: str, data: bytes, directions: str, encoding: str = "raw", **extra: str) -> Path:
    fields = {
        "type": "unsigned char",
        "dimension": "3",
        "space": "left-posterior-superior",
        "sizes": sizes,
        "space directions": directions,
        "kinds": "domain domain domain",
        "encoding": encoding,
        "space origin": "(-20,10,5)",
        **extra,
    }
    path.write_bytes(("NRRD0004\n" + "".join(f"{k}: {v}\n" for k, v in fields.items()) + "\n").encode() + data)
    return path


DIRECTIONS = "(0.8,0,0) (0,0.9,0) (0,0,2.5)"


def _expect_refused(result: subprocess.CompletedProcess[str], phrase: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def _report(tmp: Path, labelmap: Path, ct: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("report", str(labelmap), "--image", str(ct), "-o", str(tmp / "out"))


# -- report: bad labelmaps ----------------------------------------------------------------------------------
def _sheared(tmp: Path) -> Path:
    data = np.zeros(SHAPE, np.uint8).tobytes()
    return _nrrd(tmp / "labels.nrrd", "14 12 10", data, "(0.8,0,0) (0,0.9,0) (0,0.5,2.5)")


def _vector(tmp: Path) -> Path:
    data = np.zeros((*SHAPE, 2), np.uint8).tobytes()
    return _nrrd(
        tmp / "labels.nrrd",
        "2 14 12 10",
        data,
        "none " + DIRECTIONS,
        dimension="4",
        kinds="vector domain domain domain",
    )


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "labels.nrrd")
    return tmp / "labels.nrrd"


def _off_grid_with_corrupt_voxels(tmp: Path) -> Path:
    """Another size than the CT and gzip data that cannot be decompressed: only the header may be read."""
    return _nrrd(tmp / "labels.nrrd", "14 12 11", b"not gzip data" * 10, DIRECTIONS, encoding="gzip")


LABELMAP_CASES = {
    "sheared direction": (_sheared, "LABELMAP", "sheared or non-unit image axes"),
    "two values per voxel (was 'must be 3D, got 3D')": (_vector, "LABELMAP", "got 2 values per voxel"),
    "a fifo": (_fifo, "labels.nrrd", "is a FIFO (named pipe), not a regular file"),
    "off the grid, voxels unreadable": (_off_grid_with_corrupt_voxels, "LABELMAP", "size (i, j, k) (14, 12, 11)"),
}


@pytest.mark.parametrize("name", list(LABELMAP_CASES))
def test_report_refuses_a_bad_labelmap(tmp_path: Path, name: str) -> None:
    build, who, phrase = LABELMAP_CASES[name]
    ct = _ct_file(tmp_path)
    labelmap = build(tmp_path)
    before = tree_digest(ct)
    result = _report(tmp_path, labelmap, ct)
    _expect_refused(result, phrase)
    assert who in result.stderr
    assert not (tmp_path / "out").exists() and tree_digest(ct) == before


def test_report_checks_the_labelmap_size_from_its_header_before_reading_it(tmp_path: Path) -> None:
    """A 0.5 MB gzip NRRD declaring 1024 x 1024 x 520 voxels (545 MB) is refused from its header."""
    ct = _ct_file(tmp_path)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    chunk = bytes(1 << 20)
    data = b"".join(compressor.compress(chunk) for _ in range(1024 * 1024 * 520 // len(chunk))) + compressor.flush()
    labelmap = _nrrd(tmp_path / "labels.nrrd", "1024 1024 520", data, DIRECTIONS, encoding="gzip")
    assert labelmap.stat().st_size < 1_000_000
    # VmHWM: this process's peak resident memory (ru_maxrss would include the parent's, inherited over fork/exec)
    script = (
        "import re, sys; from SmoothSegNetLib.cli import main; code = main(sys.argv[1:]); "
        "status = open('/proc/self/status').read(); "
        "sys.stdout.write(re.search(r'VmHWM:\\s*(\\d+)', status).group(1)); sys.exit(code)"
    )
    command = [sys.executable, "-c", script, "report", str(labelmap), "--image", str(ct), "-o", str(tmp_path / "o")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.startswith("error: LABELMAP") and "545,259,520 voxels exceeds the memory budget" in result.stderr
    )
    assert int(result.stdout) < 400_000  # kB: the interpreter and its imports, not the 545 MB of voxels
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("name", "fill", "warning"),
    [
        ("empty", {}, "the labelmap is empty"),
        ("all tumor", {"all": 2}, "every voxel of the labelmap is tumor"),
        ("tumor without liver", {"box": 2}, "the labelmap has tumor but no liver"),
    ],
)
def test_report_warns_about_an_odd_labelmap(tmp_path: Path, name: str, fill: dict[str, int], warning: str) -> None:
    ct = _ct_file(tmp_path)
    labels = np.zeros(SHAPE, np.uint8)
    if "all" in fill:
        labels[:] = fill["all"]
    if "box" in fill:
        labels[2:5, 3:6, 3:6] = fill["box"]
    labelmap = write_labelmap(tmp_path / "labels.nrrd", labels, GEOMETRY)
    result = _report(tmp_path, labelmap, ct)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"warning: {warning}") and result.stderr.count("\n") == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert any(w.startswith(warning) for w in report["warnings"]), report["warnings"]


def test_report_of_a_normal_labelmap_has_no_such_warning(tmp_path: Path) -> None:
    ct = _ct_file(tmp_path)
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:8, 3:9, 3:11] = 1
    labels[3:5, 4:6, 4:6] = 2
    result = _report(tmp_path, write_labelmap(tmp_path / "labels.nrrd", labels, GEOMETRY), ct)
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads((tmp_path / "out" / "report.json").read_text())["warnings"] == []


# -- sheared CT: segment and inspect alike -------------------------------------------------------------------
@pytest.mark.parametrize("command", ["inspect", "segment"])
def test_a_sheared_ct_is_exit_2_in_segment_and_inspect(tmp_path: Path, command: str) -> None:
    data = np.full(SHAPE, -1000, np.int16).tobytes()
    ct = _nrrd(tmp_path / "ct.nrrd", "14 12 10", data, "(0.8,0,0) (0,0.9,0) (0,0.5,2.5)", type="short", endian="little")
    extra = ["-o", str(tmp_path / "out")] if command == "segment" else []
    _expect_refused(run_cli(command, str(ct), *extra), "sheared or non-unit image axes")
    assert not (tmp_path / "out").exists()


# -- output folders, checked before anything is read or run ----------------------------------------------------
@pytest.fixture
def models(tmp_path: Path) -> list[str]:
    liver = write_threshold_model(tmp_path / "models", "liver", threshold_hu=50, spacing_mm=None)
    tumor = write_threshold_model(tmp_path / "models", "tumor", threshold_hu=150, spacing_mm=None)
    return ["--liver-model", str(liver), "--tumor-model", str(tumor), "--skip-plausibility-check"]


def _segment(source: Path, out: Path, models: list[str]) -> subprocess.CompletedProcess[str]:
    return run_cli("segment", str(source), "-o", str(out), *models, "--progress", "jsonl")


def test_a_file_as_output_folder_is_refused_before_the_run(tmp_path: Path, models: list[str]) -> None:
    source = _ct_file(tmp_path)
    (tmp_path / "out").write_text("not a folder")
    result = _segment(source, tmp_path / "out", models)
    _expect_refused(result, "output folder -o")  # stdout empty: no progress line, nothing was read or run
    assert "exists and is not a folder" in result.stderr
    assert (tmp_path / "out").read_text() == "not a folder"


def test_a_read_only_parent_is_refused_before_the_run(tmp_path: Path, models: list[str]) -> None:
    source = _ct_file(tmp_path)
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    command = [sys.executable, "-m", "SmoothSegNetLib", "segment", str(source), "-o", str(parent / "out"), *models]
    command += ["--progress", "jsonl"]
    if os.geteuid() == 0:  # root writes anywhere unless it drops the capability
        command = [require_tool("setpriv"), "--bounding-set=-dac_override,-dac_read_search", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    finally:
        parent.chmod(0o755)
    _expect_refused(result, f"cannot be created: {parent} is not a writable folder")
    assert os.listdir(parent) == []


def test_output_inside_the_input_dicom_folder_is_refused(tmp_path: Path, models: list[str]) -> None:
    series = tmp_path / "series"
    write_series(make_ct(shape_kji=(9, 10, 12)), series)
    before = tree_digest(series)
    result = _segment(series, series / "results", models)
    _expect_refused(result, f"lies inside the input folder {series}")
    assert tree_digest(series) == before


def test_a_folder_with_other_files_is_refused_a_previous_output_folder_is_replaced(
    tmp_path: Path, models: list[str]
) -> None:
    source = _ct_file(tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    _expect_refused(_segment(source, busy, models), "already holds other files ('notes.txt')")
    assert os.listdir(busy) == ["notes.txt"]
    first = _segment(source, tmp_path / "out", models)
    assert first.returncode == 0, first.stderr and (tmp_path / "out" / COMPLETE_MARKER).is_file()
    again = _segment(source, tmp_path / "out", [*models, "--overwrite"])
    assert again.returncode == 0, again.stderr
    # report writes into the folder of a segment run too (its outputs and its own labelmap input are there)
    labels = tmp_path / "out" / "segmentation.nrrd"
    report = run_cli("report", str(labels), "--image", str(source), "-o", str(tmp_path / "out"))
    assert report.returncode == 0, report.stderr


def test_report_checks_its_output_folder_first(tmp_path: Path) -> None:
    ct = _ct_file(tmp_path)
    (tmp_path / "out").write_text("x")
    missing = tmp_path / "missing-labels.nrrd"  # would be the error if the labelmap were read first
    _expect_refused(_report(tmp_path, missing, ct), "exists and is not a folder")


@pytest.mark.parametrize("value", ["-5", "0"])
def test_max_voxels_must_be_positive(tmp_path: Path, value: str) -> None:
    ct = _ct_file(tmp_path)
    result = run_cli("inspect", str(ct), "--max-voxels", value)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: argument --max-voxels: must be a positive number of voxels, got {int(value)} "
        "(see 'smoothsegnet inspect --help')"
    ]
