"""GUI MOCK for the Slicer module: stand-ins for Qt widgets and Slicer's GUI-only Python modules.

Slicer's GUI (Qt, CTK, PythonQt, ``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper``) does not
exist outside Slicer. These stand-ins are just enough to execute ``SmoothSegNet/SmoothSegNet.py``'s widget code
paths against a REAL MRML scene (slicer-core) and the REAL engine. Widgets are attribute bags that record
what the module sets; anything the module calls that is not here raises AttributeError, so typos surface.
"""

from __future__ import annotations

import contextlib
import types
import unittest
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar


class FakeWidget:
    """A Qt widget stand-in: properties are plain attributes; ``connect`` records slots; ``emit`` calls them."""

    def __init__(self, name: str) -> None:
        self.objectName = name
        self.text = ""
        self.toolTip = ""
        self.enabled = True
        self.visible = True
        self.value = 0
        self.directory = ""
        self.slots: dict[str, list[Callable[..., Any]]] = {}

    def connect(self, signal: str, slot: Callable[..., Any]) -> None:
        self.slots.setdefault(signal, []).append(slot)

    def emit(self, signal: str, *args: Any) -> None:
        for slot in self.slots.get(signal, []):
            slot(*args)

    def setMRMLScene(self, scene: Any) -> None:
        self.scene = scene


class FakeItem:
    def __init__(self, text: str) -> None:
        self._text = text
        self.toolTipText = ""

    def text(self) -> str:
        return self._text

    def setToolTip(self, text: str) -> None:
        self.toolTipText = text


class FakeIndex:
    def __init__(self, row: int) -> None:
        self._row = row

    def row(self) -> int:
        return self._row


class FakeHeader:
    def setSectionResizeMode(self, mode: Any) -> None:
        self.mode = mode


class FakeTable(FakeWidget):
    """QTableWidget stand-in holding the cells as text."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.headers: list[str] = []
        self.hidden: set[int] = set()
        self.rows: list[dict[int, FakeItem]] = []
        self.selected: list[int] = []

    def setColumnCount(self, count: int) -> None:
        self.columnCount = count

    def setHorizontalHeaderLabels(self, labels: list[str]) -> None:
        self.headers = list(labels)

    def setColumnHidden(self, column: int, hidden: bool) -> None:
        (self.hidden.add if hidden else self.hidden.discard)(column)

    def horizontalHeader(self) -> FakeHeader:
        return FakeHeader()

    def setRowCount(self, count: int) -> None:
        self.rows = self.rows[:count]

    def insertRow(self, row: int) -> None:
        self.rows.insert(row, {})

    def setItem(self, row: int, column: int, item: FakeItem) -> None:
        self.rows[row][column] = item

    def item(self, row: int, column: int) -> FakeItem:
        return self.rows[row][column]

    def selectedIndexes(self) -> list[FakeIndex]:
        return [FakeIndex(r) for r in self.selected]

    def cell(self, row: int, header: str) -> str:
        return self.rows[row][self.headers.index(header)].text()


def load_fake_ui(path: str) -> FakeWidget:
    """A panel whose children are fake widgets named as in the .ui file."""
    panel = FakeWidget("SmoothSegNet")
    root = ET.parse(path).getroot()
    panel.children = {
        w.get("name"): (FakeTable if w.get("class") == "QTableWidget" else FakeWidget)(w.get("name"))
        for w in root.iter("widget")
    }
    return panel


class FakeTimer:
    """QTimer stand-in: never fires by itself; tests call the logic's poll (or ``slot``) as the timer would."""

    active = False

    def setSingleShot(self, single: bool) -> None:
        self.single_shot = single

    def setInterval(self, ms: int) -> None:
        self.interval = ms

    def connect(self, signal: str, slot: Callable[[], None]) -> None:
        self.slot = slot

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    @staticmethod
    def singleShot(ms: int, function: Callable[[], None]) -> None:
        function()


class FakeSettings:
    store: ClassVar[dict[str, Any]] = {}

    def value(self, key: str, default: Any = None) -> Any:
        return self.store.get(key, default)

    def setValue(self, key: str, value: Any) -> None:
        self.store[key] = value


def fake_qt() -> types.ModuleType:
    qt = types.ModuleType("qt")
    qt.QTimer = FakeTimer  # type: ignore[attr-defined]
    qt.QTableWidgetItem = FakeItem  # type: ignore[attr-defined]
    qt.QHeaderView = types.SimpleNamespace(ResizeToContents=3)  # type: ignore[attr-defined]
    qt.QSettings = FakeSettings  # type: ignore[attr-defined]
    qt.QFileDialog = types.SimpleNamespace(getOpenFileName=lambda *a: "")  # type: ignore[attr-defined]
    return qt


class _Base:
    def __init__(self, parent: Any = None) -> None:
        self.parent = parent


class FakeModuleWidget(_Base):
    """ScriptedLoadableModuleWidget stand-in (resources next to the module file)."""

    moduleDir = Path(".")

    def setup(self) -> None:
        self.layout = types.SimpleNamespace(addWidget=lambda widget: None)

    def resourcePath(self, relative: str) -> str:
        return str(self.moduleDir / "Resources" / relative)


class FakeModuleLogic:
    """ScriptedLoadableModuleLogic stand-in: a real scripted-module node in the scene as parameter node."""

    def __init__(self) -> None:
        self._node: Any = None

    def getParameterNode(self) -> Any:
        import slicer

        if self._node is None:
            self._node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "SmoothSegNetParameters")
        return self._node


class FakeModuleTest(unittest.TestCase):
    """ScriptedLoadableModuleTest stand-in: ``delayDisplay`` only records its messages."""

    messages: ClassVar[list[str]] = []

    def delayDisplay(self, message: str, msec: int = 1000) -> None:
        self.messages.append(message)


def fake_scripted_loadable_module() -> types.ModuleType:
    module = types.ModuleType("slicer.ScriptedLoadableModule")
    module.ScriptedLoadableModule = _Base  # type: ignore[attr-defined]
    module.ScriptedLoadableModuleWidget = FakeModuleWidget  # type: ignore[attr-defined]
    module.ScriptedLoadableModuleLogic = FakeModuleLogic  # type: ignore[attr-defined]
    module.ScriptedLoadableModuleTest = FakeModuleTest  # type: ignore[attr-defined]
    return module


def fake_parameter_node_wrapper() -> types.ModuleType:
    """``@parameterNodeWrapper``: typed fields stored on the wrapper; setting one marks the real node modified."""
    module = types.ModuleType("slicer.parameterNodeWrapper")

    def Choice(values: list[str]) -> tuple[str, list[str]]:
        return ("choice", list(values))

    def parameterNodeWrapper(cls: type) -> type:
        fields = list(cls.__annotations__)
        defaults = {name: cls.__dict__.get(name) for name in fields}

        class Wrapper:
            def __init__(self, node: Any) -> None:
                object.__setattr__(self, "_node", node)
                object.__setattr__(self, "_values", dict(defaults))
                object.__setattr__(self, "connected", None)

            def __getattr__(self, name: str) -> Any:
                values = object.__getattribute__(self, "_values")
                if name in values:
                    return values[name]
                return getattr(object.__getattribute__(self, "_node"), name)

            def __setattr__(self, name: str, value: Any) -> None:
                if name not in fields:
                    raise AttributeError(f"parameter node has no field {name!r}")
                self._values[name] = value
                self._node.Modified()

            def connectGui(self, ui: Any) -> str:
                object.__setattr__(self, "connected", ui)
                return "gui-tag"

            def disconnectGui(self, tag: str) -> None:
                object.__setattr__(self, "connected", None)

        Wrapper.__name__ = cls.__name__
        return Wrapper

    module.parameterNodeWrapper = parameterNodeWrapper  # type: ignore[attr-defined]
    module.Choice = Choice  # type: ignore[attr-defined]
    return module


class Dialogs:
    """What the widget showed: error texts and confirmation questions (answered with ``answer``)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.questions: list[str] = []
        self.answer = True
        self.jumps: list[tuple[float, ...]] = []
        self.details: list[str | None] = []  # the detailedText of each error dialog (None when none given)

    def install(self, slicer: Any, monkeypatch: Any) -> None:
        util = slicer.util
        monkeypatch.setattr(util, "loadUI", load_fake_ui, raising=False)
        monkeypatch.setattr(
            util, "childWidgetVariables", lambda panel: types.SimpleNamespace(**panel.children), raising=False
        )

        def error_display(text: str, *args: Any, **kwargs: Any) -> None:
            self.errors.append(str(text))
            self.details.append(kwargs.get("detailedText"))

        monkeypatch.setattr(util, "errorDisplay", error_display, raising=False)

        def confirm(text: str, *args: Any, **kwargs: Any) -> bool:
            self.questions.append(text)
            return self.answer

        monkeypatch.setattr(util, "confirmOkCancelDisplay", confirm, raising=False)

        def try_with_error_display(message: str = "", waitCursor: bool = False) -> Any:
            @contextlib.contextmanager
            def manager() -> Iterator[None]:
                try:
                    yield
                except Exception as exc:
                    self.errors.append(f"{message} {exc}")

            return manager()

        monkeypatch.setattr(util, "tryWithErrorDisplay", try_with_error_display, raising=False)
        monkeypatch.setattr(util, "WaitCursor", contextlib.nullcontext, raising=False)
        monkeypatch.setattr(util, "setSliceViewerLayers", lambda **kwargs: None, raising=False)
        # Markups place mode is GUI interaction (the next click in a view adds a point): the stand-in records the
        # list made active and the calls; tests add the point to that list as the click would.
        self.place_mode: list[Any] = []
        markups = types.SimpleNamespace(
            JumpSlicesToLocation=lambda *args: self.jumps.append(args),
            SetActiveList=lambda node: self.place_mode.append(("active", node)),
            StartPlaceMode=lambda persistent: self.place_mode.append(("place", persistent)),
        )
        monkeypatch.setattr(
            slicer,
            "modules",
            types.SimpleNamespace(markups=types.SimpleNamespace(logic=lambda: markups)),
            raising=False,
        )


MODULE_DIR = Path(__file__).resolve().parents[1] / "SmoothSegNet"


def open_panel(
    monkeypatch: Any,
    tmp_path: Path,
    ct_kji: Any,
    geometry: Any,
    dicom_files: dict[str, Path] | None = None,
    gui: tuple[types.ModuleType, Callable[[str], Any], Callable[[Any], Any]] | None = None,
) -> dict[str, Any]:
    """Load SmoothSegNet.py with the stand-ins, a real scene holding the CT, and the panel set up.

    The logic is pointed at tiny threshold models (liver = HU > 50, tumor = HU > 150) and this Python.
    ``dicom_files`` (SOP instance UID -> file) marks the CT as loaded from DICOM and stands in for
    Slicer's DICOM database (a CTK/Qt object). ``gui`` = (qt module, loadUI, childWidgetVariables) replaces the
    attribute-bag widgets (Testing/_slicer_pyside.py: the real .ui in PySide6).
    """
    import functools
    import importlib.util
    import sys

    import slicer
    from _model_helpers import write_threshold_model
    from _mrml_helpers import add_volume

    from SmoothSegNetLib import mrml

    monkeypatch.setitem(sys.modules, "qt", gui[0] if gui else fake_qt())
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", fake_scripted_loadable_module())
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", fake_parameter_node_wrapper())
    monkeypatch.syspath_prepend(str(MODULE_DIR))
    headless = mrml.create_headless_scene()
    monkeypatch.setattr(slicer, "mrmlScene", headless.scene, raising=False)
    dialogs = Dialogs()
    dialogs.install(slicer, monkeypatch)
    if gui is not None:
        monkeypatch.setattr(slicer.util, "loadUI", gui[1], raising=False)
        monkeypatch.setattr(slicer.util, "childWidgetVariables", gui[2], raising=False)
    if dicom_files is not None:
        database = types.SimpleNamespace(fileForInstance=lambda uid: str(dicom_files.get(uid, "")))
        monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    FakeModuleWidget.moduleDir = MODULE_DIR
    spec = importlib.util.spec_from_file_location("SmoothSegNet", MODULE_DIR / "SmoothSegNet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "SmoothSegNet", module)
    spec.loader.exec_module(module)

    headless.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "some labels")  # not a CT: never the default
    older = add_volume(headless.scene, ct_kji, geometry, "older CT")
    volume = add_volume(headless.scene, ct_kji, geometry, "CT abdomen")
    if dicom_files is not None:
        volume.SetAttribute("DICOM.instanceUIDs", " ".join(dicom_files))  # as Slicer's DICOM plugin does

    descriptor = type("Parent", (), {"isEntered": True})()
    module.SmoothSegNet(descriptor)
    widget = module.SmoothSegNetWidget(type("Parent", (), {"isEntered": True})())
    widget.setup()
    # The test CTs are a few centimetres of synthetic voxels, not a body: tick "Skip the CT plausibility check"
    # as a user would for unusual data (test_guimock_the_plausibility_check_guards_the_run checks the default).
    widget._parameterNode.skipPlausibilityCheck = True
    widget.ui.skipPlausibilityCheckBox.checked = True  # the stand-in widgets are not bound: show it too
    liver = write_threshold_model(tmp_path / "models", "liver", threshold_hu=50, spacing_mm=None)
    tumor = write_threshold_model(tmp_path / "models", "tumor", threshold_hu=150, spacing_mm=None)
    widget.logic.process = functools.partial(widget.logic.process, liverModel=str(liver), tumorModel=str(tumor))
    widget.logic.pythonExecutable = sys.executable
    return {"module": module, "widget": widget, "volume": volume, "older": older, "descriptor": descriptor,
            "dialogs": dialogs, "scene": headless.scene, "headless": headless}  # fmt: skip


def poll_until_done(widget: Any, timeout_s: float = 300) -> None:
    """Call the logic's poll as Slicer's QTimer would (every 200 ms) until the child is gone."""
    import time

    deadline = time.monotonic() + timeout_s
    while widget.logic.isRunning:
        assert time.monotonic() < deadline, "the engine did not finish"
        widget.logic._poll()
        time.sleep(0.05)
