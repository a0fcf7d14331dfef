"""GUI STAND-INS for loading the module's REAL .ui (SmoothSegNet/Resources/UI/SmoothSegNet.ui) in PySide6.

Slicer's Qt (PythonQt with CTK and qMRML widgets) does not exist outside Slicer. Here the real .ui file is
loaded by PySide6's ``QUiLoader`` with real Qt widgets (buttons, tables, combo boxes, labels, progress bars),
except the four CTK/qMRML classes, replaced by stand-ins of the same name:

- ``ctkCollapsibleButton`` -> a ``QGroupBox`` (its ``text`` property is the box title),
- ``qMRMLNodeComboBox`` -> a ``QComboBox`` showing the current node's name,
- ``ctkDirectoryButton`` -> a ``QPushButton`` with a ``directory`` property,
- ``qMRMLWidget`` -> a ``QWidget`` with ``setMRMLScene``.

The module's code speaks PythonQt (``button.text = "..."``, ``button.connect("clicked(bool)", slot)``);
``PythonQtStyle`` translates that onto PySide6 widgets (Qt properties through ``setProperty``/``property``,
signals by name). ``qt.QTimer`` is a real ``QTimer`` with PythonQt's ``connect``; timers fire from the Qt event
loop (:func:`process_events`).
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtWidgets
from PySide6.QtUiTools import QUiLoader


def _connect(obj: Any, signature: str, slot: Callable[..., Any]) -> None:
    getattr(obj, signature.split("(")[0]).connect(slot)


class PythonQtTimer(QtCore.QTimer):
    """A real QTimer with PythonQt's ``connect("timeout()", slot)``."""

    def connect(self, signature: str, slot: Callable[..., Any]) -> None:  # type: ignore[override]
        _connect(self, signature, slot)


class ctkCollapsibleButton(QtWidgets.QGroupBox):
    """STAND-IN for CTK's collapsible button: a group box titled with ``text``."""

    def _text(self) -> str:
        return self.title()

    def _setText(self, text: str) -> None:
        self.setTitle(text)

    text = QtCore.Property(str, _text, _setText)  # type: ignore[assignment]


class qMRMLNodeComboBox(QtWidgets.QComboBox):
    """STAND-IN for qMRML's node selector: shows the current node's name, emits ``currentNodeChanged``."""

    currentNodeChanged = QtCore.Signal(object)

    def setMRMLScene(self, scene: Any) -> None:
        self.scene = scene

    def showNode(self, node: Any) -> None:
        self.clear()
        self.addItem(node.GetName() if node is not None else "None")


class ctkDirectoryButton(QtWidgets.QPushButton):
    """STAND-IN for CTK's directory button: a push button showing ``directory``."""

    def _directory(self) -> str:
        return self.text()

    def _setDirectory(self, directory: str) -> None:
        self.setText(directory)

    directory = QtCore.Property(str, _directory, _setDirectory)


class qMRMLWidget(QtWidgets.QWidget):
    """STAND-IN for qMRML's base widget (the panel's root): remembers the scene."""

    mrmlSceneChanged = QtCore.Signal(object)

    def setMRMLScene(self, scene: Any) -> None:
        self.scene = scene


class PythonQtStyle:
    """A PySide6 widget spoken to as PythonQt does: Qt properties as attributes, ``connect`` by signature."""

    def __init__(self, widget: QtWidgets.QWidget) -> None:
        object.__setattr__(self, "widget", widget)

    def _isProperty(self, name: str) -> bool:
        return bool(self.widget.metaObject().indexOfProperty(name) >= 0)

    def __getattr__(self, name: str) -> Any:
        if self._isProperty(name):
            return self.widget.property(name)
        return getattr(self.widget, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not self._isProperty(name):
            raise AttributeError(f"{type(self.widget).__name__} {self.widget.objectName()!r} has no property {name}")
        self.widget.setProperty(name, value)

    def connect(self, signature: str, slot: Callable[..., Any]) -> None:
        _connect(self.widget, signature, slot)


def pyside_qt() -> types.ModuleType:
    """The ``qt`` module as the panel uses it, from PySide6 (QSettings and QFileDialog stay stand-ins)."""
    from _slicer_gui_mock import FakeSettings

    qt = types.ModuleType("qt")
    qt.QTimer = PythonQtTimer  # type: ignore[attr-defined]
    qt.QTableWidgetItem = QtWidgets.QTableWidgetItem  # type: ignore[attr-defined]
    qt.QHeaderView = QtWidgets.QHeaderView  # type: ignore[attr-defined]
    qt.QSettings = FakeSettings  # type: ignore[attr-defined]  (no settings file written by a test)
    qt.QFileDialog = types.SimpleNamespace(getOpenFileName=lambda *a: "")  # type: ignore[attr-defined]
    return qt


def application() -> QtWidgets.QApplication:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["SmoothSegNet-panel-test"])
    return app  # type: ignore[return-value]


def load_ui(path: str) -> PythonQtStyle:
    """The real .ui, loaded by QUiLoader with the stand-ins registered."""
    application()
    loader = QUiLoader()
    for cls in (ctkCollapsibleButton, qMRMLNodeComboBox, ctkDirectoryButton, qMRMLWidget):
        loader.registerCustomWidget(cls)
    file = QtCore.QFile(path)
    if not file.open(QtCore.QIODevice.OpenModeFlag.ReadOnly):
        raise RuntimeError(f"cannot open {path}")
    widget = loader.load(file)
    file.close()
    if widget is None:
        raise RuntimeError(f"QUiLoader could not load {path}: {loader.errorString()}")
    return PythonQtStyle(widget)


def child_widget_variables(panel: PythonQtStyle) -> types.SimpleNamespace:
    """``slicer.util.childWidgetVariables``: every named child widget, PythonQt style."""
    children = panel.widget.findChildren(QtWidgets.QWidget)
    return types.SimpleNamespace(**{w.objectName(): PythonQtStyle(w) for w in children if w.objectName()})


def pyside_gui() -> tuple[types.ModuleType, Callable[[str], Any], Callable[[Any], Any]]:
    """The ``gui`` argument of ``_slicer_gui_mock.open_panel``."""
    return pyside_qt(), load_ui, child_widget_variables


def process_events(seconds: float) -> None:
    """Run the Qt event loop for ``seconds`` (timers fire: the jobs' poll, the live table's debounce)."""
    app = application()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
