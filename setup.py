"""Build hook: a wheel carries a copy of ``Resources/`` (demo weights and cards, sample CT, tables) inside the
package as ``SmoothSegNetLib/_resources``, where :mod:`SmoothSegNetLib.resources` finds it. An editable
install (``pip install -e .``) reads the checkout's ``Resources/`` directly. Everything else is in
``pyproject.toml``."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESOURCES = Path(__file__).resolve().parent / "Resources"


class BuildPyWithResources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not (RESOURCES / "Models").is_dir():
            raise RuntimeError(f"{RESOURCES} is missing: build the package from a full source tree")
        target = Path(self.build_lib) / "SmoothSegNetLib" / "_resources"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(RESOURCES, target)


setup(cmdclass={"build_py": BuildPyWithResources})
