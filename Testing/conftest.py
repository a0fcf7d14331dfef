"""Shared pytest setup. Area-specific fixtures live beside their tests (``Testing/_*_helpers.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty model cache, so nothing from the user's machine leaks in."""
    home = tmp_path_factory.mktemp("smoothsegnet-home")
    monkeypatch.setenv("SMOOTHSEGNET_HOME", str(home))
    return home


def require_tool(name: str) -> str:
    """Path of a Debian tool the tests need; fail (not skip) when missing, since scripts/setup.sh installs it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run 'bash scripts/setup.sh --test' (installs the Debian tools)")
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m SmoothSegNetLib ARGS`` in a child process, as a user or Slicer would."""
    return subprocess.run(
        [sys.executable, "-m", "SmoothSegNetLib", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
