"""The engine never imports Slicer, Qt, CTK or VTK (except the MRML bridge, and only inside functions)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "SmoothSegNetLib"
FORBIDDEN = ("slicer", "qt", "ctk", "vtk", "vtkmodules", "PythonQt", "SimpleITK.utilities.vtk")
BRIDGE = ENGINE / "mrml.py"


def _imported_modules(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, node.lineno))
    return found


def _is_forbidden(name: str) -> bool:
    root = name.split(".")[0]
    return root in FORBIDDEN or name in FORBIDDEN


def test_no_engine_module_but_the_bridge_imports_slicer_qt_ctk_vtk() -> None:
    offenders = []
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) > 20  # the scan really covers the engine
    for path in files:
        if path == BRIDGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [
            f"{path.relative_to(REPO)}:{line} imports {name}"
            for name, line in _imported_modules(tree)
            if _is_forbidden(name)
        ]
    assert offenders == []


def test_the_bridge_imports_slicer_only_inside_functions() -> None:
    tree = ast.parse(BRIDGE.read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [name for n in top_level for name, _ in _imported_modules(ast.Module(body=[n], type_ignores=[]))]
    assert names and not any(_is_forbidden(name) for name in names)
    inside = [name for name, _ in _imported_modules(tree) if _is_forbidden(name)]
    assert "slicer" in inside and "vtk" in inside  # the lazy imports are there (the scan finds them)


def test_importing_the_engine_loads_no_slicer() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import SmoothSegNetLib\n"
        "names = [m.name for m in pkgutil.walk_packages(SmoothSegNetLib.__path__, 'SmoothSegNetLib.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('slicer', 'qt', 'ctk', 'vtk', 'vtkmodules'))\n"
        "print(json.dumps({'count': len(names), 'loaded': loaded}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["count"] > 20
    assert answer["loaded"] == []


def test_what_the_slicer_module_imports_at_startup_needs_no_heavy_packages() -> None:
    # Slicer loads the module before the dependencies are installed (they are installed on first use), so the
    # engine modules it imports at start-up must not pull torch, MONAI, SciPy, scikit-image or highdicom.
    code = (
        "import json, sys\n"
        "import SmoothSegNetLib.mrml, SmoothSegNetLib.slicer_support.process, SmoothSegNetLib.slicer_support.state\n"
        "import SmoothSegNetLib.slicer_support.lesion_table, SmoothSegNetLib.slicer_support.protocol\n"
        "heavy = ('torch', 'monai', 'scipy', 'skimage', 'highdicom', 'pydicom', 'SimpleITK', 'matplotlib')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def _absolute_imports(source: str, package: list[str]) -> list[tuple[str, int]]:
    """Every module ``source`` imports (also inside functions), relative imports resolved against ``package``."""
    tree = ast.parse(source)
    found = _imported_modules(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)]
            found.append((".".join([*base, *([node.module] if node.module else [])]), node.lineno))
            found += [(".".join([*base, alias.name]), node.lineno) for alias in node.names if not node.module]
    return found


def test_the_report_layer_knows_nothing_of_dicom_writers() -> None:
    # DESIGN layers: dicom_export sits above report; writing a case's files (report + DICOM) is case_outputs' job.
    files = sorted((ENGINE / "report").rglob("*.py"))
    assert len(files) >= 5  # the scan really covers the report package
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in files
        for name, line in _absolute_imports(path.read_text(encoding="utf-8"), ["SmoothSegNetLib", "report"])
        if name == "SmoothSegNetLib.dicom_export" or name.startswith("SmoothSegNetLib.dicom_export.")
    ]
    assert offenders == []


def test_the_report_layer_check_sees_lazy_and_relative_imports() -> None:
    """Guards the test above: an import inside a function, or a relative one, is found."""
    source = "def f():\n    from ..dicom_export import seg\n    import SmoothSegNetLib.dicom_export.sr\n"
    names = [name for name, _ in _absolute_imports(source, ["SmoothSegNetLib", "report"])]
    assert "SmoothSegNetLib.dicom_export" in names
    assert "SmoothSegNetLib.dicom_export.sr" in names
