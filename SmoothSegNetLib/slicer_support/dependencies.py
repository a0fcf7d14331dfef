"""Which Python packages the Slicer module still needs, and the one question to ask before installing.

On a machine without a usable GPU the module installs only the CPU engine, ``Resources/requirements.txt``
(the models' ONNX graphs on OpenVINO / ONNX Runtime: no PyTorch, no PyTorch extension). With a usable NVIDIA
GPU, or when the user asks (:func:`wants_torch`), it adds PyTorch through the PyTorch extension (which picks
the build for the GPU/driver) and ``Resources/requirements-torch.txt`` (MONAI, ONNX) with pip. The module
calls :func:`missing_requirements` on first use (never at import), shows :func:`confirmation_text` once,
then installs with ``slicer.util.pip_install``.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from SmoothSegNetLib.resources import RESOURCES_DIR

REQUIREMENTS_FILE = RESOURCES_DIR / "requirements.txt"
#: Added to the CPU engine for the torch runtime (GPU), besides torch itself.
TORCH_REQUIREMENTS_FILE = RESOURCES_DIR / "requirements-torch.txt"
#: The torch requirement checked separately (installed through the PyTorch extension).
TORCH_REQUIREMENT = "torch>=2.2"

VersionLookup = Callable[[str], str]


@dataclass(frozen=True)
class Missing:
    """A requirement that is not satisfied: not installed (``installed`` is None) or too old."""

    requirement: str
    installed: str | None

    def describe(self) -> str:
        return (
            f"{self.requirement} (not installed)"
            if self.installed is None
            else (f"{self.requirement} (installed: {self.installed})")
        )


def read_requirements(path: Path = REQUIREMENTS_FILE) -> list[Requirement]:
    """The requirements in ``path`` (comments and blank lines skipped).

    Raises:
        ValueError: a line is not a valid requirement (names the line number).
    """
    requirements = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirements.append(Requirement(line))
        except InvalidRequirement as exc:
            raise ValueError(f"{path}:{number}: {line!r} is not a valid requirement ({exc})") from exc
    return requirements


def _installed_version(name: str) -> str:
    return importlib.metadata.version(name)


def missing_requirements(
    requirements: list[Requirement], version_of: VersionLookup = _installed_version
) -> list[Missing]:
    """The requirements that the running Python does not satisfy (in the given order)."""
    missing = []
    for requirement in requirements:
        try:
            installed = version_of(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(Missing(str(requirement), None))
            continue
        try:
            ok = requirement.specifier.contains(Version(installed), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            missing.append(Missing(str(requirement), installed))
    return missing


def nvidia_gpu_present(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> bool:
    """True when ``nvidia-smi`` lists a GPU (the driver works): what the torch runtime needs. Apple MPS is
    left to the user (:func:`wants_torch` with ``asked``): the CPU engine is fast on Apple CPUs too."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        result = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and "GPU" in result.stdout


def wants_torch(asked: bool | None, gpu_present: Callable[[], bool] = nvidia_gpu_present) -> bool:
    """Whether to install PyTorch: ``asked`` True/False decides; ``None`` (not asked) = a usable GPU is there."""
    return bool(asked) if asked is not None else gpu_present()


def requirements_to_install(with_torch: bool) -> list[Requirement]:
    """The pip requirements (torch excluded): the CPU engine, plus the torch runtime's with ``with_torch``."""
    requirements = read_requirements(REQUIREMENTS_FILE)
    if with_torch:
        requirements += read_requirements(TORCH_REQUIREMENTS_FILE)
    return requirements


def confirmation_text(missing: list[Missing], torch_missing: Missing | None) -> str:
    """The single question shown before installing anything ('' when nothing is missing)."""
    if not missing and torch_missing is None:
        return ""
    lines = ["SmoothSegNet needs these Python packages, which will be downloaded and installed now:", ""]
    if torch_missing is not None:
        lines.append(f"  • {torch_missing.describe()} — through the PyTorch extension")
    lines += [f"  • {m.describe()}" for m in missing]
    lines += [
        "",
        "This can take several minutes and needs internet access. Slicer may need a restart afterwards.",
        "Install now?",
    ]
    return "\n".join(lines)


def install_failure_hint(error: str) -> str:
    """The message shown when installation fails: what happened and how to recover."""
    return (
        f"Installing the Python packages failed: {error}\n\n"
        "Check the internet connection (or proxy settings), restart Slicer and click the button again. "
        "Offline: on a machine with internet, run 'PythonSlicer -m pip download -r requirements.txt -d wheels', "
        "copy the folder, then in Slicer's Python console run "
        "slicer.util.pip_install('--no-index --find-links /path/to/wheels -r /path/to/requirements.txt')."
    )
