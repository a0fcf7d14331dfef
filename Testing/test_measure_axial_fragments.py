"""A lesion in two pieces on its measurement slice (joined on another slice): RECIST 1.1 fragmented lesions.

The dumbbell: on slice k=2 two blobs, A (10 x 4 voxels) and B (6 x 4 voxels), 4 voxels apart; on slice k=1 a
bar one voxel wide joins them (so they are one lesion in 3D). Pixels 0.75 mm, slices 2.5 mm. The 0.5
iso-contour of an a x b voxel rectangle cuts its corners at the edge midpoints, so its longest chord is
max(hypot(a, b - 1), hypot(a - 1, b)) voxels:

* A: hypot(10, 3) * 0.75 = 7.8302 mm; B: hypot(6, 3) * 0.75 = 5.0312 mm; sum 12.8614 mm.
* The bar (15 x 1 voxels) on slice 1: 15 * 0.75 = 11.25 mm < 12.8614, so slice 2 is the measurement slice.
* Before: one chord across both blobs and the gap, 15.17 mm (about hypot(20, 3) * 0.75).
"""

from __future__ import annotations

import numpy as np
import pytest
from _report_helpers import ct_with

from SmoothSegNetLib.report import measure
from SmoothSegNetLib.report.overview import LONG_COLOUR, render_overview
from SmoothSegNetLib.resample import reorient_to
from SmoothSegNetLib.volume import Geometry

GEOMETRY = Geometry.create((5, 14, 26), (0.75, 0.75, 2.5), (10.0, -20.0, 50.0))
A_MM = 0.75 * np.hypot(10.0, 3.0)
B_MM = 0.75 * np.hypot(6.0, 3.0)


def _dumbbell() -> np.ndarray:
    labels = np.ones(GEOMETRY.shape_kji, dtype=np.uint8)
    labels[2, 5:9, 2:12] = 2  # A: i 2..11, j 5..8
    labels[2, 5:9, 16:22] = 2  # B: i 16..21, j 5..8
    labels[1, 7, 5:20] = 2  # the bar under both, 15 voxels
    return labels


@pytest.fixture(scope="module")
def lesion() -> dict:
    labels = _dumbbell()
    report = measure(ct_with(labels, GEOMETRY), labels)
    assert report["tumor_burden"]["count"] == 1  # one lesion in 3D
    assert any("fragmented" in note for note in report["notes"])
    return report["lesions"][0]


def test_long_axis_is_the_sum_of_the_pieces(lesion: dict) -> None:
    assert lesion["fragmented"] is True
    assert lesion["long_axis_slice_k"] == 2
    assert [f["long_axis_mm"] for f in lesion["fragments"]] == pytest.approx([A_MM, B_MM], abs=1e-4)
    assert lesion["long_axis_mm"] == pytest.approx(A_MM + B_MM, abs=1e-4)
    assert lesion["long_axis_mm"] == pytest.approx(12.8614, abs=1e-4)


def test_each_piece_is_measured_within_itself(lesion: dict) -> None:
    """Each piece's ends lie on its own blob's cut-corner outline on slice 2; none spans the gap."""
    ranges_i = [(2 - 0.5, 11 + 0.5), (16 - 0.5, 21 + 0.5)]
    for fragment, (lo, hi) in zip(lesion["fragments"], ranges_i):
        ijk = GEOMETRY.lps_to_index(fragment["long_axis_ends_lps_mm"])
        assert ijk[:, 2] == pytest.approx([2.0, 2.0], abs=1e-6)
        assert np.all((ijk[:, 0] >= lo - 1e-6) & (ijk[:, 0] <= hi + 1e-6)), ijk
        assert np.ptp(ijk[:, 0]) >= hi - lo - 1.0 - 1e-6  # end to end of the piece (less the cut corners)
    # The lesion's own end points are those of its longest piece (A), the short axis A's: perpendicular to it.
    assert lesion["long_axis_ends_lps_mm"] == lesion["fragments"][0]["long_axis_ends_lps_mm"]
    assert lesion["short_axis_mm"] == lesion["fragments"][0]["short_axis_mm"]
    long_vec = np.diff(np.asarray(lesion["long_axis_ends_lps_mm"]), axis=0)[0]
    short_vec = np.diff(np.asarray(lesion["short_axis_ends_lps_mm"]), axis=0)[0]
    assert float(long_vec @ short_vec) == pytest.approx(0.0, abs=1e-6)
    # An exact 7.5 x 3 mm rectangle has short axis D * 3 / 7.5 (D its diagonal); the cut-corner outline is
    # within half a pixel of it on each side.
    assert lesion["short_axis_mm"] == pytest.approx(np.hypot(7.5, 3.0) * 3.0 / 7.5, abs=0.75 * np.sqrt(2))


def test_fragmented_sum_is_the_same_stored_sagittally(lesion: dict) -> None:
    labels, geometry = reorient_to(_dumbbell(), GEOMETRY, "PIL")
    again = measure(ct_with(labels, geometry), labels)["lesions"][0]
    assert again["fragmented"] is True
    assert again["long_axis_mm"] == pytest.approx(lesion["long_axis_mm"], abs=1e-6)
    assert [f["long_axis_mm"] for f in again["fragments"]] == [f["long_axis_mm"] for f in lesion["fragments"]]


def test_one_piece_is_not_fragmented() -> None:
    labels = _dumbbell()
    labels[2, 5:9, 12:16] = 2  # fill the gap: one 20 x 4 bar on slice 2
    lesion = measure(ct_with(labels, GEOMETRY), labels)["lesions"][0]
    assert lesion["fragmented"] is False and lesion["fragments"] == []
    assert lesion["long_axis_mm"] == pytest.approx(0.75 * np.hypot(20.0, 3.0), abs=1e-4)


def test_overview_draws_one_long_axis_per_piece(lesion: dict) -> None:
    labels = _dumbbell()
    ct = ct_with(labels, GEOMETRY)
    report = measure(ct, labels)
    lesions = (labels == 2).astype(np.uint16)
    fig = render_overview(ct, labels, lesions, report)
    panel = fig.axes[0]
    red = [line for line in panel.get_lines() if line.get_color() == LONG_COLOUR and line.get_linestyle() == "-"]
    assert len(red) == 2  # one per piece, none across the gap
    drawn = sorted(np.ptp(np.asarray(line.get_xdata(), dtype=float)) for line in red)
    expected = sorted(np.ptp(GEOMETRY.lps_to_index(f["long_axis_ends_lps_mm"])[:, 0]) for f in lesion["fragments"])
    assert drawn == pytest.approx(expected, abs=1e-6)
    legend = [t.get_text() for t in panel.get_legend().get_texts()]
    assert any("7.8 + 5.0 = 12.9 mm (2 pieces)" in t for t in legend), legend
