"""The held-out phantom evaluation: realistic grids per seed, and its report on hand-made results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from SmoothSegNetLib.evaluation import evaluate_case
from SmoothSegNetLib.evaluation.phantoms import HeldOutCase, heldout_grid, markdown_report, write_csv
from SmoothSegNetLib.volume import Geometry


def test_heldout_grids_are_realistic_and_fixed_by_the_seed() -> None:
    grids = [heldout_grid(seed) for seed in range(3000, 3040)]
    assert grids == [heldout_grid(seed) for seed in range(3000, 3040)]
    for size, spacing, _oblique in grids:
        assert 0.70 <= spacing[0] == spacing[1] <= 0.95 and spacing[2] in (2.0, 2.5, 3.0, 5.0)
        assert 320 <= size[0] * spacing[0] <= 400 + spacing[0] and size[0] == size[1]
        assert 200 <= size[2] * spacing[2] <= 300 + spacing[2]
    assert 0 < sum(g[2] for g in grids) < len(grids)  # some oblique, not all


def test_report_lists_summary_and_cases(tmp_path: Path) -> None:
    geometry = Geometry.create((10, 10, 10), spacing_mm=(1.0, 1.0, 2.0))
    truth = np.zeros((10, 10, 10), dtype=np.uint8)
    truth[2:8, 2:8, 2:8] = 1
    truth[4:6, 4:6, 4:6] = 2
    pred = truth.copy()
    pred[4:6, 4:6, 4] = 1  # half of the tumor missed
    result = evaluate_case("phantom-3000", pred, truth, geometry)
    case = HeldOutCase(3000, (10, 10, 10), (1.0, 1.0, 2.0), False, result, 1.5)
    text = markdown_report([case], "liver.json", "tumor.json", "python -m SmoothSegNetLib.evaluation.phantoms")
    assert "| cases with tumor (1) | tumor Dice | 0.667 |" in text  # 2*4 / (4 + 8)
    assert "| 3000 | 10×10×10 @ 1.00×1.00×2.0 | no | 1.000 |" in text
    assert "not for clinical use" in text
    write_csv(tmp_path / "e.csv", [case])
    lines = (tmp_path / "e.csv").read_text().splitlines()
    assert lines[1].startswith("3000,10x10x10,1x1x2,0,1.0000,") and ",0.6667," in lines[1]


def test_review_figures_count_missed_lesions_in_candidates_and_false_candidates(tmp_path: Path) -> None:
    """Three reference lesions: one found, two missed; of the two, one lies under a candidate. Of three
    candidates, two touch no reference lesion."""
    from SmoothSegNetLib.evaluation.phantoms import review_figures, review_text

    geometry = Geometry.create((12, 12, 24), spacing_mm=(1.0, 1.0, 2.5))
    truth = np.zeros((12, 12, 24), dtype=np.uint8)
    truth[1:11, 1:11, 1:23] = 1
    truth[2:5, 2:5, 2:5] = 2  # found
    truth[2:4, 2:4, 10:12] = 2  # missed, under candidate 2
    truth[8:10, 8:10, 18:20] = 2  # missed, no candidate
    pred = truth.copy()
    pred[2:4, 2:4, 10:12] = 1
    pred[8:10, 8:10, 18:20] = 1
    result = evaluate_case("phantom-3001", pred, truth, geometry)
    candidates = np.zeros(truth.shape, np.uint16)
    candidates[6:8, 6:8, 6:8] = 1  # liver only
    candidates[3:5, 3:5, 11:13] = 2  # overlaps the second lesion
    candidates[6:7, 2:3, 20:21] = 3  # liver only
    review = review_figures(candidates, truth == 2, geometry, result)
    assert (review.missed, review.caught, review.candidates, review.false) == (2, 1, 3, 2)
    assert review_figures(None, truth == 2, geometry, result) == type(review)(2, 0, 0, 0)
    case = HeldOutCase(3001, (24, 12, 12), (1.0, 1.0, 2.5), False, result, 1.0, review)
    assert "a candidate touches 0.500 (1/2; 95 % CI" in review_text([case])
    assert "Candidates listed: 3 in 1 cases (3.0 per case), 2 of them on no reference lesion." in review_text([case])
    write_csv(tmp_path / "e.csv", [case])
    assert (tmp_path / "e.csv").read_text().splitlines()[1].endswith(",2,1,3,2")


def test_evaluation_grid_factor_and_the_cache_record_keep_the_field_of_view() -> None:
    import pytest

    from SmoothSegNetLib.evaluation.missed_lesions import IN_PLANE_FACTOR, evaluation_grid, record_grid

    for seed in (2004, 2035, 3016):
        size, spacing, oblique = heldout_grid(seed)
        assert evaluation_grid(seed, 1.0) == (size, spacing, oblique)  # factor 1: the held-out grid itself
        coarse_size, coarse_spacing, coarse_oblique = evaluation_grid(seed)
        assert IN_PLANE_FACTOR == 2.0 and coarse_oblique == oblique
        assert coarse_spacing == (round(2 * spacing[0], 4), round(2 * spacing[1], 4), spacing[2])
        assert coarse_size == (-(-size[0] // 2), -(-size[1] // 2), size[2])  # same field of view, rounded up
        # A cache record made before the factor existed is read on the coarse grid; one with it, on its own.
        assert record_grid(seed, {"missed": []}) == evaluation_grid(seed)
        assert record_grid(seed, {"missed": [], "in_plane_factor": 1.0}) == (size, spacing, oblique)
    with pytest.raises(ValueError, match="in_plane_factor must be >= 1"):
        evaluation_grid(2004, 0.5)


def test_a_bad_in_plane_factor_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    import pytest

    from SmoothSegNetLib.evaluation import lesion_features, missed_lesions

    cache = tmp_path / "cache"
    for main in (missed_lesions.main, lesion_features.main):
        for bad in ("0.5", "abc"):
            with pytest.raises(SystemExit) as exit_info:
                main(["--seeds", "2004:2005", "--cache", str(cache), "--in-plane-factor", bad])
            assert exit_info.value.code == 2
    # Seed 2004 has no lesion of 10 mm: a skipped record was written for it before the factor was ever checked.
    assert not missed_lesions.has_large_lesion(2004, missed_lesions.MIN_LONG_AXIS_MM)
    with pytest.raises(ValueError, match="in_plane_factor must be >= 1"):
        missed_lesions.collect_seed(2004, cache, 1, missed_lesions.MIN_LONG_AXIS_MM, 0.5)
    assert not cache.exists()
