"""Everything CPU-side works without PyTorch: imports, CPU inference on the ONNX graphs, report, export,
phantoms; a fresh virtual environment with a plain install has no torch and runs the demo to the same result.
Also the Slicer module's choice between the CPU engine and PyTorch."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from packaging.utils import canonicalize_name

from SmoothSegNetLib.slicer_support.dependencies import nvidia_gpu_present, requirements_to_install, wants_torch
from Testing.conftest import REPO_ROOT

#: Makes torch, MONAI and onnx unimportable in a child Python, as in an environment that never installed them.
BLOCK = "import sys\nfor _name in ('torch', 'monai', 'onnx'):\n    sys.modules[_name] = None\n"
#: The only engine modules that need PyTorch (training, the torch runtime and its device handling).
NEEDS_TORCH = [
    "SmoothSegNetLib.inference.device",
    "SmoothSegNetLib.inference.runtime_torch",
    "SmoothSegNetLib.training",
]


def _python(code: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_only_training_and_the_torch_runtime_need_torch(tmp_path: Path) -> None:
    code = (
        "import importlib, json, pkgutil, SmoothSegNetLib\n"
        "failed = []\n"
        "for m in pkgutil.walk_packages(SmoothSegNetLib.__path__, 'SmoothSegNetLib.'):\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except ImportError:\n"
        "        failed.append(m.name)\n"
        "print(json.dumps(sorted(failed)))\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == NEEDS_TORCH


def test_phantom_segment_report_and_dicom_export_run_without_torch(tmp_path: Path) -> None:
    code = (
        "import json\n"
        "from SmoothSegNetLib.cli import main\n"
        "from SmoothSegNetLib.commands.info import runtime_info\n"
        "codes = [main(['phantom', '-o', 'ph', '--seed', '11', '--dicom'])]\n"
        "codes.append(main(['segment', 'ph/dicom', '-o', 'seg', '--dicom-seg', '--dicom-sr', '--progress', 'none']))\n"
        "codes.append(main(['report', 'seg/segmentation.nrrd', '--image', 'ph/ct.nrrd', '-o', 'rep']))\n"
        "codes.append(main(['export', 'seg', '--dicom', 'ph/dicom']))\n"
        "print(json.dumps({'codes': codes, 'torch': sys.modules.get('torch') is not None,\n"
        "                  'info': runtime_info()}))\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["codes"] == [0, 0, 0, 0]
    assert answer["torch"] is False
    assert answer["info"]["runtime"] == "onnx" and answer["info"]["gpu"] is False
    for name in ("segmentation.nrrd", "report.json", "seg.dcm", "sr.dcm"):
        assert (tmp_path / "seg" / name).is_file(), name
    assert (tmp_path / "rep" / "report.json").is_file()
    labels = _labels(tmp_path / "seg" / "segmentation.nrrd")
    assert (labels == 1).sum() > 1000  # the onnx runtime found the phantom's liver


def test_the_slicer_module_installs_pytorch_only_for_a_gpu_or_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wants_torch(None, gpu_present=lambda: False) is False
    assert wants_torch(None, gpu_present=lambda: True) is True
    assert wants_torch(True, gpu_present=lambda: False) is True  # the user asks
    assert wants_torch(False, gpu_present=lambda: True) is False
    cpu = {r.name for r in requirements_to_install(False)}
    assert {"onnxruntime", "openvino"} <= cpu and not cpu & {"torch", "monai"}
    assert {r.name for r in requirements_to_install(True)} - cpu == {"monai", "onnx"}
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert nvidia_gpu_present() is False  # no driver tool: no usable GPU
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def smi(stdout: str, code: int = 0):  # type: ignore[no-untyped-def]
        return lambda *a, **k: subprocess.CompletedProcess(a, code, stdout, "")

    assert nvidia_gpu_present(smi("GPU 0: NVIDIA H200 (UUID: GPU-1)\n")) is True
    assert nvidia_gpu_present(smi("", 9)) is False  # driver not loaded


def _labels(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1.0, float(a.sum() + b.sum()))


def _link_distribution(name: str, site: Path) -> None:
    """Link every file of this environment's distribution ``name`` (its RECORD) into ``site``, same layout."""
    dist = importlib.metadata.distribution(name)
    files = dist.files
    assert files, f"{name} has no RECORD in this environment"
    for entry in files:
        if entry.parts[0] == "..":  # console scripts and data outside site-packages
            continue
        source = Path(str(dist.locate_file(entry)))
        if not source.is_file():
            continue
        target = site / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(source)


@pytest.mark.slow
def test_a_plain_install_in_a_fresh_venv_has_no_torch_and_runs_the_demo(tmp_path: Path) -> None:
    """pip resolves the wheel's own dependencies (no extras) without torch, and the demo runs in a fresh venv that
    holds the wheel and exactly those distributions.

    The distributions are linked from this environment's installed copies (file by file, from their RECORD) rather
    than installed again: a full install is about 1.4 GB, which once filled the CI machine's disk. What is tested
    is the same: a module the engine imports from a distribution it does not declare is missing there."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(
        REPO_ROOT / "SmoothSegNetLib", source / "SmoothSegNetLib", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO_ROOT / "Resources", source / "Resources")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)

    def run(args: list[str], cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200, check=False)

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    # The wheel is built with this environment's setuptools (fast, offline).
    built = run([*pip, "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", "w"], source)
    assert built.returncode == 0, built.stderr
    (wheel,) = (source / "w").glob("*.whl")
    # What a plain 'pip install' of it would install into an empty environment, resolved from the package index.
    resolved = run([*pip, "install", "--dry-run", "--ignore-installed", "-q", "--report", "r.json", str(wheel)])
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    names = {canonicalize_name(item["metadata"]["name"]) for item in report["install"]}
    assert "smoothsegnetlib" in names and "numpy" in names and "onnxruntime" in names
    assert not names & {"torch", "monai", "onnx"}, sorted(names)

    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    python = str(venv / "bin" / "python")
    installed = run([*pip, "--python", python, "install", "--no-deps", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stderr[-3000:]
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    assert site.is_relative_to(venv) and (site / "SmoothSegNetLib").is_dir()
    for name in sorted(names - {"smoothsegnetlib"}):
        _link_distribution(name, site)
    no_torch = run([python, "-c", "import torch"])
    assert no_torch.returncode == 1 and "No module named 'torch'" in no_torch.stderr
    demo = run([str(venv / "bin" / "smoothsegnet"), "demo", "-o", str(tmp_path / "plain")])
    assert demo.returncode == 0, demo.stderr[-3000:]
    full = subprocess.run(
        [sys.executable, "-m", "SmoothSegNetLib", "demo", "-o", str(tmp_path / "full")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert full.returncode == 0, full.stderr[-3000:]
    plain_report = json.loads((tmp_path / "plain" / "report.json").read_text(encoding="utf-8"))
    full_report = json.loads((tmp_path / "full" / "report.json").read_text(encoding="utf-8"))
    assert plain_report["tumor_burden"]["count"] == full_report["tumor_burden"]["count"] > 0
    plain = _labels(tmp_path / "plain" / "segmentation.nrrd")
    reference = _labels(tmp_path / "full" / "segmentation.nrrd")
    assert _dice(plain >= 1, reference >= 1) >= 0.995
    assert _dice(plain == 2, reference == 2) >= 0.98
