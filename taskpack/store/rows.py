"""Rows of the SQL backends (SQLite, PostgreSQL) as contract objects: the
column lists and conversions both share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from . import Job, NewJob, RunRecord
from .buffer import (
    MAX_JSON,
    clean_run,
    clean_strings,
    clean_text,
    encode_json,
    from_json,
    json_text,
)

RUN_COLUMNS = ("id", "task", "trigger", "payload_hash", "started_at", "finished_at",
               "duration_ms", "attempts", "outcome", "error", "host", "payload", "result",
               "traceback", "job_id")
"""In :class:`RunRecord` order; ``payload``/``result`` are JSON text."""

JOB_COLUMNS = ("id", "task", "payload", "status", "run_at", "created_at", "updated_at",
               "attempts", "max_attempts", "queue", "key", "priority", "trigger", "locked_by",
               "locked_until", "last_error", "traceback", "result")
"""In :class:`Job` order; ``payload``/``result`` are JSON text."""


def run_values(run: RunRecord) -> tuple[Any, ...]:
    """A run as column values (:data:`RUN_COLUMNS`): strings cleaned
    (:func:`clean_strings`: lone surrogates and NUL replaced), payload and
    result as bounded JSON text (:func:`json_text`). A writer calls it for
    every run, so the usual case, ASCII text without NUL, is checked at once
    and left as it is."""
    (run_id, task, trigger, payload_hash, started_at, finished_at, duration_ms, attempts,
     outcome, error, host, payload, result, traceback, job_id) = run
    text = "".join((run_id, task, trigger, payload_hash, host, error or "", traceback or "",
                    job_id or ""))
    if not text.isascii() or "\x00" in text:
        (run_id, task, trigger, payload_hash, started_at, finished_at, duration_ms, attempts,
         outcome, error, host, payload, result, traceback, job_id) = clean_strings(run)
    return (run_id, task, trigger, payload_hash, started_at, finished_at, duration_ms, attempts,
            outcome, error, host, json_text(payload), json_text(result), traceback, job_id)


def runs_json(runs: Sequence[RunRecord]) -> str:
    """``runs`` as one JSON array of arrays (:data:`RUN_COLUMNS` order,
    payload and result as JSON values, their text as :func:`json_text`
    writes it), for a database to insert with one statement. Encoded at
    once, in C, when no run needs cleaning: the text is at most
    :data:`MAX_JSON` characters (so no payload or result needs truncating),
    holds no NUL and no lone surrogate, and encodes (no NaN, no cycle; other
    values JSON cannot hold are written with ``str()``, as by
    :func:`json_text`); else each run is cleaned first (:func:`clean_run`)."""
    try:
        text = encode_json(runs)
    except (ValueError, TypeError, RecursionError):
        return encode_json([clean_run(run) for run in runs])
    if len(text) > MAX_JSON or "\\u0000" in text or not _encodable(text):
        return encode_json([clean_run(run) for run in runs])
    return text


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def run_from_row(row: Sequence[Any]) -> RunRecord:
    values = list(row)
    values[11] = from_json(values[11])
    values[12] = from_json(values[12])
    return RunRecord(*values)


def job_from_row(row: Sequence[Any]) -> Job:
    values = list(row)
    values[2] = from_json(values[2]) or {}
    values[17] = from_json(values[17])
    return Job(*values)


def payload_text(job: NewJob) -> str:
    """A new job's payload as JSON text (validated by the caller, so it is
    JSON already; a lone surrogate gets a replacement character)."""
    return clean_text(json.dumps(dict(job.payload), ensure_ascii=False, default=str))
