"""Where the bundled resources are: model cards and weights, the sample CT, terminology and report tables.

In a source checkout and in the installed Slicer extension they are ``Resources/`` beside the package; a
wheel (``pip install .``) carries a copy inside the package as ``SmoothSegNetLib/_resources`` (``setup.py``).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def find_resources_dir(package_dir: Path = _PACKAGE_DIR) -> Path:
    """The resources folder of the engine package at ``package_dir``: its wheel copy ``_resources`` if present,
    else ``Resources`` beside the package (returned even if absent, so a missing file is named by its user)."""
    inside = package_dir / "_resources"
    if inside.is_dir():
        return inside
    return package_dir.parent / "Resources"


#: The bundled resources of this installation.
RESOURCES_DIR = find_resources_dir()
