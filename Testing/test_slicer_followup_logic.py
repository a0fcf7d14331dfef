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
