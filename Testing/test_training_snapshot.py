"""``python -m SmoothSegNetLib.training.snapshot``: a card for the best weights of an unfinished run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _training_helpers import tiny_card_template, write_tiny_config
from conftest import REPO_ROOT

from SmoothSegNetLib.cli import main as cli
from SmoothSegNetLib.models import build_network, load_card, load_weights, sha256_file
from SmoothSegNetLib.training.snapshot import main

BUNDLED_TUMOR = REPO_ROOT / "Resources" / "Models" / "smoothsegnet-demo-tumor.json"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tumor run of 4 iterations, validated at 2 and 4 (its card is written, but a snapshot needs only the
    checkpoint and best.safetensors)."""
    folder = tmp_path_factory.mktemp("snapshot")
    config = write_tiny_config(folder, "tumor", iterations=4, val_every=2, checkpoint_every=2)
    assert cli(["train", "--config", str(config), "-o", str(folder / "run"), "--progress", "none"]) == 0
    return folder / "run"


def test_a_snapshot_is_the_run_s_best_weights_with_the_settings_of_the_card_it_is_like(
    run: Path, tmp_path: Path
) -> None:
    like = tiny_card_template("tumor")
    like["postprocessing"] = {"min_lesion_ml": 0.3, "min_lesion_confidence": 0.7, "fill_holes": True}
    like["inference"]["overlap"] = 0.5
    like_path = tmp_path / "like.json"
    like_path.write_text(json.dumps(like), encoding="utf-8")
    saved = torch.load(str(run / "checkpoint.pt"), weights_only=True)
    out = tmp_path / "snap"
    assert main([str(run), "--like", str(like_path), "-o", str(out)]) == 0
    card_path = out / f"tiny-tumor-snapshot-{saved['best_iteration']}.json"
    card = load_card(card_path)
    weights = out / card.weights.file
    assert weights.read_bytes() == (run / "best.safetensors").read_bytes()
    assert card.weights.sha256 == sha256_file(weights)
    load_weights(build_network(card), card)  # the pipeline's own check and load
    data = json.loads(card_path.read_text(encoding="utf-8"))
    assert data["inference"]["overlap"] == 0.5  # the settings of the card it is like ...
    assert data["postprocessing"] == {"min_lesion_ml": 0.3, "fill_holes": True}  # ... less what fits its weights
    record = data["training"]["snapshot"]
    assert record["iteration"] == saved["iteration"] == 4
    assert record["best_iteration"] == saved["best_iteration"]
    assert record["best_validation_dice"] == round(float(saved["best_dice"]), 4)
    assert record["left_out"] == ["min_lesion_confidence"]
    assert "snapshot of an unfinished training run" in data["title"]
    # The run goes on and writes a new best: the snapshot keeps its own copy.
    before = weights.read_bytes()
    (run / "best.safetensors").write_bytes(b"changed later")
    try:
        assert weights.read_bytes() == before
        load_weights(build_network(card), card)
    finally:
        (run / "best.safetensors").write_bytes(before)


def test_weights_that_do_not_fit_the_card_s_network_write_nothing(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "snap"
    # The bundled tumor card builds a network with 8 first filters and 4 levels; the tiny run has 4 and 2.
    assert main([str(run), "--like", str(BUNDLED_TUMOR), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the weights of") and "do not fit the network of" in err and err.count("\n") == 1
    assert not out.exists()


def test_a_folder_that_is_no_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--like", str(BUNDLED_TUMOR), "-o", str(tmp_path / "snap")]) == 2
    err = capsys.readouterr().err
    assert "holds no checkpoint.pt and best.safetensors" in err and err.count("\n") == 1
    assert not (tmp_path / "snap").exists()
