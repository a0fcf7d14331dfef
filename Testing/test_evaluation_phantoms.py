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
