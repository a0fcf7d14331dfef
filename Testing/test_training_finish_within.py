"""``train --finish-within MIN``: a sitting with a hard end (a lent GPU machine) writes its card in time. The first
1.4 mm arms on the GPU rendered their phantoms for about 2 minutes of an 8.7-minute sitting and were stopped before
their cards, with the learning rate not yet at its floor; the budget is now cut once the data is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _training_helpers import write_tiny_config
from conftest import run_cli

from SmoothSegNetLib.training import trainer
from SmoothSegNetLib.training.config import load_config
from SmoothSegNetLib.training.trainer import FINISH_MARGIN_S, _budget_before, learning_rate_at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> float:
    now = 1000.0
    monkeypatch.setattr(trainer.time, "monotonic", lambda: now)
    return now


@pytest.mark.parametrize(
    ("max_minutes", "left_s", "elapsed_before_s", "expected_min"),
    [
        (10.0, 90.0, 60.0, 2.5),  # 60 s trained + 90 s left: cut from 10 to 2.5 min
        (0.0, 90.0, 0.0, 1.5),  # no budget of its own: the time left is the budget
        (2.0, 90.0, 60.0, 2.0),  # its own budget ends first: unchanged
        (10.0, -45.0, 60.0, 1.0),  # already late: the time trained, so one more iteration and the card
    ],
)
def test_the_budget_is_cut_to_the_time_left(
    tmp_path: Path, clock: float, max_minutes: float, left_s: float, elapsed_before_s: float, expected_min: float
) -> None:
    config = load_config(write_tiny_config(tmp_path, "tumor", max_minutes=max_minutes))
    cut = _budget_before(config, clock + FINISH_MARGIN_S + left_s, elapsed_before_s)
    assert cut.max_minutes == pytest.approx(expected_min)
    # The learning rate reaches its floor (5 % of the base) at the cut budget's end, not the config's.
    lr = learning_rate_at(50, cut, 60.0 * expected_min)
    assert lr == pytest.approx(0.05 * config.learning_rate)


def test_a_fresh_run_with_no_time_left_still_trains_one_iteration(tmp_path: Path, clock: float) -> None:
    config = load_config(write_tiny_config(tmp_path, "tumor", max_minutes=10.0))
    cut = _budget_before(config, clock, 0.0)
    assert 0.0 < cut.max_minutes * 60.0 <= 1e-3


def test_train_finish_within_writes_the_card_in_time(tmp_path: Path) -> None:
    # A budget of a minute and more iterations than it can train: without the cut the run trains the whole minute
    # and its card records max_minutes 1.0.
    config = write_tiny_config(tmp_path, "tumor", iterations=100000, max_minutes=1.0, val_every=50, checkpoint_every=50)
    out = tmp_path / "run"
    within = (FINISH_MARGIN_S + 3.0) / 60.0
    done = run_cli("train", "--config", str(config), "-o", str(out), "--progress", "none", "--device", "cpu",
                   "--finish-within", f"{within:.4f}")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    card = json.loads((out / "tiny-tumor.json").read_text(encoding="utf-8"))
    assert 0.0 < card["training"]["config"]["max_minutes"] <= 3.0 / 60.0
    assert card["training"]["run"]["stopped_early"] is True
    assert card["training"]["run"]["iterations"] < 100000


@pytest.mark.parametrize("value", ["0", "-2"])
def test_train_refuses_a_finish_time_not_ahead_before_writing(tmp_path: Path, value: str) -> None:
    config = write_tiny_config(tmp_path, "tumor")
    out = tmp_path / "run"
    done = run_cli("train", "--config", str(config), "-o", str(out), "--finish-within", value)
    assert done.returncode == 2
    assert f"--finish-within must be a positive number of minutes, got {float(value)}" in done.stderr
    assert not out.exists()
