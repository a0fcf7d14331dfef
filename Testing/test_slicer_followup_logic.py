"""Logic of the Slicer "Compare with prior study" section, run as the widget runs it (a real child process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _followup_helpers import GRID, _visit

from SmoothSegNetLib.phantom import make_phantom
from SmoothSegNetLib.phantom.followup import make_followup_phantom
from SmoothSegNetLib.slicer_support.followup import (
    TABLE_COLUMNS,
    followup_command,
    response_summary,
    row_centres_ras,
    row_view_centres_ras,
    tracked_lesion_rows,
)
from SmoothSegNetLib.slicer_support.process import ChildProcess


def test_child_process_reports_progress_and_rows_centre_both_studies(tmp_path: Path) -> None:
    prior = _visit(tmp_path, "prior", make_phantom(6, *GRID, phase="arterial"))
    current = _visit(tmp_path, "current", make_followup_phantom(6, 1, *GRID, phase="arterial"))
    out = tmp_path / "out"
    command = followup_command(prior, current, out, phase="arterial")
    assert command[-6:] == ["-o", str(out), "--progress", "jsonl", "--phase", "arterial"]
    events, finished = ChildProcess(command, what="Follow-up").wait(timeout_s=300)
    assert finished.returncode == 0, finished.message
    stages = [e.stage for e in events]
    assert "register" in stages and stages[-1] == "followup" and events[-1].fraction == 1.0
    data = json.loads((out / "followup.json").read_text())
    rows = tracked_lesion_rows(data)
    assert [r[0] for r in rows] == ["L1", "L2", "L3"] and len(rows[0]) == len(TABLE_COLUMNS)
    assert rows[0][1] == "matched" and rows[0][2] == f"{data['lesions'][0]['baseline_long_axis_mm']:.1f}"
    centres = row_centres_ras(data, "L1", 1)
    lps = np.asarray(data["lesions"][0]["baseline_centroid_lps_mm"])
    assert np.allclose(centres["baseline"], [-lps[0], -lps[1], lps[2]])
    assert centres["followup"] is not None
    assert response_summary(data).splitlines()[:2] == [
        f"RECIST 1.1: SD ({data['recist']['reason']})",
        f"mRECIST: PR ({data['mrecist']['reason']})",
    ]
    with pytest.raises(KeyError, match="no tracked lesion 'L9'"):
        row_centres_ras(data, "L9", 1)


def test_view_centres_of_a_new_and_a_disappeared_lesion_go_through_the_registration() -> None:
    """An absent study's views are centred where the lesion would be: the affine (baseline LPS -> follow-up
    LPS) here turns 90 degrees about S and shifts by (10, -20, 5) mm; answers worked out by hand."""
    affine = [[0, -1, 0, 10], [1, 0, 0, -20], [0, 0, 1, 5], [0, 0, 0, 1]]
    row = {"visit": 1, "baseline_centroid_lps_mm": None, "followup_centroid_lps_mm": None}
    data = {
        "registration": [{"visit": 1, "affine_lps": affine}],
        "lesions": [
            {**row, "tracking_id": "L1", "baseline_centroid_lps_mm": [1.0, 2.0, 3.0]},  # disappeared
            {**row, "tracking_id": "N1", "followup_centroid_lps_mm": [8.0, -19.0, 8.0]},  # new
            {**row, "tracking_id": "L2", "baseline_centroid_lps_mm": [1, 1, 1], "followup_centroid_lps_mm": [5, 5, 5]},
        ],
    }
    gone = row_view_centres_ras(data, "L1", 1)
    # follow-up LPS = (-2 + 10, 1 - 20, 3 + 5) = (8, -19, 8); RAS flips L and P.
    assert gone["baseline"] == (-1.0, -2.0, 3.0) and np.allclose(gone["followup"], (-8.0, 19.0, 8.0))
    new = row_view_centres_ras(data, "N1", 1)
    # baseline LPS: x = y_f + 20 = 1, y = -(x_f - 10) = 2, z = z_f - 5 = 3.
    assert np.allclose(new["baseline"], (-1.0, -2.0, 3.0)) and new["followup"] == (-8.0, 19.0, 8.0)
    assert row_view_centres_ras(data, "L2", 1) == row_centres_ras(data, "L2", 1)  # both known: their own
    with pytest.raises(KeyError, match="no tracked lesion 'L9'"):
        row_view_centres_ras(data, "L9", 1)
