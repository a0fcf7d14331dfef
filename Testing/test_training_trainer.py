"""The training loop on tiny synthetic cases: outputs, exact resume, early stopping, refusals."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from SmoothSegNetLib.errors import Cancelled
from SmoothSegNetLib.models import build_network, load_card, load_weights, sha256_file
from SmoothSegNetLib.training.config import ConfigError, config_from_dict
from SmoothSegNetLib.training.trainer import learning_rate_at, train_stage
from Testing._training_helpers import ball_case, tiny_card_template

TRAIN = [ball_case(s) for s in range(4)]
VAL = [ball_case(s) for s in range(100, 102)]


def _config(**overrides: object) -> object:
    data = {
        "stage": "tumor",
        "patch_size_ijk": [16, 16, 16],
        "batch_size": 2,
        "iterations": 8,
        "val_every": 4,
        "checkpoint_every": 2,
        "num_threads": 1,
        "loss": {"smoothing": "clinical"},
    }
    data.update(overrides)
    return config_from_dict(data)


def _train(outdir: Path, **kwargs: object) -> object:
    config = kwargs.pop("config", None) or _config()
    template = kwargs.pop("card_template", None) or tiny_card_template("tumor")
    return train_stage(
        config,  # type: ignore[arg-type]
        TRAIN,
        VAL,
        outdir,
        card_template=template,  # type: ignore[arg-type]
        training_record={"data": "balls"},
        device="cpu",
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_run_writes_loadable_weights_a_valid_card_and_metrics(tmp_path: Path) -> None:
    result = _train(tmp_path / "run")
    card = load_card(result.card_path)  # type: ignore[attr-defined]
    assert card.weights.sha256 == sha256_file(result.weights_path)  # type: ignore[attr-defined]
    assert card.training["data"] == "balls"
    assert card.training["label_smoothing"]["mode"] == "clinical"
    assert card.training["label_smoothing"]["lambda_tlvr"] == 0.5
    load_weights(build_network(card), card)
    with open(result.metrics_path, newline="") as handle:  # type: ignore[attr-defined]
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == [4, 8]
    val = [float(r["val_dice"]) for r in rows]
    assert card.training["validation"]["dice"] == pytest.approx(max(val), abs=1e-4)
    assert card.training["validation"]["best_iteration"] == 4 * (1 + val.index(max(val)))
    assert result.iterations_run == 8 and result.rank_checksums and len(result.rank_checksums) == 1  # type: ignore[attr-defined]


def test_resume_after_cancel_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = _train(tmp_path / "straight")
    calls = {"n": 0}

    def cancel_after_five_checks() -> bool:
        calls["n"] += 1
        return calls["n"] > 5  # iterations 1..5 run; the 6th check cancels

    with pytest.raises(Cancelled):
        _train(tmp_path / "resumed", cancel=cancel_after_five_checks)
    saved = torch.load(str(tmp_path / "resumed" / "checkpoint.pt"), weights_only=True)
    assert saved["iteration"] == 4
    resumed = _train(tmp_path / "resumed", resume=True)
    a = load_file(str(straight.weights_path))  # type: ignore[attr-defined]
    b = load_file(str(resumed.weights_path))  # type: ignore[attr-defined]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with open(resumed.metrics_path, newline="") as handle:  # type: ignore[attr-defined]
        assert [int(r["iteration"]) for r in csv.DictReader(handle)] == [4, 8]


def test_channels_last_is_the_same_arithmetic_in_another_layout(tmp_path: Path) -> None:
    from SmoothSegNetLib.training import distributed
    from SmoothSegNetLib.training.trainer import _Session

    torch.set_num_threads(1)
    losses, layouts = {}, {}
    for channels_last in (False, True):
        config = dataclasses.replace(_config(), channels_last=channels_last)  # type: ignore[type-var]
        session = _Session(
            config,  # type: ignore[arg-type]
            tiny_card_template("tumor"),
            tmp_path,
            torch.device("cpu"),
            distributed.DistInfo(),
        )
        conv = next(p for p in session.network.parameters() if p.dim() == 5 and p.shape[1] > 1)
        layouts[channels_last] = conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()
        losses[channels_last] = [session.step(TRAIN, 2e-3) for _ in range(2)]
    assert layouts == {False: False, True: True}
    # The same weights and patches: the first loss agrees to float32 rounding, and so (barely moved) the second.
    assert losses[True][0] == pytest.approx(losses[False][0], rel=1e-6)
    assert losses[True][1] == pytest.approx(losses[False][1], rel=1e-3)
    # A run in channels-last writes plain weights that an ordinary network loads.
    result = _train(tmp_path / "run", config=_config(iterations=2, val_every=2))
    card = load_card(result.card_path)  # type: ignore[attr-defined]
    assert json.loads(result.card_path.read_text())["training"]["config"]["channels_last"] is True  # type: ignore[attr-defined]
    load_weights(build_network(card), card)


def test_early_stopping_when_validation_does_not_improve(tmp_path: Path) -> None:
    # A learning rate of 1e-8 cannot change the arg-max: the second validation is no better.
    config = _config(iterations=100, val_every=2, patience=1, learning_rate=1e-8)
    result = _train(tmp_path / "run", config=config)
    assert result.stopped_early and result.iterations_run == 4  # type: ignore[attr-defined]


def test_an_existing_run_needs_resume_and_resume_needs_a_run(tmp_path: Path) -> None:
    _train(tmp_path / "run", config=_config(iterations=2, val_every=2))
    with pytest.raises(ConfigError, match="already holds a training run: pass --resume"):
        _train(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"--resume: .* does not exist"):
        _train(tmp_path / "empty", resume=True)


def test_resume_may_change_the_patch_size_and_schedule(tmp_path: Path) -> None:
    # scripts/train_demo.sh's last phase resumes with 64x64x48 instead of 48x48x32 patches and a longer schedule.
    _train(tmp_path / "run", config=_config(iterations=4, val_every=2))
    before = torch.load(str(tmp_path / "run" / "checkpoint.pt"), weights_only=True)
    assert int(before["iteration"]) == 4
    result = _train(
        tmp_path / "run", config=_config(iterations=8, val_every=2, patch_size_ijk=[24, 24, 16]), resume=True
    )
    after = torch.load(str(tmp_path / "run" / "checkpoint.pt"), weights_only=True)
    assert int(after["iteration"]) == 8 and result.iterations_run == 8  # type: ignore[attr-defined]
    assert any(not torch.equal(before["model"][k], after["model"][k]) for k in before["model"])
    card = load_card(result.card_path)  # type: ignore[attr-defined]
    assert card.training["config"]["patch_size_ijk"] == [24, 24, 16]


def test_resume_with_another_network_is_a_clear_error(tmp_path: Path) -> None:
    _train(tmp_path / "run", config=_config(iterations=2, val_every=2))
    saved = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    wider = tiny_card_template("tumor")
    wider["architecture"]["args"]["init_filters"] = 8
    with pytest.raises(ConfigError, match=r"--resume: .*checkpoint\.pt was saved by a different network"):
        _train(tmp_path / "run", config=_config(iterations=4, val_every=2), resume=True, card_template=wider)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == saved  # the run is left as it was


def test_no_cases_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs cases for training and validation, got 0 and 2"):
        train_stage(
            _config(),  # type: ignore[arg-type]
            [],
            VAL,
            tmp_path,
            card_template=tiny_card_template("tumor"),
            training_record={},
            device="cpu",
        )


def test_learning_rate_warms_up_then_decays_to_five_percent() -> None:
    config = _config(iterations=120, learning_rate=0.01)
    assert learning_rate_at(0, config) == pytest.approx(0.01 / 20)  # type: ignore[arg-type]
    assert learning_rate_at(19, config) == pytest.approx(0.01)  # type: ignore[arg-type]
    assert learning_rate_at(120, config) == pytest.approx(0.0005)  # type: ignore[arg-type]


def test_whole_scope_trains_on_whole_cases(tmp_path: Path) -> None:
    config = _config(iterations=2, val_every=2, batch_size=1, loss={"smoothing": "clinical", "tlvr_scope": "whole"})
    result = _train(tmp_path / "run", config=config)
    card = json.loads(Path(result.card_path).read_text())  # type: ignore[attr-defined]
    assert card["training"]["label_smoothing"]["tlvr_scope"] == "whole"
    assert dataclasses.is_dataclass(result)


def test_select_last_keeps_the_last_iteration(tmp_path: Path) -> None:
    result = _train(tmp_path / "run", config=_config(select_weights="last"))
    last = torch.load(str(tmp_path / "run" / "checkpoint.pt"), weights_only=True)["model"]
    kept = load_file(str(result.weights_path))  # type: ignore[attr-defined]
    assert all(torch.equal(kept[k], last[k]) for k in kept)
    card = json.loads(Path(result.card_path).read_text())  # type: ignore[attr-defined]
    assert card["training"]["validation"]["weights_kept"] == "last iteration"
