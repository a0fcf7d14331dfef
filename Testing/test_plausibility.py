"""The plausibility check before segmentation: real-looking CTs pass, what is not a CT of a body is refused
(issue 17), and ``--skip-plausibility-check`` overrides it with a warning in the report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from _io_helpers import tree_digest
from conftest import run_cli

from SmoothSegNetLib import plausibility
from SmoothSegNetLib.cli import build_parser
from SmoothSegNetLib.errors import VolumeValidationError
from SmoothSegNetLib.io import read_volume
from SmoothSegNetLib.io.writers import write_volume
from SmoothSegNetLib.phantom.generator import make_phantom
from SmoothSegNetLib.resources import RESOURCES_DIR
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model


@pytest.fixture(scope="module")
def sample() -> CTVolume:
    return read_volume(RESOURCES_DIR / "Sample" / "sample_ct.nrrd")


def _outside_circle(shape_kji: tuple[int, int, int]) -> np.ndarray:
    """True outside the circle inscribed in each slice (where scanners write a padding value)."""
    _, rows, cols = shape_kji
    j, i = np.mgrid[0:rows, 0:cols]
    radius = min(rows, cols) / 2
    outside = (j - (rows - 1) / 2) ** 2 + (i - (cols - 1) / 2) ** 2 > radius**2
    return np.broadcast_to(outside, shape_kji)


def test_the_sample_ct_passes(sample: CTVolume) -> None:
    assert plausibility.findings(sample) == []
    assert plausibility.field_of_view_mm(sample.geometry) == (384.0, 384.0)


@pytest.mark.parametrize("padding", [-2048, -3024, -32768])
def test_padding_outside_the_reconstruction_circle_passes(sample: CTVolume, padding: int) -> None:
    array = sample.array.copy()
    array[_outside_circle(array.shape)] = padding
    assert plausibility.findings(sample.with_array(array)) == []


@pytest.mark.parametrize(
    ("seed", "size_ijk", "spacing_mm", "oblique"),
    [
        (1, (96, 96, 32), (4.0, 4.0, 8.0), False),
        (2, (160, 160, 16), (2.5, 2.5, 10.0), False),
        (3, (72, 72, 20), (6.0, 6.0, 10.0), True),
        (4, (384, 384, 12), (0.8, 0.8, 10.0), False),
    ],
)
def test_phantoms_at_several_sizes_and_spacings_pass(
    seed: int, size_ijk: tuple[int, int, int], spacing_mm: tuple[float, float, float], oblique: bool
) -> None:
    phantom = make_phantom(seed, size_ijk=size_ijk, spacing_mm=spacing_mm, oblique=oblique)
    assert plausibility.findings(phantom.ct) == []


def test_axes_and_field_of_view_follow_the_patient_not_the_storage(sample: CTVolume) -> None:
    """The sample stored sagittally (i = S, j = A->P... ): same field of view, slice axis found as i."""
    permuted = np.ascontiguousarray(sample.array.transpose(2, 1, 0))  # [k, j, i] -> [i, j, k]: new i = old k
    g = sample.geometry
    direction = g.direction_array[:, [2, 1, 0]]
    spacing = (g.spacing_mm[2], g.spacing_mm[1], g.spacing_mm[0])
    stored = CTVolume(permuted, Geometry.create(permuted.shape, spacing, g.origin_lps_mm, direction))
    assert plausibility.in_plane_axes(stored.geometry) == (1, 2)
    assert plausibility.field_of_view_mm(stored.geometry) == (384.0, 384.0)
    assert plausibility.findings(stored) == []


def _spaced(ct: CTVolume, spacing: tuple[float, float, float]) -> CTVolume:
    g = ct.geometry
    return CTVolume(ct.array, Geometry.create(g.shape_kji, spacing, g.origin_lps_mm, g.direction_array))


def _noise(shape: tuple[int, ...], low: int, high: int) -> np.ndarray:
    return np.random.default_rng(17).integers(low, high, size=shape).astype(np.int16)


def test_not_a_body_is_refused_with_the_reason(sample: CTVolume) -> None:
    shape = sample.array.shape
    cases = {
        "byte-swapped (little-endian data labelled big-endian)": (sample.array.byteswap(), "only 0% of the voxels"),
        "uniform noise in HU": (_noise(shape, -1000, 1500), "only 24% of the voxels"),
        "uniform int16 noise (/dev/urandom)": (_noise(shape, -32768, 32767), "byte-swapped data"),
        "CT x 10": (sample.array.astype(np.float32) * 10, "only 28% of the voxels"),
        "nothing but air": (np.full(shape, -1000, np.int16), "only 0.0 ml of fat/soft tissue"),
        "mostly padding": (np.where(np.arange(shape[0])[:, None, None] < 60, -3024, sample.array), "94% of the voxels"),
        "a value of 50,000": (np.where(sample.array == sample.array.max(), 50_000.0, sample.array), "50000 HU"),
    }
    for name, (array, phrase) in cases.items():
        with pytest.raises(VolumeValidationError) as info:
            plausibility.check_plausible(sample.with_array(array))
        message = str(info.value)
        assert phrase in message and "does not look like a CT of a body" in message, (name, message)
        assert message.endswith("run again with --skip-plausibility-check"), name


def test_small_field_of_view_and_coarse_pixels_are_refused(sample: CTVolume) -> None:
    # 3000 slices of 8 x 8 pixels of 3 mm: a 24 mm field of view (issue 17: "liver 0.46 ml").
    rng = np.random.default_rng(0)
    column = rng.choice(np.array([-1000, 40], np.int16), size=(3000, 8, 8))
    thin = CTVolume(column, Geometry.create(column.shape, (3.0, 3.0, 1.0)))
    assert plausibility.findings(thin) == [
        "the field of view is 24 x 24 mm (left-right x anterior-posterior), below 100 mm: too small for an abdomen"
    ]
    coarse = plausibility.findings(_spaced(sample, (12.0, 2.0, 3.5)))
    assert coarse == ["in-plane voxel size along i is 12 mm, above 10 mm (too coarse to show the liver)"]


def test_skipping_marks_the_ct(sample: CTVolume) -> None:
    noise = sample.with_array(_noise(sample.array.shape, -1000, 1500))
    assert plausibility.check_or_mark_skipped(noise, skip=True).warnings[-1] == plausibility.SKIPPED_WARNING
    assert plausibility.check_or_mark_skipped(sample, skip=False) is sample


def test_demo_and_segment_take_the_flag() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo", "-o", "x", "--skip-plausibility-check"]).skip_plausibility_check
    assert not parser.parse_args(["segment", "ct.nrrd", "-o", "x"]).skip_plausibility_check


# -- the command line ----------------------------------------------------------------------------------------
@pytest.fixture
def models(tmp_path: Path) -> list[str]:
    liver = write_threshold_model(tmp_path / "models", "liver", threshold_hu=50, spacing_mm=None)
    tumor = write_threshold_model(tmp_path / "models", "tumor", threshold_hu=150, spacing_mm=None)
    return ["--liver-model", str(liver), "--tumor-model", str(tumor), "--progress", "none"]


@pytest.mark.parametrize("case", ["byte-swapped", "3000 slices of 8 x 8"])
def test_segment_refuses_with_exit_2_and_writes_nothing(
    tmp_path: Path, sample: CTVolume, models: list[str], case: str
) -> None:
    if case == "byte-swapped":
        data = sample.array.tobytes()  # little-endian int16, labelled big-endian below
        size = "192 192 64"
        spacing = "(2,0,0) (0,2,0) (0,0,3.5)"
        phrase = "only 0% of the voxels"
    else:
        column = np.random.default_rng(0).choice(np.array([-1000, 40], np.int16), size=(3000, 8, 8))
        data, size, spacing, phrase = column.tobytes(), "8 8 3000", "(3,0,0) (0,3,0) (0,0,1)", "field of view is 24"
    source = tmp_path / "in" / "ct.nrrd"
    source.parent.mkdir()
    header = (
        f"NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: {size}\n"
        f"space directions: {spacing}\nkinds: domain domain domain\n"
        f"endian: {'big' if case == 'byte-swapped' else 'little'}\nencoding: raw\nspace origin: (0,0,0)\n\n"
    )
    source.write_bytes(header.encode() + data)
    before = tree_digest(source.parent)
    result = run_cli("segment", str(source), "-o", str(tmp_path / "out"), *models)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], result.stderr
    assert "--skip-plausibility-check" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and tree_digest(source.parent) == before
    assert sorted(os.listdir(tmp_path)) == ["in", "models"]


def test_segment_with_the_flag_runs_and_the_report_says_it_was_skipped(tmp_path: Path, models: list[str]) -> None:
    a = np.full((12, 20, 24), -500, np.int16)  # 24 x 20 mm, no air: refused without the flag
    a[2:10, 4:16, 4:20] = 100
    source = write_volume(tmp_path / "ct.nrrd", CTVolume(a, Geometry.create(a.shape)))
    refused = run_cli("segment", str(source), "-o", str(tmp_path / "refused"), *models)
    assert refused.returncode == 2 and "field of view is 24 x 20 mm" in refused.stderr
    result = run_cli("segment", str(source), "-o", str(tmp_path / "out"), *models, "--skip-plausibility-check")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert plausibility.SKIPPED_WARNING in report["warnings"]
    assert report["liver"]["volume_ml"] == pytest.approx(8 * 12 * 16 / 1000)


def test_inspect_shows_what_segment_would_refuse(tmp_path: Path, sample: CTVolume) -> None:
    source = write_volume(tmp_path / "ct.nrrd", _spaced(sample, (12.0, 2.0, 3.5)))
    result = run_cli("inspect", str(source), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["plausibility_findings"] == [
        "in-plane voxel size along i is 12 mm, above 10 mm (too coarse to show the liver)"
    ]
    text = run_cli("inspect", str(RESOURCES_DIR / "Sample" / "sample_ct.nrrd")).stdout
    assert "plausibility  looks like a CT of a body" in text
