"""The widget's state machine, as plain Python (the Qt widget only renders :class:`PanelView`).

States: ``idle`` -> ``starting`` (dependencies, writing the input) -> ``running`` (child process)
-> ``importing`` (result into the scene) -> ``idle``. Cancel moves ``starting``/``running`` to
``cancelling`` until the child is gone. Any error moves to ``failed``; the next start leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class State(str, Enum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    IMPORTING = "importing"
    CANCELLING = "cancelling"
    FAILED = "failed"


class Event(str, Enum):
    START = "start"
    STARTED = "started"
    FINISHED = "finished"
    IMPORTED = "imported"
    CANCEL = "cancel"
    STOPPED = "stopped"
    FAIL = "fail"


#: (state, event) -> next state; a pair that is not here is a programming error.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.IDLE, Event.START): State.STARTING,
    (State.FAILED, Event.START): State.STARTING,
    (State.STARTING, Event.STARTED): State.RUNNING,
    (State.RUNNING, Event.FINISHED): State.IMPORTING,
    (State.IMPORTING, Event.IMPORTED): State.IDLE,
    (State.STARTING, Event.CANCEL): State.CANCELLING,
    (State.RUNNING, Event.CANCEL): State.CANCELLING,
    (State.CANCELLING, Event.STOPPED): State.IDLE,
    # The child may finish on its own while a cancel is on its way: its output is then dropped.
    (State.CANCELLING, Event.FINISHED): State.IDLE,
    (State.CANCELLING, Event.FAIL): State.IDLE,
    (State.STARTING, Event.FAIL): State.FAILED,
    (State.RUNNING, Event.FAIL): State.FAILED,
    (State.IMPORTING, Event.FAIL): State.FAILED,
}

APPLY_TEXT = "Segment Liver & Tumors"
#: The job :meth:`WidgetStateMachine.handle` assumes on START (exports name theirs).
SEGMENTATION_JOB = "segmentation"
CANCEL_TEXT = "Cancel"


class InvalidTransition(RuntimeError):
    """An event that makes no sense in the current state (a bug in the widget, not a user error)."""


@dataclass(frozen=True)
class PanelView:
    """What the panel shows in a state."""

    button_text: str
    button_enabled: bool
    button_tooltip: str
    progress_visible: bool
    inputs_enabled: bool


class WidgetStateMachine:
    """Current state plus the last failure message; :meth:`view` says how to draw the panel."""

    def __init__(self) -> None:
        self.state = State.IDLE
        self.failure: str = ""
        self.job: str = SEGMENTATION_JOB

    @property
    def busy(self) -> bool:
        return self.state in (State.STARTING, State.RUNNING, State.IMPORTING, State.CANCELLING)

    def handle(self, event: Event, message: str = "", job: str = SEGMENTATION_JOB) -> State:
        """Apply ``event``; ``message`` is kept as the failure text on :attr:`Event.FAIL`.

        ``job`` (with :attr:`Event.START`) names what runs: the segmentation, or an export or PACS send,
        which go through the same child process, progress bar and Cancel button.
        """
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise InvalidTransition(f"event {event.value!r} is not allowed in state {self.state.value!r}") from None
        if event == Event.FAIL:
            self.failure = message
        elif event == Event.START:
            self.failure = ""
            self.job = job
        return self.state

    def view(self, cannot_apply_reason: str = "") -> PanelView:
        """The panel for the current state; ``cannot_apply_reason`` from :func:`why_cannot_apply`."""
        if self.state in (State.STARTING, State.RUNNING):
            return PanelView(CANCEL_TEXT, True, f"Stop the {self.job} (kills the worker process)", True, False)
        if self.state == State.CANCELLING:
            return PanelView(CANCEL_TEXT, False, "Cancelling…", True, False)
        if self.state == State.IMPORTING:
            return PanelView(APPLY_TEXT, False, "Loading the result into the scene…", True, False)
        tooltip = cannot_apply_reason or "Segment the liver and its tumors in the input CT"
        if self.state == State.FAILED and not cannot_apply_reason:
            tooltip = f"Last {self.job} failed: {self.failure}. Click to segment again."
            if self.job == SEGMENTATION_JOB:
                tooltip = f"Last run failed: {self.failure}. Click to try again."
        return PanelView(APPLY_TEXT, not cannot_apply_reason, tooltip, False, True)


def why_cannot_apply(
    *,
    has_input_volume: bool,
    input_is_scalar: bool = True,
    input_transformed: bool = False,
    busy: bool = False,
    other_job: str = "",
) -> str:
    """Why the Segment button is disabled ('' when it can be clicked), shown as its tooltip.

    ``other_job`` names another job of the module that is running (e.g. a model download).
    """
    if busy:
        return "A segmentation is running"
    if other_job:
        return f"Wait until {other_job} has finished"
    if not has_input_volume:
        return "Select an input CT volume (load one with Add Data or the DICOM browser)"
    if not input_is_scalar:
        return "The input must be a grey-level CT volume, not a labelmap or a colour image"
    if input_transformed:
        return "The input CT is under a transform: harden it or remove it (Data module) first"
    return ""
