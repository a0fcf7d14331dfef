"""Training phantoms rendered in worker processes (``train --data-workers N``; the lent GPU machine has 16 cores and
a 1.4 mm tumor run spent most of a sitting rendering in one): the same cases, in the same order, whatever N."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from _training_helpers import write_tiny_config
from conftest import run_cli

from SmoothSegNetLib.errors import Cancelled
from SmoothSegNetLib.models import card_from_dict
from SmoothSegNetLib.training.config import load_config
from SmoothSegNetLib.training.phantom_data import phantom_cases
from SmoothSegNetLib.training.run import card_template_for


def test_cases_rendered_by_two_workers_are_those_of_one(tmp_path: Path) -> None:
    config = load_config(write_tiny_config(tmp_path, "tumor", data={"kind": "phantom", "train_seeds": [500, 505],
                                                                    "val_seeds": [600, 601], "oblique_fraction": 0.5,
                                                                    "liver_mask_dilation_mm": [0.0, 8.0]}))  # fmt: skip
    card = card_from_dict(copy.deepcopy(card_template_for(config)))
    seeds = [504, 500, 503, 501, 502]  # not sorted: the order is the seeds', not the workers' finishing order
    targets = {500: 0.25, 503: 0.5}
    one, one_records = phantom_cases(seeds, card, config.data, tlvr_targets=targets)
    seen: list[str] = []
    two, two_records = phantom_cases(
        seeds, card, config.data, tlvr_targets=targets, workers=2, progress=lambda _s, _f, text: seen.append(text)
    )
    assert [c.case_id for c in two] == [f"phantom-{s}" for s in seeds]
    assert len(seen) == len(seeds) and seen[0].startswith("phantom 504:")
    for a, b in zip(one, two, strict=True):
        assert a.image.shape == b.image.shape
        assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
        assert np.array_equal(a.foreground, b.foreground)
        assert np.array_equal(a.foreground_lesion, b.foreground_lesion)
        assert a.tlvr_true == b.tlvr_true
        assert np.isnan(a.tlvr_target) == np.isnan(b.tlvr_target)
        if not np.isnan(a.tlvr_target):
            assert a.tlvr_target == b.tlvr_target
    assert one_records == two_records
    # The cases differ from seed to seed (so equal lists above are not equal by accident).
    assert not np.array_equal(one[0].label, one[1].label) or one[0].image.shape != one[1].image.shape


def test_a_cancel_while_workers_render_stops_at_the_next_case(tmp_path: Path) -> None:
    config = load_config(write_tiny_config(tmp_path, "tumor"))
    card = card_from_dict(copy.deepcopy(card_template_for(config)))
    seen: list[str] = []
    with pytest.raises(Cancelled):
        phantom_cases(
            [500, 501, 502, 503],
            card,
            config.data,
            workers=2,
            progress=lambda _s, _f, text: seen.append(text),
            cancel=lambda: len(seen) >= 1,
        )
    assert len(seen) == 1 and seen[0].startswith("phantom 500:")


def test_no_workers_is_refused(tmp_path: Path) -> None:
    config = load_config(write_tiny_config(tmp_path, "tumor"))
    card = card_from_dict(copy.deepcopy(card_template_for(config)))
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        phantom_cases([500], card, config.data, workers=0)


def test_train_with_two_data_workers_gives_the_weights_of_one(tmp_path: Path) -> None:
    config = write_tiny_config(tmp_path, "tumor")
    sums = []
    for workers in ("1", "2"):
        done = run_cli("train", "--config", str(config), "-o", str(tmp_path / f"run{workers}"), "--progress", "none",
                       "--device", "cpu", "--data-workers", workers)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        sums.append(next(line for line in done.stdout.splitlines() if line.startswith("processes:")))
    assert sums[0] == sums[1]


@pytest.mark.parametrize("value", ["0", "-3"])
def test_train_refuses_fewer_than_one_data_worker_before_writing(tmp_path: Path, value: str) -> None:
    config = write_tiny_config(tmp_path, "tumor")
    out = tmp_path / "run"
    done = run_cli("train", "--config", str(config), "-o", str(out), "--data-workers", value)
    assert done.returncode == 2
    assert f"--data-workers must be an integer >= 1, got {value}" in done.stderr
    assert not out.exists()
