"""`progress`: a Dagster logger for people at a terminal, the one `ktrdr-run` uses instead of Dagster's
DEBUG console: a line when a step starts, a line when it ends with the time it took (or why it failed,
in one line: no stack trace), a line per failed check, and the steps' own INFO messages (one per epoch
of a torch model, one per walk-forward fold, the selection). The full event log is still written to the
Dagster instance, where the run's page in the UI shows it.

Select it in a run's config (`loggers: {progress: {}}`); it is registered on every job (definitions.py).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import dagster as dg

_EVENTS = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "ASSET_CHECK_EVALUATION", "RUN_SUCCESS", "RUN_FAILURE"}


def error_line(event: Any) -> str:
    """A `dagster.Failure`'s description (a user's bad file: one line), else the last line of the user
    code's error of a failure event, unwrapped from Dagster's."""
    user = getattr(event.event_specific_data, "user_failure_data", None)
    if user is not None and user.description:
        return user.description
    error = getattr(event.event_specific_data, "error", None)
    while error is not None and error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    if error is None:
        return "failed"
    message = error.message.strip().splitlines()
    return message[-1] if message else error.cls_name or "failed"


def format_record(record: logging.LogRecord) -> str | None:
    """The line a person reads for one Dagster log record, or None to leave it out."""
    meta = getattr(record, "dagster_meta", None)
    stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
    if meta is None:
        return f"{stamp}   {record.getMessage()}" if record.levelno >= logging.INFO else None
    event = meta.get("dagster_event")
    step = meta.get("step_key") or ""
    if event is None:
        if record.levelno < logging.INFO:
            return None
        level = "" if record.levelno == logging.INFO else f"{record.levelname}: "
        return f"{stamp}   {level}{meta.get('orig_message', record.getMessage())}"
    kind = event.event_type_value
    if kind not in _EVENTS:
        return None
    if kind == "STEP_START":
        return f"{stamp} > {step}"
    if kind == "STEP_SUCCESS":
        seconds = (getattr(event.event_specific_data, "duration_ms", None) or 0) / 1000
        return f"{stamp} + {step} done ({seconds:.1f} s)"
    if kind == "STEP_FAILURE":
        return f"{stamp} ! {step} FAILED: {error_line(event)}"
    if kind == "ASSET_CHECK_EVALUATION":
        evaluation = event.event_specific_data
        if evaluation.passed:
            return None
        severity = evaluation.severity.value if evaluation.severity else "ERROR"
        name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        description = f": {evaluation.description}" if getattr(evaluation, "description", None) else ""
        return f"{stamp}   check {name} red ({severity}){description}"
    job = meta.get("job_name") or "run"
    return f"{stamp} {job} {'succeeded' if kind == 'RUN_SUCCESS' else 'FAILED'}"


class ProgressHandler(logging.Handler):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = format_record(record)
        except Exception:  # a display problem must never fail a run
            line = None
        if line is not None:
            self.stream.write(line + "\n")
            self.stream.flush()


@dg.logger(description="One line per step (start, end with its time), per epoch and per fold; no DEBUG events.")
def progress_logger(init_context) -> logging.Logger:
    logger = logging.Logger("ktrdr_progress", logging.DEBUG)
    logger.addHandler(ProgressHandler(sys.stdout))
    return logger
