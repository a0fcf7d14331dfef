"""A wheel (``pip install .``, not editable) carries the bundled resources, and the engine installed from it
finds them: the demo weights are the defaults of ``smoothsegnet demo`` whichever way the engine is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from SmoothSegNetLib.models import sha256_file
from SmoothSegNetLib.resources import RESOURCES_DIR, find_resources_dir

SOURCE_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


def _resource_files() -> list[Path]:
    root = REPO_ROOT / "Resources"
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_the_wheel_copy_wins_over_a_folder_beside_the_package(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "SmoothSegNetLib"
    package.mkdir(parents=True)
    assert find_resources_dir(package) == tmp_path / "site-packages" / "Resources"
    (tmp_path / "site-packages" / "Resources").mkdir()  # another distribution's folder must not be taken...
    (package / "_resources").mkdir()
    assert find_resources_dir(package) == package / "_resources"  # ...when the package has its own copy


def test_a_checkout_reads_its_own_resources_folder() -> None:
    assert RESOURCES_DIR == REPO_ROOT / "Resources"
    assert (RESOURCES_DIR / "Models" / "smoothsegnet-demo-tumor.json").is_file()


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900, env=env, check=False)


@pytest.mark.slow
def test_an_installed_wheel_carries_the_resources_and_runs_the_demo(tmp_path: Path) -> None:
    # Build from a copy of the source tree, so the test leaves no build/ folder in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(
        REPO_ROOT / "SmoothSegNetLib", source / "SmoothSegNetLib", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO_ROOT / "Resources", source / "Resources")
    for name in SOURCE_FILES:
        shutil.copy2(REPO_ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
        source,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("*.whl")

    # Every bundled file is in the wheel, byte for byte.
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for relative in _resource_files():
            inside = f"SmoothSegNetLib/_resources/{relative.as_posix()}"
            assert inside in names, inside
            assert archive.read(inside) == (REPO_ROOT / "Resources" / relative).read_bytes(), inside

    site = tmp_path / "site"
    installed = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], tmp_path
    )
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}
    where = _run(
        [sys.executable, "-c", "import SmoothSegNetLib.resources as r; print(r.__file__); print(r.RESOURCES_DIR)"],
        tmp_path,
        env,
    )
    assert where.returncode == 0, where.stderr
    module_file, resources = where.stdout.split()
    assert Path(module_file).is_relative_to(site)  # the wheel's engine, not the checkout's
    assert Path(resources) == site / "SmoothSegNetLib" / "_resources"

    out = tmp_path / "demo"
    demo = _run(
        [sys.executable, "-m", "SmoothSegNetLib", "demo", "-o", str(out), "--progress", "none", "--device", "cpu"],
        tmp_path,
        env,
    )
    assert demo.returncode == 0, demo.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["liver"]["volume_ml"] > 100
    bundled = {
        card.stem: sha256_file(card.with_suffix(".safetensors"))
        for card in (REPO_ROOT / "Resources" / "Models").glob("smoothsegnet-demo-*.json")
    }
    used = {m["id"]: m["sha256"] for m in report["models"]}
    assert used == bundled
