"""``add_lesion_eval --off-centre``: where the off-centre clicks land, and how the table keeps them apart."""

from __future__ import annotations

import math

import pytest

from SmoothSegNetLib.evaluation.add_lesion_eval import Click, off_centre_points, table


def test_off_centre_points_lie_a_fraction_of_the_radius_away_in_the_axial_plane() -> None:
    volume_ml = 4.0 / 3.0 * math.pi * 1000.0 / 1000.0  # a ball of radius 10 mm
    points = off_centre_points((1.0, -2.0, 30.0), volume_ml, 0.5)
    expected = [(-4.0, -2.0, 30.0), (6.0, -2.0, 30.0), (1.0, -7.0, 30.0), (1.0, 3.0, 30.0)]
    for (point, _offset), want in zip(points, expected, strict=True):
        assert point == pytest.approx(want)
    assert all(offset[2] == 0.0 and math.hypot(*offset) == pytest.approx(5.0) for _p, offset in points)


def test_table_keeps_centre_and_off_centre_clicks_apart() -> None:
    centre = (0.0, 0.0, 0.0)
    clicks = [
        Click(1, 1, 12.0, 0.8, "region_growing", 0.1),
        Click(1, 2, 14.0, 0.6, "region_growing", 0.1),
        Click(1, 1, 12.0, 0.9, "region_growing", 0.1, (2.0, 0.0, 0.0)),
        Click(1, 1, 12.0, 0.0, "refused", 0.0, (-2.0, 0.0, 0.0)),
        Click(1, 1, 12.0, 0.75, "region_growing", 0.1, (0.0, 2.0, 0.0)),
        Click(1, 2, 14.0, float("nan"), "outside_lesion", 0.0, (0.0, -2.0, 0.0)),
    ]
    assert clicks[0].offset_mm == centre
    lines = table({"bundled": (clicks, 1, 6)}).splitlines()
    assert lines[2] == "| bundled | 2 | 0.600 | 0.650 | 0.700 | 0.750 | 0.800 | 0.700 | 50% | 1 / 6 |"
    assert lines[3] == "| bundled, off centre | 3 | 0.000 | 0.375 | 0.750 | 0.825 | 0.900 | 0.550 | 67% |  |"
    assert lines[4].startswith("| bundled, off centre outside the lesion (not clicked) | 1 |")
    assert len(lines) == 5
