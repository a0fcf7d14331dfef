"""``smoothsegnet info``: versions of the engine and its main dependencies."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys

from SmoothSegNetLib import __version__

NAME = "info"
HELP = "print the versions of the engine and its main dependencies"

_PACKAGES = ("torch", "monai", "SimpleITK", "pydicom", "highdicom", "numpy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    versions = {"smoothsegnet": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    if args.json:
        sys.stdout.write(json.dumps(versions) + "\n")
    else:
        for name, version in versions.items():
            sys.stdout.write(f"{name:14s} {version}\n")
    return 0
