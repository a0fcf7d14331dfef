"""``scripts/train_demo.sh`` end to end, on tiny versions of its eight configs: the three training phases of both
stages and the tumor stage's small-lesion and wall-lesion fine-tunes, the bundled files, the cards' inference and
post-processing settings, the lesion classifier and the held-out evaluation. The real configs take about four hours;
here every phase runs a few iterations on two training phantoms. The bundled weights in ``Resources/Models`` are not
touched (``MODELS`` points elsewhere)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from SmoothSegNetLib.models import load_card, sha256_file

SCRIPT = REPO_ROOT / "scripts" / "train_demo.sh"
CLASSIFIER_COMPONENTS = REPO_ROOT / "Resources" / "Models" / "demo-tumor-classifier-components.json"
#: config suffix -> (total iterations, patch size): each phase resumes the previous one.
PHASES = {"": (2, [16, 16, 16]), "-resume": (4, [16, 16, 16]), "-finetune": (6, [24, 24, 16])}


def _tiny_configs(folder: Path) -> None:
    for stage in ("liver", "tumor"):
        for suffix, (iterations, patch) in PHASES.items():
            config = json.loads((REPO_ROOT / "Resources" / "Training" / f"demo-{stage}{suffix}.json").read_text())
            config["data"].update({"train_seeds": [1000, 1002], "val_seeds": [2000, 2001]})
            config.update(
                iterations=iterations,
                patch_size_ijk=patch,
                max_minutes=0,
                val_every=2,
                checkpoint_every=2,
                val_patches=1,
            )
            (folder / f"demo-{stage}{suffix}.json").write_text(json.dumps(config), encoding="utf-8")
    for name in ("demo-tumor-small-lesions", "demo-tumor-wall-lesions"):
        config = json.loads((REPO_ROOT / "Resources" / "Training" / f"{name}.json").read_text())
        config["data"].update({"train_seeds": [1000, 1002], "val_seeds": [2000, 2001]})
        config.update(
            iterations=2, patch_size_ijk=[24, 24, 16], max_minutes=0, val_every=2, checkpoint_every=2, val_patches=1
        )
        (folder / f"{name}.json").write_text(json.dumps(config), encoding="utf-8")


def _bundled_components(work: Path) -> None:
    """Stand-in for the classifier's segmentation step: tiny networks find no true lesion component of 0.2-10 ml to
    fit a classifier on, so the script's per-phantom cache is filled with the components the bundled weights found
    on the tuning phantoms (the data the bundled classifier was fitted on). The script reads a record when it is
    there; segmenting a phantom into that record is tested in test_evaluation_lesion_classifier.py."""
    cache = work / "lesion-features"
    cache.mkdir(parents=True)
    for case in json.loads(CLASSIFIER_COMPONENTS.read_text(encoding="utf-8"))["cases"]:
        (cache / f"features-{case['seed']}.json").write_text(json.dumps(case), encoding="utf-8")


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def test_the_real_phase_configs_differ_only_where_the_script_says() -> None:
    folder = REPO_ROOT / "Resources" / "Training"
    for stage in ("liver", "tumor"):
        base, resume, finetune = (json.loads((folder / f"demo-{stage}{s}.json").read_text()) for s in PHASES)
        for config in (base, resume, finetune):
            config.pop("_comment")
        assert {k for k in base if base[k] != resume[k]} == {"iterations", "max_minutes"}
        assert (resume["iterations"], resume["max_minutes"]) == (20000, 97)
        assert {k for k in base if base[k] != finetune[k]} == {"iterations", "max_minutes", "patch_size_ijk"}
        assert (finetune["max_minutes"], finetune["patch_size_ijk"]) == (122, [64, 64, 48])
        assert base["patch_size_ijk"] == [48, 48, 32] and base["max_minutes"] == 60
    finetune = json.loads((folder / "demo-tumor-finetune.json").read_text())
    small = json.loads((folder / "demo-tumor-small-lesions.json").read_text())
    changed = {k for k in finetune.keys() | small.keys() if k != "_comment" and finetune.get(k) != small.get(k)}
    assert changed == {
        "foreground_sampling",
        "foreground_patch_fraction",
        "learning_rate",
        "max_minutes",
    }
    assert small["loss"] == {"smoothing": "none"} and small["foreground_sampling"] == "lesion"
    assert "init_from" not in small  # the script passes --init-from (phase 3's weights)
    wall = json.loads((folder / "demo-tumor-wall-lesions.json").read_text())
    changed = {k for k in small.keys() | wall.keys() if k != "_comment" and small.get(k) != wall.get(k)}
    assert changed == {"data", "max_minutes"}
    data_changed = {
        k for k in small["data"].keys() | wall["data"].keys() if small["data"].get(k) != wall["data"].get(k)
    }
    assert data_changed == {"liver_mask_dilation_mm", "wall_lesion_fraction"}
    assert wall["data"]["liver_mask_dilation_mm"] == [0.0, 8.0] and wall["data"]["wall_lesion_fraction"] == 0.5
    assert "init_from" not in wall  # the script passes --init-from (phase 4's weights)
    # Tried in the seventeenth session and not bundled (docs/small-lesions.md section 11): phase 5 on a 1.4 mm grid.
    fine = json.loads((folder / "demo-tumor-fine-grid.json").read_text())
    changed = {k for k in wall.keys() | fine.keys() if k != "_comment" and wall.get(k) != fine.get(k)}
    assert changed == {"input_spacing_mm", "max_minutes", "iterations"}
    assert fine["input_spacing_mm"] == [1.4, 1.4, 1.4] and (fine["max_minutes"], fine["iterations"]) == (75, 1500)


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHON": sys.executable,
        "WORK": str(tmp_path / "work"),
        "CONFIGS": str(tmp_path / "configs"),
        "MODELS": str(tmp_path / "models"),
        "SEEDS": "3000:3001",
        "TUNING": "2004:2064",
        "JOBS": "1",
    }


def _script(env: dict[str, str], *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def test_bad_arguments_and_a_resume_with_nothing_to_resume_are_refused(tmp_path: Path) -> None:
    env = _env(tmp_path)
    for args, fragment in (
        (["--stop-after", "lunch"], "--stop-after needs one of the steps train, resume, finetune"),
        (["--stop-after"], "--stop-after needs one of the steps"),
        (["--fast"], "unknown argument '--fast'"),
        (["--resume"], "holds no training run to continue; start without --resume"),
    ):
        run = _script(env, *args, timeout=60)
        assert run.returncode == 2 and run.stderr.startswith("error: ") and fragment in run.stderr, run.stderr
        assert run.stderr.count("\n") == 1 and not (tmp_path / "work").exists()
    assert _script(env, "--help", timeout=60).stdout.startswith("usage: bash scripts/train_demo.sh")


def _processes_naming(folder: Path) -> list[str]:
    """Command lines of the running processes that name ``folder`` (read from /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        if str(folder) in text:
            found.append(text)
    return found


def _labels(stdout: str) -> list[str]:
    return [line.split(":")[0] for line in stdout.splitlines()]


@pytest.mark.slow
def test_train_demo_script_runs_all_steps_across_interruptions_and_bundles_evaluated_cards(tmp_path: Path) -> None:
    """Stopped after the second phase, killed during the third, resumed twice: every step runs once, in order."""
    configs, models, work = tmp_path / "configs", tmp_path / "models", tmp_path / "work"
    configs.mkdir()
    models.mkdir()
    _tiny_configs(configs)
    _bundled_components(work)
    bundled_before = _digest(REPO_ROOT / "Resources" / "Models")
    env = _env(tmp_path)

    first = _script(env, "--stop-after", "resume")
    assert first.returncode == 0, first.stdout + first.stderr
    assert _labels(first.stdout) == ["train", "resume", "stopped after resume; go on with"]
    assert (
        first.stdout.splitlines()[0]
        == f"train: liver tumor stage(s) in parallel; logs in {work}/{{liver,tumor}}.train.log"
    )
    assert sorted(p.name for p in (work / "done").iterdir()) == [
        "liver.resume",
        "liver.train",
        "tumor.resume",
        "tumor.train",
    ]
    assert not any(models.iterdir())  # nothing bundled yet
    # Started again without --resume: refused, nothing touched.
    again = _script(env, timeout=60)
    assert again.returncode == 2 and "continue it with --resume" in again.stderr

    # Killed (SIGTERM) as the third phase starts: the training processes are stopped too, and nothing is marked done.
    killed = subprocess.Popen(
        ["bash", str(SCRIPT), "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert killed.stdout is not None
    seen = [killed.stdout.readline() for _ in range(3)]
    assert [line.split(":")[0] for line in seen] == ["train", "resume", "finetune"], seen
    killed.send_signal(signal.SIGTERM)
    _out, err = killed.communicate(timeout=120)
    assert killed.returncode == 130 and "interrupted: the training processes end at their last checkpoint" in err
    assert not (work / "done" / "liver.finetune").exists() and not (work / "done" / "tumor.finetune").exists()
    assert not _processes_naming(work), "training processes outlived the script"

    second = _script(env, "--resume", "--stop-after", "small-lesions")
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines()[:2] == ["train: done before; skipped", "resume: done before; skipped"]
    assert _labels(second.stdout)[2:] == ["finetune", "small-lesions", "stopped after small-lesions; go on with"]

    run = _script(env, "--resume")
    assert run.returncode == 0, run.stdout + run.stderr
    assert _labels(run.stdout)[:-1] == [
        "train",
        "resume",
        "finetune",
        "small-lesions",
        "wall-lesions",
        "bundle",
        "classifier",
        "evaluate",
    ]
    assert run.stdout.splitlines()[-1] == f"wrote {models}/demo-evaluation.md and demo-evaluation.csv"
    assert all(line.endswith("done before; skipped") for line in run.stdout.splitlines()[:4])

    assert _digest(REPO_ROOT / "Resources" / "Models") == bundled_before
    for stage in ("liver", "tumor"):
        card_path = models / f"smoothsegnet-demo-{stage}.json"
        card = load_card(card_path)
        assert card.weights.sha256 == sha256_file(models / f"smoothsegnet-demo-{stage}.safetensors")
        # ...with the ONNX graph of these weights (the CPU runtime), hashed in the card.
        assert card.onnx is not None and sha256_file(models / card.onnx.file) == card.onnx.sha256
        # The bundled card is the last phase's: its iterations and patches (the tumor stage's fourth and fifth
        # phases start their count afresh from the previous phase's weights).
        assert card.training["run"]["iterations"] == (6 if stage == "liver" else 2)
        assert card.training["config"]["patch_size_ijk"] == [24, 24, 16]
        assert card.training["held_out_evaluation"]["cases"] == 1
        assert card.training["held_out_evaluation"]["seeds"] == "3000..3000"
        for label in ("train", "resume", "finetune"):
            assert (work / f"{stage}.{label}.log").is_file()
    assert (work / "tumor.small-lesions.log").is_file() and (work / "tumor.wall-lesions.log").is_file()
    # The bundled tumor weights are phase 5's, started from phase 4's.
    started = load_card(models / "smoothsegnet-demo-tumor.json").training["initialised_from"]
    phase4 = work / "tumor-small-lesions" / "smoothsegnet-demo-tumor.safetensors"
    assert started["weights_sha256"] == sha256_file(phase4)
    assert load_card(models / "smoothsegnet-demo-tumor.json").weights.sha256 == sha256_file(
        work / "tumor-wall-lesions" / "smoothsegnet-demo-tumor.safetensors"
    )
    tumor = json.loads((models / "smoothsegnet-demo-tumor.json").read_text())
    # The lesion classifier replaces the confidence floor: fitted on the same components as the bundled card's, it is
    # the bundled card's, number for number, with its score floor.
    bundled = json.loads((REPO_ROOT / "Resources" / "Models" / "smoothsegnet-demo-tumor.json").read_text())
    assert tumor["postprocessing"]["min_lesion_ml"] == 0.2
    assert tumor["postprocessing"]["candidate_scan"] == bundled["postprocessing"]["candidate_scan"] == 3
    assert "min_lesion_confidence" not in tumor["postprocessing"]
    assert tumor["postprocessing"]["min_lesion_score"] == 0.3
    assert tumor["postprocessing"]["lesion_classifier"] == bundled["postprocessing"]["lesion_classifier"]
    assert "wrote the lesion classifier and min_lesion_score 0.3" in (work / "classifier.log").read_text()
    # Both stages: sliding windows the size of the last phase's training patches (here the tiny config's), no
    # mirroring, not one pass over the whole box.
    for stage in ("liver", "tumor"):
        inference = json.loads((models / f"smoothsegnet-demo-{stage}.json").read_text())["inference"]
        assert (inference["mode"], inference["roi_size_ijk"], inference["overlap"]) == ("sliding", [24, 24, 16], 0.25)
        assert "mirror_axes" not in inference
    assert "| 3000 |" in (models / "demo-evaluation.md").read_text()
    assert (models / "demo-evaluation.csv").read_text().count("\n") == 2  # header and one phantom

    # Resumed once more: nothing left to do, nothing touched.
    before = _digest(models)
    done = _script(env, "--resume", timeout=120)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "evaluate: done before; nothing left to do"
    assert _digest(models) == before
