"""mRECIST viable tissue: enhancing part counted, necrosis and lipiodol (with its blur) not."""

from __future__ import annotations

import numpy as np

from SmoothSegNetLib.followup.viable import viable_long_axes, viable_mask
from SmoothSegNetLib.report.recist import recist_axes
from SmoothSegNetLib.volume import Geometry

GEOMETRY = Geometry.create((20, 70, 110), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ct = np.full(GEOMETRY.shape_kji, 70, dtype=np.int16)  # liver parenchyma at 70 HU everywhere
    labels = np.ones(GEOMETRY.shape_kji, dtype=np.uint8)
    lesions = np.zeros(GEOMETRY.shape_kji, dtype=np.uint16)
    lesions[8:13, 20:40, 10:50] = 1  # half enhancing (i 10-29, 200 HU), half necrotic (i 30-49, 20 HU)
    ct[8:13, 20:40, 10:30] = 200
    ct[8:13, 20:40, 30:50] = 20
    lesions[8:13, 25:40, 75:95] = 2  # all lipiodol: its blurred rim must not pass for enhancement
    ct[8:13, 25:40, 75:95] = 500
    labels[lesions > 0] = 2
    return ct, labels, lesions


def test_viable_part_is_the_enhancing_half() -> None:
    ct, labels, lesions = _case()
    mask, reference = viable_mask(ct, labels, lesions == 1, GEOMETRY)
    assert reference == 70.0
    expected = np.zeros_like(mask)
    expected[8:13, 20:40, 10:30] = True
    assert np.array_equal(mask, expected)
    axes = viable_long_axes(ct, labels, lesions, GEOMETRY)
    assert axes[1] == round(recist_axes(expected, GEOMETRY).long_axis_mm, 2)
    assert axes[1] < round(recist_axes(lesions == 1, GEOMETRY).long_axis_mm, 2)


def test_lipiodol_and_its_blurred_rim_are_not_viable() -> None:
    ct, labels, lesions = _case()
    assert viable_long_axes(ct, labels, lesions, GEOMETRY)[2] == 0.0
