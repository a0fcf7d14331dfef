"""``smoothsegnet train`` end to end on tiny phantoms, its refusals, and two DDP processes on gloo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_init_from_starts_from_the_verified_weights_of_a_card(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    config = write_tiny_config(tmp_path, "tumor", loss={"smoothing": "none"})
    first = tmp_path / "first"
    assert run_cli("train", "--config", str(config), "-o", str(first), "--progress", "none").returncode == 0
    card = first / "tiny-tumor.json"
    # A learning rate of 1e-8 moves no weight by more than about 1e-8 per step: the fine-tune must end where it
    # started, and far from where the same run from its own random initialisation (another seed) ends.
    still = write_tiny_config(
        tmp_path, "tumor", loss={"smoothing": "none"}, learning_rate=1e-8, iterations=1, val_every=1, seed=7
    )
    tuned, fresh = tmp_path / "tuned", tmp_path / "fresh"
    done = run_cli("train", "--config", str(still), "-o", str(tuned), "--init-from", str(card), "--progress", "none")
    assert done.returncode == 0, done.stderr
    assert run_cli("train", "--config", str(still), "-o", str(fresh), "--progress", "none").returncode == 0
    start = load_file(str(first / "tiny-tumor.safetensors"))
    after = load_file(str(tuned / "tiny-tumor.safetensors"))
    random = load_file(str(fresh / "tiny-tumor.safetensors"))
    moved = max(float(abs(after[k] - start[k]).max()) for k in start)
    apart = max(float(abs(random[k] - start[k]).max()) for k in start)
    assert moved < 1e-6 < 0.01 < apart
    record = load_card(tuned / "tiny-tumor.json").training["initialised_from"]
    assert record["card"] == "tiny-tumor" and record["weights_sha256"] == sha256_file(first / "tiny-tumor.safetensors")


def test_a_resumed_fine_tune_continues_its_checkpoint_and_still_records_its_starting_weights(tmp_path: Path) -> None:
    import dataclasses

    from safetensors.numpy import load_file

    from SmoothSegNetLib.errors import Cancelled
    from SmoothSegNetLib.training.config import load_config
    from SmoothSegNetLib.training.run import run_training

    config = write_tiny_config(tmp_path, "tumor", loss={"smoothing": "none"})
    first = tmp_path / "first"
    assert run_cli("train", "--config", str(config), "-o", str(first), "--progress", "none").returncode == 0
    tune = write_tiny_config(tmp_path, "tumor", loss={"smoothing": "none"}, iterations=4, val_every=2, seed=7)
    tune_config = dataclasses.replace(load_config(tune), init_from=str(first / "tiny-tumor.json"))
    straight = run_training(tune_config, tmp_path / "straight")

    def cancel_after_the_first_checkpoint() -> bool:  # as Ctrl-C or the end of a session would
        return (tmp_path / "resumed" / "checkpoint.pt").exists()

    with pytest.raises(Cancelled):
        run_training(tune_config, tmp_path / "resumed", cancel=cancel_after_the_first_checkpoint)
    resumed = run_training(tune_config, tmp_path / "resumed", resume=True)
    # The same weights as the fine-tune run straight through: the resumed run continued its checkpoint (iteration
    # 2), it did not start again from the card's weights.
    a, b = load_file(str(straight.weights_path)), load_file(str(resumed.weights_path))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    record = load_card(resumed.card_path).training["initialised_from"]
    assert record["weights_sha256"] == sha256_file(first / "tiny-tumor.safetensors")


def test_init_from_refuses_tampered_weights_another_stage_and_another_network(tmp_path: Path) -> None:
    config = write_tiny_config(tmp_path, "tumor", loss={"smoothing": "none"})
    first = tmp_path / "first"
    assert run_cli("train", "--config", str(config), "-o", str(first), "--progress", "none").returncode == 0
    weights = first / "tiny-tumor.safetensors"
    card = first / "tiny-tumor.json"
    data = json.loads(card.read_text(encoding="utf-8"))

    other_net = tmp_path / "wide.json"
    wide = dict(data, architecture=json.loads(json.dumps(data["architecture"])))
    wide["architecture"]["args"]["init_filters"] = 8
    other_net.write_text(json.dumps(wide), encoding="utf-8")
    liver = tmp_path / "liver.json"
    liver.write_text(json.dumps(dict(data, task="liver")), encoding="utf-8")
    tampered = weights.read_bytes()
    weights.write_bytes(tampered[:-1] + bytes([tampered[-1] ^ 1]))
    for source, fragment in (
        (card, "sha256"),
        (liver, "is a 'liver' card but the config's stage is 'tumor'"),
        (other_net, "the architecture must be the same"),
    ):
        out = tmp_path / f"run-{source.stem}"
        done = run_cli("train", "--config", str(config), "-o", str(out), "--init-from", str(source))
        assert done.returncode == 2, (source, done.stderr)
        assert done.stderr.startswith("error:") and fragment in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and not out.exists()
