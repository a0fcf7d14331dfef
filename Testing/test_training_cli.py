"""``smoothsegnet train`` end to end on tiny phantoms, its refusals, and two DDP processes on gloo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from SmoothSegNetLib.models import load_card, sha256_file
from Testing._training_helpers import write_tiny_config
from Testing.conftest import run_cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_train_tumor_stage_with_clinical_smoothing_and_install_the_result(tmp_path: Path) -> None:
    config = write_tiny_config(tmp_path, "tumor")
    out = tmp_path / "run"
    done = run_cli("train", "--config", str(config), "-o", str(out), "--progress", "none")
    assert done.returncode == 0, done.stderr
    card = load_card(out / "tiny-tumor.json")
    assert card.weights.sha256 == sha256_file(out / "tiny-tumor.safetensors")
    training = card.training
    assert training["train_seeds"] == "500..505" and training["validation_seeds"] == "600..600"
    assert training["label_smoothing"] == {
        "mode": "clinical",
        "lambda_tlvr": 0.5,
        "epsilon": 0.1,
        "tlvr_scope": "patch",
    }
    regression = training["clinical_regression"]
    assert len(regression["alphas"]) == 5 and "T_involvment" in regression["predictors"]
    assert training["run"]["iterations"] == 6
    installed = run_cli("models", "install", str(out / "tiny-tumor.json"))
    assert installed.returncode == 0, installed.stderr
    listing = run_cli("models", "list", "--json")
    assert "tiny-tumor" in listing.stdout


def test_bad_config_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    config = write_tiny_config(tmp_path, "liver", loss={"smoothing": "clinical"})
    done = run_cli("train", "--config", str(config), "-o", str(tmp_path / "run"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: training config") and "field loss.smoothing" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    good = write_tiny_config(tmp_path, "tumor")
    done = run_cli("train", "--config", str(good), "-o", str(tmp_path / "run"), "--iterations", "0")
    assert done.returncode == 2 and done.stderr == "error: --iterations must be an integer >= 1, got 0\n"


def test_two_ddp_processes_on_gloo_end_with_identical_weights(tmp_path: Path) -> None:
    config = write_tiny_config(tmp_path, "liver", iterations=4, val_every=2)
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "SmoothSegNetLib",
        "train",
        "--config",
        str(config),
        "-o",
        str(out),
        "--device",
        "cpu",
        "--progress",
        "none",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if "parameter checksum per process" in line]
    assert len(lines) == 2  # one report per rank
    values = [line.split(":")[-1].split() for line in lines]
    assert len(values[0]) == 2 and values[0][0] == values[0][1] and values[0] == values[1]
    card = json.loads((out / "tiny-liver.json").read_text())
    assert card["training"]["run"]["world_size"] == 2
