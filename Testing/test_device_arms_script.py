"""``scripts/device_arms.sh``, several training arms side by side in one device call, here on the CPU
(``DEVICE=cpu``; the GPU itself is the one part that cannot exist here): what comes back is one tar per arm within
the device tool's limits (8 files, two folders down, 16 MiB each), an arm stopped at its checkpoint brings that
checkpoint back, and bad arguments are refused before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from _training_helpers import write_tiny_config
from conftest import REPO_ROOT

from SmoothSegNetLib.models import load_card, sha256_file

SCRIPT = REPO_ROOT / "scripts" / "device_arms.sh"


def _run(args: list[str], out: Path, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(PYTHON=sys.executable, DEVICE="cpu", WHEELS=str(tmp_path / "no-wheels"), OUT=str(out), **extra)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


def _arm(tmp_path: Path, name: str, **overrides: object) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    config = write_tiny_config(folder, "tumor", **overrides)
    return config.rename(folder / f"{name}.json")


def test_two_arms_come_back_as_one_tar_each_with_their_cards_and_no_checkpoint(tmp_path: Path) -> None:
    first, second = _arm(tmp_path, "arm-a"), _arm(tmp_path, "arm-b", seed=1)
    out = tmp_path / "out"
    done = _run(["5", "5", str(first), str(second)], out, tmp_path, DATA_WORKERS="2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["arm-a.tar", "arm-b.tar", "arms.log"]
    weights = {}
    for name in ("arm-a", "arm-b"):
        target = tmp_path / f"back-{name}"
        with tarfile.open(out / f"{name}.tar") as tar:
            members = tar.getnames()
            tar.extractall(target, filter="data")
        assert "run/checkpoint.pt" not in members
        assert {"run/metrics.csv", "env.txt", "train.log", "sitting.log"} <= set(members)
        # DATA_WORKERS reached the training: 6 training phantoms rendered by 2 processes.
        train_log = (target / "train.log").read_text()
        assert "rendering 6 phantoms in 2 processes" in train_log
        card = load_card(target / "run" / "tiny-tumor.json")
        assert card.weights.sha256 == sha256_file(target / "run" / "tiny-tumor.safetensors")
        weights[name] = card.weights.sha256
    # Two processes, two seeds: two runs, not one copied.
    assert weights["arm-a"] != weights["arm-b"]
    log = (out / "arms.log").read_text()
    assert "arm-a: exit 0, last logged iteration 6" in log and "arm-b: exit 0, last logged iteration 6" in log


def test_an_arm_stopped_by_its_sitting_brings_back_its_checkpoint(tmp_path: Path) -> None:
    slow = _arm(tmp_path, "arm-slow", iterations=100000, checkpoint_every=2, val_every=1000)
    out = tmp_path / "out"
    # FINISH_WITHIN=none: without it the arm cuts its budget to write its card within the sitting.
    done = _run(["100", "0.6", str(slow)], out, tmp_path, FINISH_WITHIN="none")
    assert done.returncode == 0, done.stdout + done.stderr
    with tarfile.open(out / "arm-slow.tar") as tar:
        members = set(tar.getnames())
    assert {"run/checkpoint.pt", "run/metrics.csv", "train.log"} <= members
    assert not any(m.endswith(".json") for m in members)
    assert "stopped after 0.6 min at the last checkpoint" in (out / "arms.log").read_text()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no training configuration at"),
        ("twice", "two arms named arm-a"),
        ("few", "expected a budget, a sitting and at least one configuration"),
        ("full", "is not empty"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(tmp_path: Path, case: str, message: str) -> None:
    config = _arm(tmp_path, "arm-a")
    out = tmp_path / "out"
    args = {
        "missing": ["5", "5", str(tmp_path / "nowhere.json")],
        "twice": ["5", "5", str(config), str(config)],
        "few": ["5", "5"],
        "full": ["5", "5", str(config)],
    }[case]
    if case == "full":
        out.mkdir()
        (out / "left.txt").write_text("from before")
    done = _run(args, out, tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == (["left.txt"] if case == "full" else [])
