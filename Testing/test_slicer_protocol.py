"""The child-process protocol parser and the widget state machine (plain Python, no Qt)."""

from __future__ import annotations

import io
import json

import pytest

from SmoothSegNetLib.progress import JsonlProgress
from SmoothSegNetLib.slicer_support.protocol import ProgressEvent, ProtocolReader, parse_progress_line
from SmoothSegNetLib.slicer_support.state import (
    APPLY_TEXT,
    CANCEL_TEXT,
    Event,
    InvalidTransition,
    State,
    WidgetStateMachine,
    why_cannot_apply,
)


def test_parses_what_the_engine_writes() -> None:
    stream = io.StringIO()
    progress = JsonlProgress(stream)
    progress("liver", 0.25, "sliding window 3/12")
    event = parse_progress_line(stream.getvalue().splitlines()[0])
    assert event is not None
    assert (event.stage, event.fraction, event.message) == ("liver", 0.25, "sliding window 3/12")
    assert event.elapsed_s >= 0.0
    assert event.percent == 25


@pytest.mark.parametrize(
    "line",
    [
        "",
        "loading model card",
        "{not json",
        "[1, 2]",
        '{"stage": "liver"}',
        '{"fraction": 0.5}',
        '{"stage": "liver", "fraction": "half"}',
        '{"stage": "liver", "fraction": NaN}',
        '{"stage": "liver", "fraction": 0.5, "elapsed_s": Infinity}',
    ],
)
def test_other_lines_are_not_progress(line: str) -> None:
    assert parse_progress_line(line) is None


def test_percent_is_clamped_and_status_text_has_elapsed_time() -> None:
    assert ProgressEvent("tumor", 1.7, "", 0.0).percent == 100
    assert ProgressEvent("tumor", -0.2, "", 0.0).percent == 0
    assert ProgressEvent("tumor", 0.5, "refining", 125.9).status_text() == "tumor: refining (2:05)"
    assert ProgressEvent("export", 0.5, "", 7.0).status_text() == "export (0:07)"


def test_reader_keeps_progress_log_and_error_line() -> None:
    reader = ProtocolReader()
    record = json.dumps({"stage": "read", "fraction": 0.1, "message": "CT", "elapsed_s": 0.5})
    assert reader.feed("stdout", record + "\n") == ProgressEvent("read", 0.1, "CT", 0.5)
    assert reader.feed("stdout", "plain log line\n") is None
    # A progress-looking line on stderr is log text, not progress.
    assert reader.feed("stderr", record + "\n") is None
    reader.feed("stderr", "error: input.nrrd: not a CT (modality MR): give a CT series\n")
    assert reader.last_progress == ProgressEvent("read", 0.1, "CT", 0.5)
    assert reader.error_line == "input.nrrd: not a CT (modality MR): give a CT series"
    assert reader.failure_message(2) == (
        "Segmentation failed (bad input): input.nrrd: not a CT (modality MR): give a CT series"
    )
    silent = ProtocolReader()
    silent.feed("stderr", "Segmentation fault\n")
    assert silent.failure_message(-11) == "Segmentation failed (exit status -11); last output: Segmentation fault"


def test_state_machine_happy_path_and_views() -> None:
    machine = WidgetStateMachine()
    view = machine.view()
    assert (view.button_text, view.button_enabled, view.progress_visible) == (APPLY_TEXT, True, False)
    assert machine.handle(Event.START) == State.STARTING
    assert machine.view().button_text == CANCEL_TEXT and machine.view().button_enabled
    assert not machine.view().inputs_enabled and machine.busy
    assert machine.handle(Event.STARTED) == State.RUNNING
    assert machine.handle(Event.FINISHED) == State.IMPORTING
    assert machine.view().button_enabled is False
    assert machine.handle(Event.IMPORTED) == State.IDLE
    assert not machine.busy


def test_state_machine_cancel_and_failure() -> None:
    machine = WidgetStateMachine()
    machine.handle(Event.START)
    machine.handle(Event.STARTED)
    assert machine.handle(Event.CANCEL) == State.CANCELLING
    view = machine.view()
    assert (view.button_text, view.button_enabled, view.progress_visible) == (CANCEL_TEXT, False, True)
    assert machine.handle(Event.STOPPED) == State.IDLE
    machine.handle(Event.START)
    assert machine.handle(Event.FAIL, "out of memory") == State.FAILED
    assert machine.view().button_enabled
    assert machine.view().button_tooltip == "Last run failed: out of memory. Click to try again."
    assert machine.handle(Event.START) == State.STARTING and machine.failure == ""


@pytest.mark.parametrize(
    ("state_events", "event"),
    [((), Event.FINISHED), ((), Event.CANCEL), ((Event.START,), Event.IMPORTED), ((Event.START,), Event.START)],
)
def test_state_machine_refuses_nonsense(state_events: tuple[Event, ...], event: Event) -> None:
    machine = WidgetStateMachine()
    for e in state_events:
        machine.handle(e)
    with pytest.raises(InvalidTransition, match=f"event '{event.value}' is not allowed in state"):
        machine.handle(event)


def test_why_cannot_apply_explains_the_disabled_button() -> None:
    assert why_cannot_apply(has_input_volume=True) == ""
    assert why_cannot_apply(has_input_volume=False).startswith("Select an input CT volume")
    assert "labelmap" in why_cannot_apply(has_input_volume=True, input_is_scalar=False)
    assert why_cannot_apply(has_input_volume=True, busy=True) == "A segmentation is running"
    assert "under a transform" in why_cannot_apply(has_input_volume=True, input_transformed=True)
    assert why_cannot_apply(has_input_volume=True, other_job="the model download") == (
        "Wait until the model download has finished"
    )
    machine = WidgetStateMachine()
    view = machine.view(why_cannot_apply(has_input_volume=False))
    assert not view.button_enabled and view.button_tooltip.startswith("Select an input CT volume")


def test_state_machine_names_the_export_job_it_runs() -> None:
    """Exports and PACS sends go through the same states, progress bar and Cancel button as a segmentation."""
    machine = WidgetStateMachine()
    machine.handle(Event.START, job="send to the PACS")
    machine.handle(Event.STARTED)
    view = machine.view()
    assert (view.button_text, view.button_enabled, view.progress_visible, view.inputs_enabled) == (
        CANCEL_TEXT,
        True,
        True,
        False,
    )
    assert view.button_tooltip == "Stop the send to the PACS (kills the worker process)"
    machine.handle(Event.FAIL, "the PACS refused the association")
    assert machine.view().button_tooltip == (
        "Last send to the PACS failed: the PACS refused the association. Click to segment again."
    )
    machine.handle(Event.START)  # a segmentation again: named as before
    assert machine.job == "segmentation"
    assert machine.view().button_tooltip == "Stop the segmentation (kills the worker process)"
