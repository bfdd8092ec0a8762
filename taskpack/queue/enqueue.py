"""``enqueue_task``: check a job in the caller, then store it.

The task name and the payload are checked here, where the caller can still
react (:class:`~taskpack.errors.TaskNotFoundError`,
:class:`~taskpack.errors.PayloadValidationError`, ``TypeError`` for a
payload that is not JSON), never later in a worker. Loading the task's
module to read its ``payload_schema`` happens once per process.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..errors import PayloadValidationError, TaskNotFoundError
from ..registry import Registry, get_registry
from ..schema import SchemaError
from ..store import Job, KeyMode, NewJob
from ..task import copy_payload
from . import binding
from .notify import job_changed

Delay = float | int | timedelta
When = float | int | datetime


def check_task(registry: Registry, name: str, payload: Mapping[str, Any] | None
               ) -> tuple[dict[str, Any], int]:
    """The payload as a fresh dict and the job's ``max_attempts`` (1 + the
    task's retries), after checking that the task exists, that the payload
    is a JSON object and that the task's ``payload_schema`` accepts it."""
    if name not in registry:
        raise TaskNotFoundError(name, registry.entries)
    data = copy_payload(payload)
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"task {name!r}: the payload must be JSON data: {exc}") from None
    options = registry.runner(name).options
    if options.validate is not None:
        try:
            options.validate(data)
        except SchemaError as exc:
            raise PayloadValidationError(name, exc.errors) from None
    return data, options.retry.max_attempts


def due_time(delay: Delay | None, run_at: When | None, now: float) -> float:
    """When the job is due, in epoch seconds: ``run_at`` (epoch seconds or an
    aware ``datetime``), else ``now + delay``, else ``now``."""
    if delay is not None and run_at is not None:
        raise ValueError("give delay or run_at, not both")
    if run_at is not None:
        if isinstance(run_at, datetime):
            if run_at.tzinfo is None:
                raise ValueError("run_at: use a time-zone-aware datetime")
            return run_at.timestamp()
        return _finite("run_at", run_at)
    if delay is None:
        return now
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else _finite("delay", delay)
    if seconds < 0:
        raise ValueError(f"delay must not be negative, got {seconds:g}")
    return now + seconds


def _finite(label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{label}: expected a number of seconds, got {value!r}")
    return float(value)


def new_job(name: str, payload: Mapping[str, Any] | None = None, *,
            delay: Delay | None = None, run_at: When | None = None, key: str | None = None,
            key_mode: KeyMode = "replace", queue: str | None = None, priority: int = 0,
            trigger: str = "job", registry: Registry | None = None) -> NewJob:
    """The checked :class:`~taskpack.store.NewJob` for ``enqueue_task``'s
    arguments (the HTTP API and the CLI build theirs here too)."""
    data, max_attempts = check_task(registry or get_registry(), name, payload)
    if key_mode not in ("replace", "preserve"):
        raise ValueError(f"key_mode must be 'replace' or 'preserve', got {key_mode!r}")
    for label, text in (("key", key), ("queue", queue)):
        if text is not None and (not isinstance(text, str) or not text):
            raise TypeError(f"{label}: expected a non-empty string, got {text!r}")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority: expected an integer, got {priority!r}")
    return NewJob(task=name, payload=data, run_at=due_time(delay, run_at, time.time()),
                  max_attempts=max_attempts, queue=queue, key=key, key_mode=key_mode,
                  priority=priority, trigger=trigger)


async def enqueue_task(name: str, payload: Mapping[str, Any] | None = None, *,
                       delay: Delay | None = None, run_at: When | None = None,
                       key: str | None = None, key_mode: KeyMode = "replace",
                       queue: str | None = None, priority: int = 0) -> Job:
    """Queue a run of task ``name`` and return the stored job (``id``,
    ``status``, ``run_at``); a worker runs it at least once.

    ``delay`` (seconds or a ``timedelta``) or ``run_at`` (epoch seconds or
    an aware ``datetime``) postpone it. A ``key`` names the job:
    ``key_mode="replace"`` updates a pending job with that key (debounce),
    ``"preserve"`` keeps it (dedupe). Jobs of one named ``queue`` run one at
    a time across every worker. Lower ``priority`` runs first.

    Raises in the caller: :class:`~taskpack.errors.TaskNotFoundError`,
    :class:`~taskpack.errors.PayloadValidationError`, ``TypeError`` /
    ``ValueError`` for bad arguments,
    :class:`~taskpack.queue.QueueUnavailableError` when the process has no
    queue, :class:`~taskpack.store.StoreUnavailable` when the store is down.
    """
    binding.bound_sink()  # no queue here: say so before loading the task
    job = new_job(name, payload, delay=delay, run_at=run_at, key=key, key_mode=key_mode,
                  queue=queue, priority=priority)
    return await submit(job)


async def submit(job: NewJob) -> Job:
    """Store a checked job in the bound queue and publish the change. From
    another event loop than the queue's (a thread's), the call is carried
    out on the queue's loop."""
    bound = binding.current()
    sink = binding.bound_sink()
    loop = asyncio.get_running_loop()
    if bound.loop is not None and bound.loop is not loop and bound.loop.is_running():
        stored = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(_store(sink, job), bound.loop))
    else:
        stored = await _store(sink, job)
    return stored


async def _store(sink: binding.JobSink, job: NewJob) -> Job:
    stored = await sink.enqueue(job)
    job_changed(stored)
    return stored


def enqueue_task_sync(name: str, payload: Mapping[str, Any] | None = None, *,
                      delay: Delay | None = None, run_at: When | None = None,
                      key: str | None = None, key_mode: KeyMode = "replace",
                      queue: str | None = None, priority: int = 0) -> Job:
    """:func:`enqueue_task` for sync code: a sync task (it runs in a worker
    thread while the server's loop runs the queue), a script. Not from
    inside a running event loop (``RuntimeError``: await ``enqueue_task``)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("enqueue_task_sync called from a running event loop; "
                           "use `await enqueue_task(...)` there")
    binding.bound_sink()
    job = new_job(name, payload, delay=delay, run_at=run_at, key=key, key_mode=key_mode,
                  queue=queue, priority=priority)
    bound = binding.current()
    sink = binding.bound_sink()
    if bound.loop is not None and bound.loop.is_running():
        return asyncio.run_coroutine_threadsafe(_store(sink, job), bound.loop).result()
    return asyncio.run(_store(sink, job))
