"""Layers: ``followup`` sits above ``report`` and writes no DICOM itself; ``report`` knows nothing of it."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "SmoothSegNetLib"


def _imports(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    return names


def test_followup_imports_neither_dicom_writers_nor_commands() -> None:
    names = _imports(ENGINE / "followup")
    assert any(n.startswith("SmoothSegNetLib.report") for n in names)  # it does read the report layer
    assert not [n for n in names if n.startswith(("SmoothSegNetLib.dicom_export", "SmoothSegNetLib.commands"))]
    assert not [n for n in names if n.startswith(("pydicom", "highdicom"))]


def test_report_does_not_import_followup() -> None:
    assert not [n for n in _imports(ENGINE / "report") if n.startswith("SmoothSegNetLib.followup")]
