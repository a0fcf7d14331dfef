"""The visibility measurement (SmoothSegNetLib.evaluation.visibility): the contrast filter by hand on an
anisotropic grid, its spread in white noise against the formula, which structure outshines a lesion, mirror
images, the table, the records and the command's bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.evaluation import visibility as vis
from SmoothSegNetLib.phantom.tissues import T

SPACING = (2.0, 0.8, 0.8)  # k, j, i (mm): thick slices, fine pixels


def _distance_mm(shape, centre, spacing):
    grids = np.indices(shape).astype(float)
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing)))


def test_the_filter_is_the_ball_less_its_shell_in_millimetres():
    shape = (21, 61, 61)
    centre = (10, 30, 30)
    r = _distance_mm(shape, centre, SPACING)
    hu = np.full(shape, 100.0, np.float32)
    hu[r <= 5.0] = 70.0  # a 10 mm lesion, 30 HU darker than its liver
    liver = np.ones(shape, bool)
    value, defined = vis.contrast_filter(hu, liver, SPACING, 5.0)
    assert defined[centre]
    assert value[centre] == pytest.approx(-30.0, abs=1e-3)
    # Far from the lesion the liver is flat: nothing.
    assert value[10, 5, 30] == pytest.approx(0.0, abs=1e-3) and defined[10, 5, 30]
    # One slice (2 mm) off the centre the ball holds liver and the shell lesion: weaker, same sign.
    assert -30.0 < value[11, 30, 30] < -5.0
    # A radius in voxels instead of millimetres would read the 5 mm ball as 6.25 voxels across the pixels.
    wrong, _ = vis.contrast_filter(hu, liver, (1.0, 1.0, 1.0), 5.0)
    assert abs(wrong[centre] - value[centre]) > 3.0


def test_the_filter_counts_only_the_liver_and_is_undefined_at_its_edge():
    shape = (15, 41, 41)
    hu = np.full(shape, 100.0, np.float32)
    liver = np.zeros(shape, bool)
    liver[:, :, :25] = True
    hu[~liver] = -100.0  # fat beside the liver: never averaged
    value, defined = vis.contrast_filter(hu, liver, (1.0, 1.0, 1.0), 3.0)
    assert np.all(value[defined] == pytest.approx(0.0, abs=1e-3))
    assert not defined[7, 20, 24]  # half of its ball is fat
    assert not defined[7, 20, 30]  # not liver
    assert defined[7, 20, 12]
    with pytest.raises(InputError):
        vis.contrast_filter(hu, liver[:, :, :3], (1.0, 1.0, 1.0), 3.0)
    with pytest.raises(InputError):
        vis.contrast_filter(hu, liver, (1.0, 1.0, 1.0), 0.0)


def _scene(shape=(30, 90, 90), spacing=(1.0, 1.0, 1.0)):
    hu = np.full(shape, 100.0, np.float32)
    liver = np.ones(shape, bool)
    liver[:, :3] = liver[:, -3:] = liver[:, :, :3] = liver[:, :, -3:] = False
    liver[:2] = liver[-2:] = False
    tissues = np.where(liver, T.LIVER, 0).astype(np.uint8)
    ids = np.zeros(shape, np.int32)
    return hu, liver, tissues, ids, spacing


def _add_ball(hu, tissues, ids, centre, radius, value, tissue=None, lesion=0, spacing=(1.0, 1.0, 1.0)):
    mask = _distance_mm(hu.shape, centre, spacing) <= radius
    hu[mask] = value
    if tissue is not None:
        tissues[mask] = tissue
    if lesion:
        ids[mask] = lesion
    return mask


def _figures(hu, liver, ids, tissues, spacing, volume_ml, radii=(3.5,)):
    measured = vis.lesion_visibility(hu, liver, ids, tissues, spacing, [{"id": 1, "volume_ml": volume_ml}], radii)
    assert len(measured) == 1
    return measured[0][1]


def test_the_spread_in_white_noise_is_the_formulas():
    rng = np.random.default_rng(3)
    hu, liver, tissues, ids, spacing = _scene((40, 100, 100))
    hu += rng.normal(0.0, 10.0, hu.shape).astype(np.float32)
    mask = _add_ball(hu, tissues, ids, (20, 50, 50), 3.5, 60.0, lesion=1)
    hu[mask] += rng.normal(0.0, 10.0, int(mask.sum())).astype(np.float32)
    figures = _figures(hu, liver, ids, tissues, spacing, 0.18)
    r = vis._distances_mm(3.5 + vis.SHELL_MM, (1.0, 1.0, 1.0))
    n_ball, n_shell = int((r <= 3.5).sum()), int(((r > 3.5) & (r <= 6.5)).sum())
    expected = 10.0 * math.sqrt(1.0 / n_ball + 1.0 / n_shell)
    spread = figures[0].value_hu / figures[0].z
    assert spread == pytest.approx(expected, rel=0.1)
    # A 40 HU lesion of 7 mm stands out from white noise of 10 HU (z about 40 / 2.2).
    assert figures[0].z < -12 and figures[0].ahead["parenchyma"] == 0


def test_each_structure_that_outshines_a_lesion_is_named():
    hu, liver, tissues, ids, spacing = _scene()
    _add_ball(hu, tissues, ids, (15, 45, 45), 3.5, 80.0, lesion=1)  # a faint lesion: -20 HU
    # A bright vein across the liver (+60 HU), a cyst (water) and an unlabelled bright blob of liver tissue.
    vein = np.zeros(hu.shape, bool)
    vein[:, 20:24, 60:64] = True
    hu[vein] = 160.0
    tissues[vein] = T.HEPATIC_VEIN
    _add_ball(hu, tissues, ids, (15, 70, 20), 4.0, 0.0, tissue=T.HEPATIC_CYST)
    figures = _figures(hu, liver, ids, tissues, spacing, 0.18)
    ahead = figures[0].ahead
    assert figures[0].value_hu == pytest.approx(-20.0, abs=1e-2)
    assert ahead["vessel"] >= 1 and ahead["cyst"] >= 1 and ahead["parenchyma"] == 0
    (lesion,) = [vis.LesionVisibility(1, 1, 7.0, 0.18, "hypodense", "missed", figures)]
    assert lesion.above_noise and lesion.fewest_ahead > 0
    # The same blob unlabelled (liver tissue, e.g. texture) is parenchyma: the lesion no longer stands out.
    _add_ball(hu, tissues, ids, (15, 70, 70), 3.5, 150.0)
    figures = _figures(hu, liver, ids, tissues, spacing, 0.18)
    assert figures[0].ahead["parenchyma"] >= 1
    assert not vis.LesionVisibility(1, 1, 7.0, 0.18, "hypodense", "missed", figures).above_noise


def test_spots_at_the_liver_edge_are_the_edges():
    hu, liver, tissues, ids, spacing = _scene()
    _add_ball(hu, tissues, ids, (15, 45, 45), 3.5, 80.0, lesion=1)
    hu[:, 3:6, :] = 40.0  # the liver's outer voxels darkened (partial volume with fat)
    figures = _figures(hu, liver, ids, tissues, spacing, 0.18)
    assert figures[0].ahead["edge"] >= 1 and figures[0].ahead["parenchyma"] == 0


def test_a_mirror_image_measures_the_same():
    rng = np.random.default_rng(5)
    hu, liver, tissues, ids, spacing = _scene((24, 70, 60), (2.5, 0.9, 0.7))
    hu += rng.normal(0.0, 12.0, hu.shape).astype(np.float32)
    _add_ball(hu, tissues, ids, (12, 30, 25), 4.0, 70.0, lesion=1, spacing=spacing)
    vein = np.zeros(hu.shape, bool)
    vein[:, 50:53, 40:43] = True
    hu[vein] = 170.0
    tissues[vein] = T.PORTAL_VEIN
    one = _figures(hu, liver, ids, tissues, spacing, 0.27, radii=(2.5, 3.5))
    flip = (slice(None), slice(None, None, -1), slice(None, None, -1))
    two = _figures(hu[flip], liver[flip], ids[flip], tissues[flip], spacing, 0.27, radii=(2.5, 3.5))
    for a, b in zip(one, two):
        assert a.value_hu == pytest.approx(b.value_hu, abs=1e-2)
        assert a.z == pytest.approx(b.z, abs=1e-2)
        assert a.ahead == b.ahead


def test_a_lesion_outside_the_liver_is_kept_unmeasured():
    hu, liver, tissues, ids, spacing = _scene()
    _add_ball(hu, tissues, ids, (15, 45, 45), 3.5, 80.0, lesion=1)
    _add_ball(hu, tissues, ids, (15, 45, 88), 2.5, 60.0, lesion=2)  # beyond the liver's side
    lesions = [{"id": 1, "volume_ml": 0.18}, {"id": 2, "volume_ml": 0.065}]
    measured = vis.lesion_visibility(hu, liver, ids, tissues, spacing, lesions)
    assert [(d["id"], len(f) > 0) for d, f in measured] == [(1, True), (2, False)]


def test_radii_follow_the_lesions_size():
    hu, liver, tissues, ids, spacing = _scene()
    _add_ball(hu, tissues, ids, (15, 45, 45), 3.0, 60.0, lesion=1)
    measured = vis.lesion_visibility(hu, liver, ids, tissues, spacing, [{"id": 1, "volume_ml": 0.113}])
    # Equivalent radius 3 mm: radii up to 3.6 mm, that is 2.5 and 3.5.
    assert [f.radius_mm for f in measured[0][1]] == [2.5, 3.5]
    with pytest.raises(InputError):
        vis.lesion_visibility(hu, liver, ids[:, :, :5], tissues, spacing, [{"id": 1, "volume_ml": 0.1}])


def _record(seed, long_axis, outcome, parenchyma, vessel, z):
    figures = (vis.RadiusFigures(3.5, -20.0, z, {"cyst": 0, "vessel": vessel, "edge": 0, "parenchyma": parenchyma}),)
    return vis.LesionVisibility(seed, 1, long_axis, 0.2, "hypodense", outcome, figures)


def test_the_table_counts_by_band_and_outcome():
    lesions = [
        _record(1, 8.0, "missed", 0, 5, -6.0),
        _record(2, 8.0, "missed", 3, 9, -3.0),
        _record(3, 15.0, "found", 0, 0, -12.0),
        vis.LesionVisibility(4, 1, 6.0, 0.05, "hyperdense", "missed", ()),  # at the liver's edge: no filter
    ]
    table = vis.band_table(lesions).splitlines()
    assert table[2] == "| <10 mm | missed | 3 | 1 | 1 | 0 | 4.5 | 1.5 / 7 / 0 / 0 |"
    assert table[3] == "| 10-20 mm | found | 1 | 0 | 1 | 1 | 12.0 | 0 / 0 / 0 / 0 |"
    assert len(table) == 4
    assert not lesions[3].measured and not lesions[3].above_noise


def test_a_record_is_read_back_without_measuring_again(tmp_path, monkeypatch):
    lesion = _record(7, 12.0, "candidate", 0, 2, -7.5)
    (tmp_path / "visibility-7.json").write_text(json.dumps({"seed": 7, "lesions": [lesion.as_dict()]}))

    def no_pipeline(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(vis, "evaluate_seed", no_pipeline)
    assert vis.collect(7, tmp_path) == [lesion]


def test_a_new_record_is_written_whole(tmp_path, monkeypatch):
    lesion = _record(8, 9.0, "missed", 2, 2, -4.0)
    monkeypatch.setattr(vis, "evaluate_seed", lambda seed, threads=1: [lesion])
    assert vis.collect(8, tmp_path) == [lesion]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visibility-8.json"]
    assert vis.collect(8, tmp_path) == [lesion]


@pytest.mark.parametrize(
    "args",
    [["--seeds", "5:3"], ["--seeds", "a:b"], ["--seeds=-2:3"], ["--jobs", "0"]],
)
def test_bad_arguments_are_one_error_line(tmp_path, capsys, args):
    out = tmp_path / "records"
    assert vis.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists()


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("keep")
    assert vis.main(["--seeds", "1:2", "--out", str(out)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert out.read_text() == "keep"


def test_a_phantom_through_the_real_pipeline():
    """Seed 2009 (a tuning phantom): two rim-enhancing lesions of 35 and 22 mm; the pipeline finds the first and
    lists the second as a candidate; both stand out from their liver's noise."""
    lesions = vis.evaluate_seed(2009)
    assert [(v.id, v.kind, v.outcome) for v in lesions] == [
        (1, "rim_enhancing", "found"),
        (2, "rim_enhancing", "candidate"),
    ]
    assert lesions[0].long_axis_mm == pytest.approx(34.743, abs=0.01)
    assert all(v.above_noise for v in lesions)
    assert [f.radius_mm for f in lesions[1].radii] == [2.5, 3.5, 5.0, 7.0, 10.0]


def test_the_fft_convolution_is_scipys_direct_one():
    from scipy import ndimage

    rng = np.random.default_rng(11)
    image = rng.normal(size=(9, 14, 11)).astype(np.float32)
    kernel = rng.normal(size=(3, 5, 7)).astype(np.float32)
    direct = ndimage.convolve(image, kernel, mode="constant", cval=0.0)
    assert np.allclose(vis._convolve_same(image, kernel), direct, atol=1e-4)
