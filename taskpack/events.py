"""Observability: subscribe to finished runs and to job changes.

>>> from taskpack import events
>>> unsubscribe = events.on_run_finished(lambda run: statsd.timing(run.task, run.duration_ms))
>>> events.on_job_changed(lambda job: print(job.id, job.status))

A run callback receives the run's :class:`~taskpack.store.RunRecord` once
per run (joined calls are not runs of their own), in the process that ran
it, right after the run is handed to the store's run history and before its callers
resume.

A job callback receives a :class:`~taskpack.store.Job` each time this
process changes a job: enqueued (or replaced by key), claimed by a worker,
finished (succeeded, failed, back to pending for a retry), cancelled or
retried. Changes made by other processes are not seen here (the dashboard
of a process shows what its own web part and worker did, plus what it
reads from the store).

Callbacks run on the event loop: keep them short; an async callback is
scheduled as a background task. An exception in a callback is logged
(logger ``taskpack.events``) and never affects the run, the job or other
callbacks.

Besides this, every module logs to ``logging.getLogger("taskpack.<module>")``;
``taskpack.execution`` writes one ``key=value`` line per attempt.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .store import RunRecord

if TYPE_CHECKING:
    from .store import Job

logger = logging.getLogger(__name__)

RunCallback = Callable[[RunRecord], Any]
JobCallback = Callable[["Job"], Any]

_subscribers: list[RunCallback] = []
_job_subscribers: list[JobCallback] = []
_background: set[asyncio.Future[Any]] = set()


def _subscribe(kind: str, subscribers: list[Any], callback: Any) -> Callable[[], None]:
    if not callable(callback):
        raise TypeError(f"{kind}: expected a function, got {type(callback).__name__}")
    subscribers.append(callback)

    def unsubscribe() -> None:
        if callback in subscribers:
            subscribers.remove(callback)

    return unsubscribe


def on_run_finished(callback: RunCallback) -> Callable[[], None]:
    """Call ``callback(run)`` after every run; returns a function that
    unsubscribes it. ``TypeError`` if ``callback`` is not callable."""
    return _subscribe("on_run_finished", _subscribers, callback)


def on_job_changed(callback: JobCallback) -> Callable[[], None]:
    """Call ``callback(job)`` after every change this process makes to a
    job; returns a function that unsubscribes it. ``TypeError`` if
    ``callback`` is not callable."""
    return _subscribe("on_job_changed", _job_subscribers, callback)


def has_subscribers() -> bool:
    """Whether anyone listens to runs (the execution layer skips the call if not)."""
    return bool(_subscribers)


def run_finished(run: RunRecord) -> None:
    """Deliver ``run`` to every subscriber (called by the execution layer)."""
    _deliver(_subscribers, run, f"run_finished callback {{!r}} failed for run {run.id}")


def job_changed(job: Job) -> None:
    """Deliver ``job`` to every subscriber (called by the queue)."""
    if _job_subscribers:
        _deliver(_job_subscribers, job, f"job_changed callback {{!r}} failed for job {job.id}")


def _deliver(subscribers: list[Any], item: Any, failure: str) -> None:
    for callback in tuple(subscribers):
        try:
            result = callback(item)
            if inspect.isawaitable(result):
                future = asyncio.ensure_future(result)
                _background.add(future)
                future.add_done_callback(_finished)
        except Exception:
            logger.exception(failure.format(callback))


def _finished(future: asyncio.Future[Any]) -> None:
    _background.discard(future)
    if not future.cancelled() and future.exception() is not None:
        logger.error("async event callback failed", exc_info=future.exception())
