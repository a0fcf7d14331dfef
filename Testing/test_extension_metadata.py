"""The Slicer extension's build files: CMakeLists.txt and SmoothSegNet.s4ext agree, and the module's
CMakeLists.txt lists exactly the scripts and resources present in SmoothSegNet/."""

from __future__ import annotations

import re
import struct
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "SmoothSegNet"

#: s4ext key -> CMake EXTENSION_* variable.
S4EXT_TO_CMAKE = {
    "homepage": "HOMEPAGE",
    "category": "CATEGORY",
    "contributors": "CONTRIBUTORS",
    "description": "DESCRIPTION",
    "iconurl": "ICONURL",
    "screenshoturls": "SCREENSHOTURLS",
    "depends": "DEPENDS",
}


def _cmake_extension_variables() -> dict[str, str]:
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    return dict(re.findall(r'^set\(EXTENSION_(\w+) "([^"]*)"\)', text, flags=re.MULTILINE))


def _s4ext() -> dict[str, str]:
    fields = {}
    for line in (REPO / "SmoothSegNet.s4ext").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            fields[key] = value.strip()
    return fields


def _cmake_list(text: str, name: str) -> list[str]:
    match = re.search(rf"set\({name}\s+(.*?)\)", text, flags=re.DOTALL)
    assert match, f"{name} not found"
    return [item.replace("${MODULE_NAME}", "SmoothSegNet") for item in match.group(1).split()]


def test_s4ext_matches_cmake() -> None:
    cmake, s4ext = _cmake_extension_variables(), _s4ext()
    for key, variable in S4EXT_TO_CMAKE.items():
        assert s4ext[key] == cmake[variable], key
    assert cmake["DEPENDS"] == "NA"  # PyTorch only for a GPU: the module installs it then (docs/onnx-runtime.md)
    assert cmake["CATEGORY"] == "Segmentation"
    assert s4ext["scm"] == "git" and s4ext["enabled"] == "1" and s4ext["build_subdirectory"] == "."
    assert s4ext["scmurl"].removesuffix(".git") == cmake["HOMEPAGE"].removesuffix("#readme")
    assert "synthetic phantoms only" in cmake["DESCRIPTION"]


def test_top_level_cmake_builds_the_module() -> None:
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "project(SmoothSegNet)" in text
    assert "add_subdirectory(SmoothSegNet)" in text
    for include in ("${Slicer_USE_FILE}", "${Slicer_EXTENSION_GENERATE_CONFIG}", "${Slicer_EXTENSION_CPACK}"):
        assert f"include({include})" in text


def test_icon_and_screenshot_urls_point_to_files_in_the_repository() -> None:
    cmake = _cmake_extension_variables()
    for url in (cmake["ICONURL"], *cmake["SCREENSHOTURLS"].split()):
        relative = url.split("/main/", 1)[1]
        assert (REPO / relative).is_file(), relative
    header = (MODULE_DIR / "Resources" / "Icons" / "SmoothSegNet.png").read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (128, 128)  # the Extensions Index wants 128 x 128


def test_module_cmake_lists_every_script_and_resource() -> None:
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = _cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    resources = _cmake_list(text, "MODULE_PYTHON_RESOURCES")
    present_scripts = sorted(
        str(p.relative_to(MODULE_DIR)) for p in MODULE_DIR.rglob("*.py") if "__pycache__" not in p.parts
    )
    present_resources = sorted(
        str(p.relative_to(MODULE_DIR)) for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()
    )
    assert sorted(scripts) == present_scripts
    assert sorted(resources) == present_resources
    assert "slicerMacroBuildScriptedModule(" in text
    assert re.search(r"slicer_add_python_unittest\(SCRIPT \$\{MODULE_NAME\}\.py\)", text)
    # The engine and the shared Resources/ are installed beside the module (same relative layout).
    assert "${PROJECT_SOURCE_DIR}/SmoothSegNetLib/*.py" in text and "${PROJECT_SOURCE_DIR}/Resources/*" in text


def test_module_category_matches_the_extension() -> None:
    source = (MODULE_DIR / "SmoothSegNet.py").read_text(encoding="utf-8")
    assert 'self.parent.categories = ["Segmentation"]' in source
    assert f'self.parent.contributors = ["{_cmake_extension_variables()["CONTRIBUTORS"]}"]' in source
    assert "synthetic phantoms only" in source
