"""Static checks of the Slicer module (Slicer's GUI cannot run here): the .ui is valid Qt Designer XML, every
widget the code uses exists, parameter bindings match the parameter node, and the logic shows no dialogs."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from SmoothSegNetLib.slicer_support.state import APPLY_TEXT

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "SmoothSegNet" / "SmoothSegNet.py"
LOGIC = REPO / "SmoothSegNet" / "SmoothSegNetSlicerLib" / "logic.py"
FOLLOWUP_LOGIC = REPO / "SmoothSegNet" / "SmoothSegNetSlicerLib" / "followup_logic.py"
SLICER_LIB = REPO / "SmoothSegNet" / "SmoothSegNetSlicerLib"
#: Files of the widget that use ``self.ui.<name>``: the module, the "Compare with prior study" section and the
#: sections mixed into the widget (run, review, export, models).
WIDGET_FILES = (
    MODULE,
    SLICER_LIB / "followup_panel.py",
    *(SLICER_LIB / f"{name}_section.py" for name in ("run", "review", "export", "models")),
)
#: At least how many widget names each file of WIDGET_FILES uses (so the check below is not vacuous).
WIDGET_FILES_MIN_NAMES = (15, 8, 1, 4, 5, 2)
UI = REPO / "SmoothSegNet" / "Resources" / "UI" / "SmoothSegNet.ui"
#: Calls that open a window: allowed in the widget, never in a logic class.
DIALOG_CALL = re.compile(r"(Display$|^messageBox$|^confirm|QMessageBox|QFileDialog|QInputDialog|^delayDisplay$)")


def _widgets() -> dict[str, ET.Element]:
    root = ET.parse(UI).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_ui_is_a_module_panel_with_custom_widgets_declared() -> None:
    root = ET.parse(UI).getroot()
    assert root.tag == "ui" and root.findtext("class") == "SmoothSegNet"
    top = root.find("widget")
    assert top is not None and top.get("class") == "qMRMLWidget"
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    assert {c for c in used if not c.startswith("Q")} <= declared
    # Node selectors receive the scene from the panel.
    receivers = {
        c.findtext("receiver") for c in root.iter("connection") if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    assert receivers == {"inputVolumeSelector", "outputSegmentationSelector"}


def test_every_widget_the_code_uses_exists_in_the_ui() -> None:
    widgets = _widgets()
    assert len(WIDGET_FILES) == len(WIDGET_FILES_MIN_NAMES)
    for path, at_least in zip(WIDGET_FILES, WIDGET_FILES_MIN_NAMES):
        used = set(re.findall(r"self\.ui\.(\w+)", path.read_text(encoding="utf-8")))
        names_in_tuples = re.findall(r"for name in \(([^)]*)\)", path.read_text(encoding="utf-8"))
        for group in names_in_tuples:
            used |= set(re.findall(r'"(\w+)"', group))
        assert len(used) > at_least, path.name
        assert sorted(used - set(widgets)) == [], path.name


def test_parameter_bindings_match_the_parameter_node() -> None:
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    node_class = _class(tree, "SmoothSegNetParameterNode")
    fields = {
        n.target.id: n for n in node_class.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }
    bound = {}
    for name, widget in _widgets().items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = (name, widget)
    assert set(bound) == set(fields)
    # Combo boxes offer exactly the Choice values, in order.
    constants = {
        n.targets[0].id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign)
        and isinstance(n.targets[0], ast.Name)
        and n.targets[0].id.isupper()
        and isinstance(n.value, ast.List)
    }
    for field, constant in (("quality", "QUALITIES"), ("device", "DEVICES"), ("runtime", "RUNTIMES")):
        _, widget = bound[field]
        items = [item.findtext("property/string") for item in widget.findall("item")]
        assert items == constants[constant], field
        assert f"Choice({constant})" in ast.unparse(fields[field].annotation)


def test_apply_button_text_matches_the_state_machine() -> None:
    button = _widgets()["applyButton"]
    text = next(p.findtext("string") for p in button.findall("property") if p.get("name") == "text")
    assert text == APPLY_TEXT.replace("&", "&&")  # '&&' shows one '&' in Qt


def test_logic_classes_show_no_dialogs() -> None:
    checked = 0
    for path, class_name in (
        (MODULE, "SmoothSegNetLogic"),
        (LOGIC, "SmoothSegNetRunner"),
        (FOLLOWUP_LOGIC, "FollowupJobs"),
    ):
        cls = _class(ast.parse(path.read_text(encoding="utf-8")), class_name)
        for node in ast.walk(cls):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                checked += 1
                assert not DIALOG_CALL.search(name.split(".")[-1]) and "QMessageBox" not in name, (
                    f"{class_name}: {name}"
                )
    assert checked > 30
    # ...while the widget is where dialogs are shown (so the check above is not vacuous).
    widget = ast.unparse(_class(ast.parse(MODULE.read_text(encoding="utf-8")), "SmoothSegNetWidget"))
    assert "confirmOkCancelDisplay" in widget and "errorDisplay" in widget


def test_module_file_never_blocks_on_the_engine_at_import() -> None:
    # Dependencies are checked on first use, never when Slicer loads the module: no top-level torch/monai import.
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    top = [ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not [line for line in top if re.search(r"\b(torch|monai|scipy|skimage|highdicom|pip_install)\b", line)]
    assert "pip_install" not in ast.unparse(_class(tree, "SmoothSegNetWidget"))
