"""RECIST axes drawn by hand (SmoothSegNetLib.report.manual_axes) in the engine's ``measure``.

Hand-computable: on an anisotropic grid (1 x 2 x 3 mm, axial, i flipped to the patient's right), a line from
(0, 0, 0) to (30, 40, 0) LPS is 50.0 mm and lies on stored slice k = 2; (11, 24, 0) -> (19, 18, 0) is 10.0 mm.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.report.manual_axes import (
    check_manual_axes,
    line_on_lesion,
    manual_axes_of_report,
    parse_manual_axes,
    read_manual_axes,
)
from SmoothSegNetLib.volume import CTVolume, Geometry

SHAPE = (8, 40, 60)
#: i along -L (flipped), j along P, k along S: voxel (i, j, k) is at L = 40 - i, P = -30 + 2 j, S = -6 + 3 k.
GEOMETRY = Geometry.create(SHAPE, (1.0, 2.0, 3.0), (40.0, -30.0, -6.0), [[-1, 0, 0], [0, 1, 0], [0, 0, 1]])
#: Lesion 1: L 10..20 (i 20..30), P 14..26 (j 22..28), S -3..6 (k 1..4); lesion 2 is a small cube far away.
LESION_1 = (slice(1, 5), slice(22, 29), slice(20, 31))
LESION_2 = (slice(1, 4), slice(2, 5), slice(50, 53))
LONG = [[0.0, 0.0, 0.0], [30.0, 40.0, 0.0]]  # 50.0 mm, midpoint (15, 20, 0): voxel (25, 25, 2), in lesion 1
SHORT = [[11.0, 24.0, 0.0], [19.0, 18.0, 0.0]]  # 10.0 mm, midpoint (15, 21, 0)


def case() -> tuple[CTVolume, np.ndarray, np.ndarray]:
    ct = np.full(SHAPE, 50, np.int16)
    ct[:, :, :2] = -1000  # air at the image's edge: a CT is not constant
    labels = np.ones(SHAPE, np.uint8)
    lesions = np.zeros(SHAPE, np.uint16)
    for n, box in ((1, LESION_1), (2, LESION_2)):
        labels[box], lesions[box], ct[box] = 2, n, 100 + 20 * n
    return CTVolume(ct, GEOMETRY), labels, lesions


def test_manual_lines_replace_the_axes_with_their_lengths() -> None:
    ct, labels, lesions = case()
    automatic = measure(ct, labels, lesions)
    report = measure(ct, labels, lesions, manual_axes=parse_manual_axes({"1": {"long": LONG, "short": SHORT}}))
    one, two = report["lesions"]
    assert one["long_axis_mm"] == 50.0 and one["short_axis_mm"] == 10.0
    assert one["long_axis_ends_lps_mm"] == LONG and one["short_axis_ends_lps_mm"] == SHORT
    assert (one["long_axis_source"], one["short_axis_source"]) == ("manual", "manual")
    assert one["long_axis_slice_k"] == 2  # S = 0 is stored slice k = 2
    assert one["categories"] == {"recist_measurable": True, "lirads_size_only": ">=20 mm", "paper_size_group": "<10 cm"}
    assert automatic["lesions"][0]["long_axis_mm"] != 50.0  # the lines changed the numbers
    assert two == {**automatic["lesions"][1], "long_axis_source": "automatic", "short_axis_source": "automatic"}
    assert report["tumor_burden"]["largest_long_axis_mm"] == 50.0
    assert report["milan_size_check"]["reason"].startswith("2 lesions, largest long axis 50.0 mm > 30 mm")
    assert "lesion(s) 1: RECIST axes measured by hand (manual lines)" in report["warnings"]
    # Everything else is the measured lesion's.
    for key in ("voxel_count", "volume_ml", "max_diameter_3d_mm", "mean_hu", "centroid_lps_mm"):
        assert one[key] == automatic["lesions"][0][key], key


def test_one_axis_by_hand_keeps_the_other_measured() -> None:
    ct, labels, lesions = case()
    automatic = measure(ct, labels, lesions)["lesions"][0]
    one = measure(ct, labels, lesions, manual_axes=parse_manual_axes({1: {"short": SHORT}}))["lesions"][0]
    assert (one["long_axis_source"], one["short_axis_source"]) == ("automatic", "manual")
    assert one["short_axis_mm"] == 10.0 and one["long_axis_mm"] == automatic["long_axis_mm"]
    assert one["long_axis_slice_k"] == automatic["long_axis_slice_k"]


def test_a_line_off_its_lesion_is_dropped_with_a_warning() -> None:
    """Lesion 1 deleted: the former lesion 2 is lesion 1 now; lines keyed by the old ids attach to nothing."""
    ct, labels, lesions = case()
    labels[LESION_1], lesions[LESION_1] = 1, 0
    lesions[LESION_2] = 1
    report = measure(ct, labels, lesions, manual_axes=parse_manual_axes({"1": {"long": LONG}, "2": {"long": LONG}}))
    (only,) = report["lesions"]
    assert only["long_axis_source"] == "automatic" and only["long_axis_mm"] != 50.0
    assert any(
        w.startswith("manual RECIST line(s) of lesion(s) 1 (long), 2 (long) were dropped") for w in report["warnings"]
    )
    assert not any("measured by hand" in w for w in report["warnings"])


def test_line_on_lesion_rule() -> None:
    _, _, lesions = case()
    assert line_on_lesion(lesions, GEOMETRY, 1, np.array(LONG))
    assert not line_on_lesion(lesions, GEOMETRY, 2, np.array(LONG))
    # A curved lesion: the midpoint is background, and the line crosses only this lesion: it is its line.
    crescent = np.zeros(SHAPE, np.uint16)
    crescent[2, 22:29, 20:22] = 1  # L 19..20
    crescent[2, 22:29, 29:31] = 1  # L 10..11
    across = np.array([[20.0, 20.0, 0.0], [10.0, 20.0, 0.0]])
    assert line_on_lesion(crescent, GEOMETRY, 1, across)
    crescent[2, 24:26, 23:25] = 2  # another lesion in between: not this lesion's line any more
    assert not line_on_lesion(crescent, GEOMETRY, 1, across)


def test_report_round_trip_carries_the_same_numbers() -> None:
    """A report's manual lines read back give the very same lengths (end points rounded when read)."""
    ct, labels, lesions = case()
    odd = [[0.123456, 0.0, 0.0], [30.0, 40.000049, 0.0]]
    first = measure(ct, labels, lesions, manual_axes=parse_manual_axes({"1": {"long": odd}}))
    again = measure(ct, labels, lesions, manual_axes=manual_axes_of_report(json.loads(json.dumps(first))))
    assert again["lesions"][0]["long_axis_mm"] == first["lesions"][0]["long_axis_mm"]
    assert first["lesions"][0]["long_axis_ends_lps_mm"][0][0] == 0.1235


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"x": {"long": LONG}}, "'x' is not a lesion id"),
        ({"0": {"long": LONG}}, "'0' is not a lesion id"),
        ({"1": {"diagonal": LONG}}, "must map 'long' and/or 'short'"),
        ({"1": {}}, "must map 'long' and/or 'short'"),
        ({"1": {"long": [[0, 0, 0]]}}, "lesion 1 long must be two finite LPS points"),
        ({"1": {"long": [[0, 0, 0], [1, "a", 2]]}}, "lesion 1 long must be two"),
        ({"1": {"long": [[0, 0, 0], [1, float("nan"), 2]]}}, "two finite LPS points"),
        ({"1": {"short": [[5, 5, 5], [5, 5, 5]]}}, "lesion 1 short has zero length"),
    ],
)
def test_malformed_manual_axes_are_refused(data: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_manual_axes(data, "--manual-axes f.json")


def test_check_refuses_unknown_lesions_points_outside_and_lines_off_their_lesion(tmp_path: Path) -> None:
    _, _, lesions = case()
    check_manual_axes(parse_manual_axes({"1": {"long": LONG}}), lesions, GEOMETRY)
    with pytest.raises(InputError, match=r"lesion 3 does not exist \(the labelmap has 2 lesion\(s\), ids 1..2\)"):
        check_manual_axes(parse_manual_axes({"3": {"long": LONG}}), lesions, GEOMETRY)
    outside = [[0.0, 0.0, 0.0], [30.0, 40.0, 30.0]]  # S = 30 is beyond the last slice (S 15 + 1.5)
    with pytest.raises(InputError, match="are not all inside the image"):
        check_manual_axes(parse_manual_axes({"1": {"long": outside}}), lesions, GEOMETRY)
    with pytest.raises(InputError, match="does not lie on lesion 2"):
        check_manual_axes(parse_manual_axes({"2": {"long": LONG}}), lesions, GEOMETRY)
    bad = tmp_path / "axes.json"
    bad.write_text('{"1": {"long": [[0, 0, 0], [30, 40, 0]]', encoding="utf-8")
    with pytest.raises(InputError, match=r"--manual-axes .*axes.json is not a JSON file"):
        read_manual_axes(bad)
    with pytest.raises(InputError, match="no such file"):
        read_manual_axes(tmp_path / "missing.json")


def test_overview_draws_the_hand_drawn_lines() -> None:
    """overview.png's panel of lesion 1 draws the user's lines: 50.0 mm and 10.0 mm on the 1 x 2 mm pixels."""
    from SmoothSegNetLib.report.overview import render_overview

    ct, labels, lesions = case()
    report = measure(ct, labels, lesions, manual_axes=parse_manual_axes({"1": {"long": LONG, "short": SHORT}}))
    figure = render_overview(ct, labels, lesions, report)
    drawn = {line.get_label(): line for line in figure.axes[0].get_lines()}  # the panel of lesion 1
    for label, length_mm in (("long 50.0 mm, manual", 50.0), ("short 10.0 mm, manual", 10.0)):
        x, y = (np.asarray(v, dtype=float) for v in drawn[label].get_data())  # panel pixels: columns, rows
        assert np.hypot((x[1] - x[0]) * 1.0, (y[1] - y[0]) * 2.0) == pytest.approx(length_mm, abs=1e-9)
    assert sorted(label for label in drawn if not label.startswith("_")) == [
        "long 50.0 mm, manual",
        "short 10.0 mm, manual",
    ]  # not the measured axes
