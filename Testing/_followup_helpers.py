"""Helpers of the follow-up tests: a 'segment'-like visit folder made from a phantom's true labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from conftest import run_cli

from SmoothSegNetLib.io.writers import write_labelmap, write_volume

GRID = ((96, 96, 64), (4.0, 4.0, 4.0))


def _visit(root: Path, name: str, phantom) -> Path:
    """A 'segment'-like folder from the phantom's true labels: report.json, lesions.nrrd, segmentation.nrrd."""
    src = root / f"{name}_src"
    src.mkdir()
    write_volume(src / "ct.nrrd", phantom.ct)
    labels = np.where(np.isin(phantom.labels, (1, 2)), phantom.labels, 0).astype(np.uint8)
    write_labelmap(src / "labels.nrrd", labels, phantom.ct.geometry)
    out = root / name
    result = run_cli("report", str(src / "labels.nrrd"), "--image", str(src / "ct.nrrd"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    shutil.copy(src / "labels.nrrd", out / "segmentation.nrrd")
    return out


def import_study(scene: Any, folder: Path, name: str) -> tuple[Any, Any]:
    """A visit's CT as a volume node and its result as a segmentation node (as the module imports a run)."""
    from _mrml_helpers import add_volume

    from SmoothSegNetLib import mrml
    from SmoothSegNetLib.io import read_volume

    report = json.loads((folder / "report.json").read_text())
    ct = read_volume(report["input"]["path"])
    volume = add_volume(scene, ct.array, ct.geometry, name)
    return volume, mrml.import_result(scene, folder, volume)
