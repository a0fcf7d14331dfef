"""The dependency list of the Slicer module and the one confirmation that lists everything."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from SmoothSegNetLib.slicer_support.dependencies import (
    REQUIREMENTS_FILE,
    TORCH_REQUIREMENT,
    TORCH_REQUIREMENTS_FILE,
    Missing,
    confirmation_text,
    install_failure_hint,
    missing_requirements,
    read_requirements,
)

REPO = Path(__file__).resolve().parents[1]
#: In pyproject but not installed by the module: numpy ships with Slicer (torch, in the [torch] extra, comes
#: from the PyTorch extension).
NOT_IN_REQUIREMENTS = {"numpy"}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def test_requirements_match_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    expected = {_canonical(Requirement(d).name): str(Requirement(d).specifier) for d in project["dependencies"]}
    listed = {_canonical(r.name): str(r.specifier) for r in read_requirements()}
    for name in NOT_IN_REQUIREMENTS:
        expected.pop(name)
    assert listed == expected
    assert "torch" not in listed and "monai" not in listed  # the CPU engine needs no PyTorch
    extra = {
        _canonical(Requirement(d).name): str(Requirement(d).specifier)
        for d in project["optional-dependencies"]["torch"]
    }
    torch = Requirement(TORCH_REQUIREMENT)
    assert str(torch.specifier) == extra.pop("torch")
    assert {_canonical(r.name): str(r.specifier) for r in read_requirements(TORCH_REQUIREMENTS_FILE)} == extra


def test_missing_requirements_by_version() -> None:
    installed = {"monai": "1.2.0", "scipy": "1.13.1", "weird": "not-a-version"}

    def version_of(name: str) -> str:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    requirements = [Requirement(t) for t in ("monai>=1.3", "scipy>=1.11", "highdicom>=0.23", "weird>=1")]
    assert missing_requirements(requirements, version_of) == [
        Missing("monai>=1.3", "1.2.0"),
        Missing("highdicom>=0.23", None),
        Missing("weird>=1", "not-a-version"),
    ]


def test_this_environment_satisfies_the_list() -> None:
    # The test environment is set up from pyproject, so nothing may be missing here.
    assert missing_requirements(read_requirements()) == []


def test_one_confirmation_lists_everything() -> None:
    text = confirmation_text(
        [Missing("monai>=1.3", "1.2.0"), Missing("highdicom>=0.23", None)], Missing("torch>=2.2", None)
    )
    lines = text.splitlines()
    assert lines[2] == "  • torch>=2.2 (not installed) — through the PyTorch extension"
    assert lines[3] == "  • monai>=1.3 (installed: 1.2.0)"
    assert lines[4] == "  • highdicom>=0.23 (not installed)"
    assert lines[-1] == "Install now?"
    assert confirmation_text([], None) == ""


def test_bad_requirement_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\nmonai>=1.3\nnot a requirement!!\n")
    with pytest.raises(ValueError, match=r"requirements.txt:3: 'not a requirement!!' is not a valid requirement"):
        read_requirements(path)


def test_install_failure_hint_gives_a_way_out() -> None:
    hint = install_failure_hint("HTTP 403")
    assert hint.startswith("Installing the Python packages failed: HTTP 403")
    assert "--find-links" in hint and "restart Slicer" in hint
    assert REQUIREMENTS_FILE.name == "requirements.txt"
