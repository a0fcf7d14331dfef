"""``scripts/device_train.sh``, the command a lent GPU machine runs, here on the CPU (``DEVICE=cpu``; the GPU
itself is the one part that cannot exist here): a whole tiny run, a run carried in from an earlier sitting and
continued from its checkpoint, a sitting stopped before its first checkpoint, and its refusals of bad arguments."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _training_helpers import write_tiny_config
from conftest import REPO_ROOT

from SmoothSegNetLib.models import load_card, sha256_file

SCRIPT = REPO_ROOT / "scripts" / "device_train.sh"


def _run(args: list[str], out: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        PYTHON=sys.executable,
        DEVICE="cpu",
        WHEELS=str(tmp_path / "no-wheels"),  # nothing to install: this venv has MONAI and jsonschema
        OUT=str(out),
    )
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


def _iterations(run: Path) -> list[int]:
    with (run / "metrics.csv").open(newline="") as handle:
        return [int(row["iteration"]) for row in csv.DictReader(handle)]


def test_a_whole_sitting_leaves_the_card_its_log_and_its_environment(tmp_path: Path) -> None:
    config = write_tiny_config(tmp_path, "tumor")
    out = tmp_path / "out"
    done = _run([str(config), "5", "5"], out, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finished: the card and its weights are in" in done.stdout
    card = load_card(out / "run" / "tiny-tumor.json")
    assert card.weights.sha256 == sha256_file(out / "run" / "tiny-tumor.safetensors")
    assert _iterations(out / "run")[-1] == 6
    env = (out / "env.txt").read_text()
    assert env.startswith("python 3.") and "monai " in env and "device cpu" in env
    assert "trained tumor stage" in (out / "train.log").read_text()


def test_a_run_of_an_earlier_sitting_is_continued_from_its_checkpoint(tmp_path: Path) -> None:
    first = write_tiny_config(tmp_path, "tumor", iterations=3)
    earlier = tmp_path / "earlier"
    done = subprocess.run(
        [sys.executable, "-m", "SmoothSegNetLib", "train", "--config", str(first), "-o", str(earlier)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert _iterations(earlier)[-1] == 3
    config = write_tiny_config(tmp_path, "tumor", iterations=6)
    out = tmp_path / "out"
    done = _run([str(config), "5", "5", str(earlier)], out, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed" in (out / "train.log").read_text() and "at iteration 3" in (out / "train.log").read_text()
    assert _iterations(out / "run") == [3, 6]  # the earlier sitting's row (iteration 3), then this one's
    assert json.loads((out / "run" / "tiny-tumor.json").read_text())["training"]["run"]["iterations"] == 6
    assert _iterations(earlier)[-1] == 3  # the carried folder is copied, not changed


def test_a_sitting_shorter_than_its_budget_still_writes_its_card(tmp_path: Path) -> None:
    # A 100-minute budget in a 0.75-minute sitting: the budget is cut once the phantoms are rendered (train
    # --finish-within), so the sitting ends with the card, not at a checkpoint (the first 1.4 mm GPU arms did).
    config = write_tiny_config(tmp_path, "tumor", iterations=100000, checkpoint_every=2, val_every=1000)
    out = tmp_path / "out"
    done = _run([str(config), "100", "0.75"], out, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finished: the card and its weights are in" in done.stdout
    record = json.loads((out / "run" / "tiny-tumor.json").read_text())["training"]
    assert 0.0 < record["config"]["max_minutes"] < 0.75
    assert record["run"]["stopped_early"] is True


def test_a_sitting_stopped_before_its_first_checkpoint_says_so(tmp_path: Path) -> None:
    config = write_tiny_config(tmp_path, "tumor")
    out = tmp_path / "out"
    done = _run([str(config), "5", "0.005"], out, tmp_path)  # 0.3 s: SIGINT while Python still imports
    assert done.returncode == 130
    assert "before the first checkpoint: nothing to continue" in done.stderr
    assert not (out / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cfg.json", "5"], "expected 3 or 4 arguments, got 2"),
        (["missing.json", "5", "5"], "no training configuration at missing.json"),
        (["cfg.json", "0", "5"], "must be positive numbers of minutes, got '0'"),
        (["cfg.json", "5", "-1"], "must be positive numbers of minutes, got '-1'"),
        (["cfg.json", "5", "5", "no-run"], "no-run holds no checkpoint.pt to continue"),
    ],
)
def test_bad_arguments_get_one_error_line_and_nothing_is_written(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "cfg.json").write_text("{}")
    args = [str(tmp_path / a) if a.endswith(".json") or a == "no-run" else a for a in args]
    out = tmp_path / "out"
    done = _run(args, out, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0].replace(str(tmp_path) + "/", "")
    assert not out.exists()
